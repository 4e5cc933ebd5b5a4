#pragma once
/// \file
/// Differentiable normalising activations along one dimension: softmax, log_softmax and
/// l2_normalize. Shapes are preserved; `dim` may be negative (−1 = last). Logits of a
/// classifier are [N, C] with dim = −1; any other dimension works too (e.g. C of [N, C, H, W]).
///
/// Softmax and log-softmax subtract the line maximum before exponentiating and accumulate their
/// sums in double (SPEC §1), so log_softmax stays finite for logits of any finite magnitude.

#include "ltlearn/autograd/variable.hpp"
#include "ltlearn/backends/cpu/softmax.hpp"
#include "ltlearn/ops/elementwise.hpp"

#include <cmath>
#include <type_traits>

namespace ltl {

/// softmax(x)_j = exp(x_j − max x) / Σ_k exp(x_k − max x) along `dim`.
/// Backward: dx = y ⊙ (g − Σ g ⊙ y).
template <real_scalar T, device D>
variable<T, D> softmax(const variable<T, D>& x, int dim = -1) {
  dim = normalize_dim(dim, x.dim(), "softmax");
  auto y = softmax_forward(x.value(), dim);
  return make_result<T, D>(y, "softmax", {&x}, [y, dim](const tensor<T, D>& g) {
    return grads_t<T, D>{softmax_backward(g, y, dim)};
  });
}

/// log_softmax(x)_j = (x_j − max x) − log Σ_k exp(x_k − max x) along `dim`.
/// Backward: dx = g − softmax(x) · Σ g.
template <real_scalar T, device D>
variable<T, D> log_softmax(const variable<T, D>& x, int dim = -1) {
  dim = normalize_dim(dim, x.dim(), "log_softmax");
  auto y = log_softmax_forward(x.value(), dim);
  return make_result<T, D>(y, "log_softmax", {&x}, [y, dim](const tensor<T, D>& g) {
    return grads_t<T, D>{log_softmax_backward(g, y, dim)};
  });
}

/// x / max(‖x‖₂, eps) along `dim`, as PyTorch's F.normalize(x, p=2, dim, eps). Lines whose norm
/// is below eps are scaled by 1/eps, and their gradient treats the denominator as constant.
template <real_scalar T, device D>
variable<T, D> l2_normalize(const variable<T, D>& x, int dim = -1, std::type_identity_t<T> eps = T(1e-12)) {
  dim = normalize_dim(dim, x.dim(), "l2_normalize");
  LTL_CHECK(eps >= T(0) && std::isfinite(eps), value_error, "l2_normalize: eps must be finite and >= 0, got {}",
            eps);
  auto [y, norms] = l2_normalize_forward(x.value(), dim, eps);
  return make_result<T, D>(y, "l2_normalize", {&x}, [y, norms, dim, eps](const tensor<T, D>& g) {
    return grads_t<T, D>{l2_normalize_backward(g, y, norms, dim, eps)};
  });
}

}  // namespace ltl
