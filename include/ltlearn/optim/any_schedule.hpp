#pragma once
/// \file
/// optim::any_schedule: a type-erased learning-rate schedule.

#include "ltlearn/optim/schedule.hpp"

#include <functional>

namespace ltl::optim {

/// Holds any schedule by value.
class any_schedule {
 public:
  template <lr_schedule S>
    requires(!std::same_as<std::decay_t<S>, any_schedule>)
  any_schedule(S s)  // NOLINT(google-explicit-constructor)
      : f_([s](index_t it) { return s(it); }), base_(s.base()) {}
  double operator()(index_t it) const { return f_(it); }
  [[nodiscard]] double base() const noexcept { return base_; }

 private:
  std::function<double(index_t)> f_;
  double base_;
};

}  // namespace ltl::optim
