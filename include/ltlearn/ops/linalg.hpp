#pragma once
/// \file
/// Differentiable matrix product and fully connected layer op.
/// Shapes: matmul [M, K]·[K, N] → [M, N]; linear x [N, in], weight [out, in], bias [out] → [N, out].

#include "ltlearn/backends/cpu/gemm.hpp"
#include "ltlearn/ops/reduce.hpp"

namespace ltl {

/// a·b for matrices; gradients use transposed views, never copies.
template <real_scalar T, device D>
variable<T, D> matmul(const variable<T, D>& a, const variable<T, D>& b) {
  LTL_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0), shape_error,
            "matmul: shapes {} and {} are not compatible", a.sizes(), b.sizes());
  return make_result<T, D>(matmul(a.value(), b.value()), "matmul", {&a, &b},
                           [va = a.value(), vb = b.value()](const tensor<T, D>& g, const std::vector<bool>& need) {
                             grads_t<T, D> r(2);
                             if (need[0]) r[0] = matmul(g, vb.t());
                             if (need[1]) r[1] = matmul(va.t(), g);
                             return r;
                           });
}

/// x·weightᵀ + bias (bias may be undefined). PyTorch's nn.functional.linear.
template <real_scalar T, device D>
variable<T, D> linear(const variable<T, D>& x, const variable<T, D>& weight, const variable<T, D>& bias = {}) {
  LTL_CHECK(x.dim() == 2 && weight.dim() == 2 && x.size(1) == weight.size(1), shape_error,
            "linear: input {} does not match weight {} (expects [N, in] and [out, in])", x.sizes(), weight.sizes());
  const bool has_bias = bias.defined();
  if (has_bias)
    LTL_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0), shape_error,
              "linear: bias {} does not match weight {}", bias.sizes(), weight.sizes());
  tensor<T, D> y(shape{x.size(0), weight.size(0)});
  if (has_bias) {
    y.copy_(bias.value().unsqueeze(0).expand(y.sizes()));
    gemm(x.value(), weight.value().t(), y, T(1), T(1));
  } else {
    gemm(x.value(), weight.value().t(), y, T(1), T(0));
  }
  auto bw = [vx = x.value(), vw = weight.value(), has_bias](const tensor<T, D>& g, const std::vector<bool>& need) {
    grads_t<T, D> r(has_bias ? 3 : 2);
    if (need[0]) r[0] = matmul(g, vw);
    if (need[1]) r[1] = matmul(g.t(), vx);
    if (has_bias && need[2]) r[2] = sum_dims_keep(g, {true, false}).reshape(shape{g.size(1)});
    return r;
  };
  if (has_bias) return make_result<T, D>(std::move(y), "linear", {&x, &weight, &bias}, std::move(bw));
  return make_result<T, D>(std::move(y), "linear", {&x, &weight}, std::move(bw));
}

}  // namespace ltl
