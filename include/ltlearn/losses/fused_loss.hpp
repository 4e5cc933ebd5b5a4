#pragma once
/// \file
/// The differentiable fused logit-adjusted loss (SPEC §7): every loss of the family — CE, CDT,
/// LDAM, logit adjustment, class weights, focal — is one call with different `loss_terms`.
/// Shapes: logits [B, C], labels [B] (int64) → scalar.
///
/// The gradient is computed in the forward pass by the same kernel (one read of the logits,
/// one write of ∂z) and saved; backward only scales it by the incoming gradient.

#include "ltlearn/autograd/variable.hpp"
#include "ltlearn/backends/contract/loss.hpp"
#include "ltlearn/ops/default_kernels.hpp"

#include <cstdint>
#include <utility>

namespace ltl {

/// L = Σ_i w_{y_i}·(1 − p_{y_i})^φ·(−log p_{y_i}) / Σ_i w_{y_i} with p = softmax of the
/// adjusted logits described by `terms`.
/// Optional `sample_weights` [B] scale each ℓ_i without entering the denominator (mixed labels).
template <real_scalar T, device D>
variable<T, D> logit_adjusted_loss(const variable<T, D>& logits, const tensor<std::int64_t, D>& labels,
                                   const loss_terms& terms, const tensor<T, D>& sample_weights = {}) {
  const bool need_grad = grad_enabled() && logits.requires_grad();
  tensor<T, D> dz;
  if (need_grad) dz = tensor<T, D>(logits.sizes());
  const double value = fused_loss(logits.value(), labels, terms, need_grad ? &dz : nullptr,
                                  static_cast<tensor<T, D>*>(nullptr), &sample_weights);
  auto out = tensor<T, D>::scalar(static_cast<T>(value));
  return make_result<T, D>(std::move(out), "logit_adjusted_loss", {&logits}, [dz](const tensor<T, D>& g) {
    const T gs = g.item();
    return std::vector<tensor<T, D>>{gs == T(1) ? dz : affine(dz, gs, T(0))};
  });
}

/// Plain softmax cross-entropy, mean over the batch.
template <real_scalar T, device D>
variable<T, D> cross_entropy(const variable<T, D>& logits, const tensor<std::int64_t, D>& labels) {
  return logit_adjusted_loss(logits, labels, loss_terms{});
}

}  // namespace ltl
