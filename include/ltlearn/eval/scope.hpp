#pragma once
/// \file
/// eval::eval_scope: the one RAII scope for inference on a module — eval mode (batch norm uses
/// its running statistics, dropout is off) and, by default, no autograd graph — restoring the
/// module's previous mode and the thread's previous grad mode on exit, also when an exception
/// leaves the scope.
///
/// Why grad is off by default: evaluation, feature extraction, feature banks and frozen
/// backbones never backpropagate. The one caller that does (the feature-gradient analysis,
/// which needs ∂ℓ/∂g(x) in eval mode) asks for `{.record_graph = true}`.
///
/// The eval/ area sits above nn/, data/, losses/ and metrics/ and below classifier/, augment/ and
/// train/: it composes a model with a dataset (what metrics/ must not, as it depends only on
/// core and tensor), and the classifier and augmentation code use it without reaching up into
/// train/.

#include "ltlearn/autograd/grad_mode.hpp"
#include "ltlearn/nn/module.hpp"

namespace ltl::eval {

/// Options of eval_scope.
struct scope_options {
  bool record_graph = false;  ///< record the autograd graph inside the scope (default: no_grad)
};

/// Switches `m` (and its submodules) to eval mode for the scope's lifetime.
template <real_scalar T, device D>
class eval_scope {
 public:
  explicit eval_scope(nn::module<T, D>& m, scope_options o = {})
      : m_(m), was_training_(m.is_training()), grad_was_(ltl::detail::grad_mode_flag()) {
    m_.eval();
    ltl::detail::grad_mode_flag() = o.record_graph;
  }
  ~eval_scope() {
    m_.train(was_training_);
    ltl::detail::grad_mode_flag() = grad_was_;
  }
  eval_scope(const eval_scope&) = delete;
  eval_scope& operator=(const eval_scope&) = delete;

 private:
  nn::module<T, D>& m_;
  bool was_training_, grad_was_;
};

template <real_scalar T, device D>
eval_scope(nn::module<T, D>&) -> eval_scope<T, D>;
template <real_scalar T, device D>
eval_scope(nn::module<T, D>&, scope_options) -> eval_scope<T, D>;

}  // namespace ltl::eval
