#pragma once
/// \file
/// mixing::mixed_loss: the training loss of a batch that a mixing policy produced, so that the
/// trainer never decodes a mix_result. With mixed labels (mixup, manifold mixup, Remix) the
/// loss is w_i·ℓ(z_i, y_i) + (1 − w_i)·ℓ(z_i, y_π(i)) with w the own-label weights, summed as two
/// calls of the fused loss whose sample weights stay out of the denominator (Zhang et al.'s
/// λ·L(y) + (1 − λ)·L(y_π)); with kept labels (MFW, no mixing) it is the plain ℓ(z, y).
/// Shapes: logits [B, C], labels [B], the mix result's partner labels and weights [B].

#include "ltlearn/losses/fused_loss.hpp"
#include "ltlearn/mixing/policies.hpp"
#include "ltlearn/ops/elementwise.hpp"

#include <cstdint>

namespace ltl::mixing {

/// The logit-adjusted loss described by `terms` of logits `z` of a batch with labels `labels`
/// mixed as `m` says (a default mix_result: the batch was not mixed).
template <real_scalar T, device D>
variable<T, D> mixed_loss(const variable<T, D>& z, const tensor<std::int64_t, D>& labels, const mix_result<T, D>& m,
                          const loss_terms& terms) {
  if (!m.own_weight.defined()) return logit_adjusted_loss(z, labels, terms);
  LTL_CHECK(m.partner_labels.defined() && m.partner_labels.sizes() == labels.sizes() &&
                m.own_weight.sizes() == labels.sizes(),
            shape_error, "mixed_loss: labels {}, partner labels {} and own-label weights {} must all be [B]",
            labels.sizes(), m.partner_labels.sizes(), m.own_weight.sizes());
  tensor<T, D> partner_weight;
  {
    no_grad_guard ng;  // 1 − w is data, not part of the graph
    partner_weight = ltl::affine(variable<T, D>(m.own_weight), T(-1), T(1)).value();
  }
  return logit_adjusted_loss(z, labels, terms, m.own_weight) +
         logit_adjusted_loss(z, m.partner_labels, terms, partner_weight);
}

}  // namespace ltl::mixing
