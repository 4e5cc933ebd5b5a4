#pragma once
/// \file
/// The per-class terms of the fused logit-adjusted loss (SPEC §7), resolved once per step by
/// the loss policies (losses/policies.hpp) and read by every backend's `fused_loss` kernel:
///
///   z'_c = s·(z_c − m_c·[c = y]) / a_c + b_c,  p = softmax(z'),  ℓ = w_y·(1 − p_y)^φ·(−log p_y).

#include <vector>

namespace ltl {

/// Per-class terms of the loss family, resolved for one step. Empty vectors mean the neutral
/// value (m = 0, a = 1, b = 0, w = 1).
struct loss_terms {
  double scale = 1.0;                ///< s
  std::vector<double> margins;       ///< m_c, subtracted from the true-class logit
  std::vector<double> temperatures;  ///< a_c, dividing the logits (CDT)
  std::vector<double> offsets;       ///< b_c, added to the logits (logit adjustment)
  std::vector<double> weights;       ///< w_c, per-class loss weights
  double focal = 0.0;                ///< φ, softmax focal exponent
  /// The loss's denominator Σ_i w_{y_i}; 0: the batch's own. Data-parallel training sets the
  /// sum over the global batch, so that per-rank losses add up to the global batch's loss.
  double normalizer = 0.0;
};

}  // namespace ltl
