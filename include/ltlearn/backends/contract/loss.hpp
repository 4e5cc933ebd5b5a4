#pragma once
/// \file
/// The per-class terms of the fused logit-adjusted loss (SPEC §7), resolved once per step by
/// the loss policies (losses/policies.hpp) and read by every backend's `fused_loss` kernel:
///
///   z'_c = s·(z_c − m_c·[c = y]) / a_c + b_c,  p = softmax(z'),  ℓ = w_y·(1 − p_y)^φ·(−log p_y).

#include "ltlearn/core/error.hpp"
#include "ltlearn/core/shape.hpp"

#include <cstdint>
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

// ---- the argument checks every backend's fused_loss makes (one text for all of them) ----------

/// Logits z must be [B, C] with B, C > 0, labels [B], and each per-class term empty or [C];
/// shape_error naming fused_loss otherwise.
inline void check_fused_loss_args(const shape& z, const shape& y, const loss_terms& t) {
  LTL_CHECK(z.size() == 2, shape_error, "fused_loss: logits must be [B, C], got {}", z);
  const index_t B = z[0], C = z[1];
  LTL_CHECK(y.size() == 1 && y[0] == B, shape_error, "fused_loss: labels {} do not match logits {}", y, z);
  LTL_CHECK(B > 0 && C > 0, shape_error, "fused_loss: empty logits {}", z);
  auto check_len = [&](const std::vector<double>& v, const char* what) {
    LTL_CHECK(v.empty() || static_cast<index_t>(v.size()) == C, shape_error,
              "fused_loss: {} has {} entries for {} classes", what, v.size(), C);
  };
  check_len(t.margins, "margins");
  check_len(t.temperatures, "temperatures");
  check_len(t.offsets, "offsets");
  check_len(t.weights, "weights");
}

/// Per-sample weights (given) must be [B] for logits z [B, C].
inline void check_fused_loss_sample_weights(const shape& sw, const shape& z) {
  LTL_CHECK(sw.size() == 1 && sw[0] == z[0], shape_error, "fused_loss: sample weights {} do not match logits {}", sw,
            z);
}

/// Label `label` at position `pos` must be a class of C; value_error naming both otherwise.
inline void check_fused_loss_label(std::int64_t label, index_t pos, index_t C) {
  LTL_CHECK(label >= 0 && label < C, value_error, "fused_loss: label {} at position {} is outside [0, {})", label, pos,
            C);
}

/// The loss's denominator Σ_i w_{y_i} must be positive.
inline void check_fused_loss_normalizer(double wsum) {
  LTL_CHECK(wsum > 0, value_error, "fused_loss: the labels' weights sum to {}", wsum);
}

}  // namespace ltl
