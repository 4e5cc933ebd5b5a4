#pragma once
/// \file
/// The hyper-parameters of one SGD update as every backend's `sgd_update` kernel reads them
/// (the rule is in optim/sgd.hpp).

namespace ltl {

/// Hyper-parameters of one SGD update, already in the parameter's element type.
template <class T>
struct sgd_step {
  T lr, momentum, weight_decay, dampening_keep;  ///< dampening_keep = 1 − dampening
  bool nesterov;
  bool first;  ///< momentum buffer is uninitialised: it becomes d
};

}  // namespace ltl
