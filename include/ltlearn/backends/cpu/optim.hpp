#pragma once
/// \file
/// CPU kernel of the SGD update (the rule: optim/sgd.hpp; its step type: backends/contract/optim.hpp).

#include "ltlearn/backends/contract/optim.hpp"
#include "ltlearn/backends/cpu/elementwise.hpp"

namespace ltl {

namespace cpu {

/// In-place SGD update of w (and its momentum buffer b, unused when momentum == 0).
template <class T>
void sgd_update(host_tensor<T>& w, const host_tensor<T>& g, host_tensor<T>& b, const sgd_step<T>& s) {
  T* pw = w.data();
  const T* pg = g.data();
  T* pb = b.defined() ? b.data() : nullptr;
  parallel_for(w.numel(), [&](index_t i0, index_t i1) {
    for (index_t i = i0; i < i1; ++i) {
      const T d = pg[i] + s.weight_decay * pw[i];
      if (!pb) {
        pw[i] -= s.lr * d;
        continue;
      }
      pb[i] = s.first ? d : s.momentum * pb[i] + s.dampening_keep * d;
      pw[i] -= s.lr * (s.nesterov ? d + s.momentum * pb[i] : pb[i]);
    }
  });
}

}  // namespace cpu
}  // namespace ltl
