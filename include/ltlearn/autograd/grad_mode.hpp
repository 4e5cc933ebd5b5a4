#pragma once
/// \file
/// Thread-local gradient recording switch and the RAII no-grad scope.

namespace ltl {

namespace detail {
inline bool& grad_mode_flag() noexcept {
  thread_local bool enabled = true;
  return enabled;
}
}  // namespace detail

/// True when ops on this thread record the autograd graph.
inline bool grad_enabled() noexcept { return detail::grad_mode_flag(); }

/// Disables graph recording on this thread for its lifetime (evaluation, optimizer updates).
class no_grad_guard {
 public:
  no_grad_guard() noexcept : prev_(detail::grad_mode_flag()) { detail::grad_mode_flag() = false; }
  ~no_grad_guard() { detail::grad_mode_flag() = prev_; }
  no_grad_guard(const no_grad_guard&) = delete;
  no_grad_guard& operator=(const no_grad_guard&) = delete;

 private:
  bool prev_;
};

}  // namespace ltl
