#pragma once
/// \file
/// Differentiable pooling: max_pool2d and avg_pool2d ([N, C, H, W] → [N, C, Ho, Wo]) and
/// global_avg_pool ([N, C, H, W] → [N, C]). Kernels are reached by argument-dependent lookup.

#include "ltlearn/backends/cpu/pool.hpp"
#include "ltlearn/ops/elementwise.hpp"

#include <utility>

namespace ltl {

/// Max pooling (padding counts as −∞): `max_pool2d(x, {.kernel = 3, .stride = 2, .padding = 1})`.
/// The gradient goes to the argmax of each window (saved as indices, not the input).
template <real_scalar T, device D>
variable<T, D> max_pool2d(const variable<T, D>& x, const pool2d_options& opt) {
  auto r = max_pool2d_forward(x.value(), opt);
  return make_result<T, D>(std::move(r.y), "max_pool2d", {&x},
                           [idx = std::move(r.indices), sx = x.sizes()](const tensor<T, D>& g) {
                             return grads_t<T, D>{max_pool2d_backward(g, idx, sx)};
                           });
}

/// Average pooling with zero padding counted in the divisor (PyTorch's count_include_pad = true).
template <real_scalar T, device D>
variable<T, D> avg_pool2d(const variable<T, D>& x, const pool2d_options& opt) {
  return make_result<T, D>(
      avg_pool2d_forward(x.value(), opt), "avg_pool2d", {&x},
      [sx = x.sizes(), opt](const tensor<T, D>& g) { return grads_t<T, D>{avg_pool2d_backward(g, sx, opt)}; });
}

/// Mean over the spatial dimensions: x [N, C, H, W] → [N, C].
template <real_scalar T, device D>
variable<T, D> global_avg_pool(const variable<T, D>& x) {
  return make_result<T, D>(
      global_avg_pool_forward(x.value()), "global_avg_pool", {&x},
      [sx = x.sizes()](const tensor<T, D>& g) { return grads_t<T, D>{global_avg_pool_backward(g, sx)}; });
}

}  // namespace ltl
