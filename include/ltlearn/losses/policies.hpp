#pragma once
/// \file
/// Logit-adjustment policies: small value types that fill in the per-class terms of the fused
/// loss (SPEC §7) from the class counts N_c and the epoch. They compose left to right:
/// `compose{ldam{}, deferred_weights{class_balanced_weights{}, 160}}` is LDAM-DRW.
///
///   z'_c = s·(z_c − m_c·[c = y]) / a_c + b_c,  ℓ = w_y·(1 − p_y)^φ·(−log p_y).

#include "ltlearn/backends/contract/loss.hpp"
#include "ltlearn/core/error.hpp"
#include "ltlearn/core/shape.hpp"

#include <algorithm>
#include <cmath>
#include <concepts>
#include <numeric>
#include <string>
#include <tuple>
#include <vector>

namespace ltl::losses {

/// A loss policy.
///
/// Represents one modification of the loss family. Requires `apply(counts, epoch, terms)` that
/// sets some fields of `terms` from the training class counts (N_c, all > 0) and the current
/// epoch, and `name()`. Ensures it leaves fields it does not own untouched, so policies compose.
template <class P>
concept loss_policy = requires(const P& p, const std::vector<double>& counts, index_t epoch, loss_terms& t) {
  p.apply(counts, epoch, t);
  { p.name() } -> std::convertible_to<std::string>;
};

namespace detail {
inline void check_counts(const std::vector<double>& n, const char* who) {
  LTL_CHECK(!n.empty(), value_error, "{}: no classes", who);
  for (std::size_t c = 0; c < n.size(); ++c)
    LTL_CHECK(n[c] > 0, value_error, "{}: class {} has {} training samples; every class needs at least one", who, c,
              n[c]);
}
/// Scales w so that Σ_c w_c = C.
inline std::vector<double> normalise_to_count(std::vector<double> w) {
  const double s = std::accumulate(w.begin(), w.end(), 0.0);
  for (auto& v : w) v *= static_cast<double>(w.size()) / s;
  return w;
}
}  // namespace detail

/// Plain softmax cross-entropy: changes nothing.
struct cross_entropy {
  void apply(const std::vector<double>&, index_t, loss_terms&) const {}
  [[nodiscard]] std::string name() const { return "ce"; }
};

/// Class-dependent temperatures (Ye et al., CDT paper Eq. 3): a_c = (N_max/N_c)^γ, with γ = 0
/// before `start_epoch` (the iNaturalist recipe's "γ = 0 for the first half"). Predictions use
/// the plain logits.
struct cdt {
  double gamma = 0.1;
  index_t start_epoch = 0;
  void apply(const std::vector<double>& n, index_t epoch, loss_terms& t) const {
    detail::check_counts(n, "cdt");
    if (epoch < start_epoch || gamma == 0) return;
    const double nmax = *std::max_element(n.begin(), n.end());
    t.temperatures.resize(n.size());
    for (std::size_t c = 0; c < n.size(); ++c) t.temperatures[c] = std::pow(nmax / n[c], gamma);
  }
  [[nodiscard]] std::string name() const { return "cdt(gamma=" + std::to_string(gamma) + ")"; }
};

/// Label-distribution-aware margins (Cao et al.): m_c = K / N_c^{1/4} with K such that
/// max_c m_c = max_margin, and logit scale s. Meant for normed_linear (cosine) logits.
struct ldam {
  double max_margin = 0.5;
  double scale = 30.0;
  void apply(const std::vector<double>& n, index_t, loss_terms& t) const {
    detail::check_counts(n, "ldam");
    t.margins.resize(n.size());
    double mx = 0;
    for (std::size_t c = 0; c < n.size(); ++c) mx = std::max(mx, t.margins[c] = 1.0 / std::pow(n[c], 0.25));
    for (auto& m : t.margins) m *= max_margin / mx;
    t.scale = scale;
  }
  [[nodiscard]] std::string name() const { return "ldam(m=" + std::to_string(max_margin) + ",s=" + std::to_string(scale) + ")"; }
};

/// Logit-adjusted loss (Menon et al.): b_c = τ·log π_c with π_c = N_c / N.
struct logit_adjust {
  double tau = 1.0;
  void apply(const std::vector<double>& n, index_t, loss_terms& t) const {
    detail::check_counts(n, "logit_adjust");
    const double total = std::accumulate(n.begin(), n.end(), 0.0);
    t.offsets.resize(n.size());
    for (std::size_t c = 0; c < n.size(); ++c) t.offsets[c] = tau * std::log(n[c] / total);
  }
  [[nodiscard]] std::string name() const { return "logit_adjust(tau=" + std::to_string(tau) + ")"; }
};

/// Inverse-frequency weights w_c ∝ N_c^{−γ}, normalised to Σ_c w_c = C.
struct inverse_frequency_weights {
  double gamma = 1.0;
  void apply(const std::vector<double>& n, index_t, loss_terms& t) const {
    detail::check_counts(n, "inverse_frequency_weights");
    std::vector<double> w(n.size());
    for (std::size_t c = 0; c < n.size(); ++c) w[c] = std::pow(n[c], -gamma);
    t.weights = detail::normalise_to_count(std::move(w));
  }
  [[nodiscard]] std::string name() const { return "inv_freq(gamma=" + std::to_string(gamma) + ")"; }
};

/// Class-balanced weights (Cui et al.): w_c = (1 − β)/(1 − β^{N_c}), normalised to Σ w = C.
struct class_balanced_weights {
  double beta = 0.9999;
  void apply(const std::vector<double>& n, index_t, loss_terms& t) const {
    detail::check_counts(n, "class_balanced_weights");
    LTL_CHECK(beta >= 0 && beta < 1, value_error, "class_balanced_weights: beta {} must be in [0, 1)", beta);
    std::vector<double> w(n.size());
    for (std::size_t c = 0; c < n.size(); ++c) w[c] = (1 - beta) / (1 - std::pow(beta, n[c]));
    t.weights = detail::normalise_to_count(std::move(w));
  }
  [[nodiscard]] std::string name() const { return "cb(beta=" + std::to_string(beta) + ")"; }
};

/// Softmax focal factor (1 − p_y)^γ.
struct focal {
  double gamma = 1.0;
  void apply(const std::vector<double>&, index_t, loss_terms& t) const {
    LTL_CHECK(gamma >= 0, value_error, "focal: gamma {} must be >= 0", gamma);
    t.focal = gamma;
  }
  [[nodiscard]] std::string name() const { return "focal(gamma=" + std::to_string(gamma) + ")"; }
};

/// Deferred re-weighting (DRW, Cao et al.): `Inner` applies only from `start_epoch` on.
template <loss_policy Inner>
struct deferred {
  Inner inner{};
  index_t start_epoch = 160;
  void apply(const std::vector<double>& n, index_t epoch, loss_terms& t) const {
    if (epoch >= start_epoch) inner.apply(n, epoch, t);
  }
  [[nodiscard]] std::string name() const { return "deferred@" + std::to_string(start_epoch) + "(" + inner.name() + ")"; }
};
/// DRW as in LDAM-DRW: class-balanced weights with β = 0.9999 from `start_epoch`.
inline deferred<class_balanced_weights> drw(index_t start_epoch, double beta = 0.9999) {
  return {.inner = {.beta = beta}, .start_epoch = start_epoch};
}

/// Several policies applied left to right.
template <loss_policy... Ps>
struct compose {
  std::tuple<Ps...> parts;
  compose(Ps... ps) : parts(std::move(ps)...) {}
  void apply(const std::vector<double>& n, index_t epoch, loss_terms& t) const {
    std::apply([&](const auto&... p) { (p.apply(n, epoch, t), ...); }, parts);
  }
  [[nodiscard]] std::string name() const {
    std::string s;
    std::apply([&](const auto&... p) { ((s += (s.empty() ? "" : "+") + p.name()), ...); }, parts);
    return s;
  }
};

/// The loss terms policy `p` gives for class counts `n` at `epoch`.
template <loss_policy P>
loss_terms make_terms(const P& p, const std::vector<double>& n, index_t epoch) {
  loss_terms t;
  p.apply(n, epoch, t);
  return t;
}

}  // namespace ltl::losses
