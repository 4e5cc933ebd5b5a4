#pragma once
/// \file
/// CUDA kernel of the contract's optimiser_kernels (backends/contract/kernels.hpp): the in-place
/// SGD update with momentum, dampening, Nesterov momentum and weight decay, with the semantics
/// of backends/cpu/optim.hpp. Needs nvcc: include it (through <ltlearn/cuda.hpp>) from .cu files.

#include "ltlearn/backends/contract/optim.hpp"
#include "ltlearn/backends/cuda/elementwise.hpp"
#include "ltlearn/backends/cuda/kernels/optim.cuh"
#include "ltlearn/backends/cuda/op_scope.hpp"

namespace ltl::cuda {

/// In-place SGD update of w with gradient g (both contiguous, one shape) and the momentum
/// buffer b (undefined when momentum is 0; else contiguous of w's shape).
template <class T>
void sgd_update(device_tensor<T>& w, const device_tensor<T>& g, device_tensor<T>& b, const sgd_step<T>& s) {
  const op_scope scope("sgd_update", w, g, b);
  LTL_CHECK(w.is_contiguous() && g.is_contiguous() && g.sizes() == w.sizes(), shape_error,
            "sgd_update: parameter {} and gradient {} must be contiguous and equal in shape", w.sizes(), g.sizes());
  LTL_CHECK(!b.defined() || (b.is_contiguous() && b.sizes() == w.sizes()), shape_error,
            "sgd_update: momentum buffer {} must be contiguous and of the parameter's shape {}", b.sizes(), w.sizes());
  const index_t n = w.numel();
  if (n == 0) return;
  kernels::sgd_kernel<<<kernels::grid_for(n), kernels::block_size, 0, context::current().stream()>>>(
      w.data(), g.data(), b.defined() ? b.data() : nullptr, s, n);
  detail::check_launch("sgd_update");
}

}  // namespace ltl::cuda
