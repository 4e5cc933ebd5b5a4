#pragma once
/// \file
/// Feature-mixing policies (SPEC §8), applied in training at a model's named point.
///
/// Every policy draws a random permutation π of the batch and mixes with the per-sample
/// interpolation h̃_i = (1 − λ_i)·h_i + λ_i·h_{π(i)} (ltl::lerp_mix; gradients reach both
/// h_i and h_{π(i)}). They differ in how λ is drawn and how labels are treated:
///  - mfw: major feature weakening (Ye et al., MFW paper Alg. 1, Eq. 4 and 12): λ_i =
///    s(N_{y_i})·u_i, u_i ~ Beta(α, α), s(N) = 0.5·σ((N − μ)/(β·γ)); labels kept.
///  - mixup / manifold mixup (Zhang et al.; Verma et al.): one λ ~ Beta(α, α) per batch, labels
///    mixed: loss = (1 − λ)·L(z, y) + λ·L(z, y_π).
///  - remix (Chou et al.): features mixed as mixup, label weight of the own label by the
///    κ/τ rule that favours the minor class.
/// Shapes: h [B, ...] at the mixing point, labels [B].

#include "ltlearn/core/rng.hpp"
#include "ltlearn/detail/host.hpp"
#include "ltlearn/ops/indexing.hpp"

#include <cmath>
#include <concepts>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

namespace ltl::mixing {

/// Result of mixing a batch: the mixed features, the partner labels y_π and the weight of each
/// sample's own label (undefined: labels are kept, i.e. weight 1).
template <real_scalar T, device D>
struct mix_result {
  variable<T, D> h;
  tensor<std::int64_t, D> partner_labels;  ///< y_{π(i)} [B]
  tensor<T, D> own_weight;                 ///< [B]; loss = w_i·ℓ(z_i, y_i) + (1 − w_i)·ℓ(z_i, y_π(i))
};

/// A feature-mixing policy for features of element type T on device D.
///
/// Represents a training-time transformation of the features at one named point. Requires
/// `point()` (a model point name, or "input"), `active(epoch)`, `name()` and
/// `mix(h, labels, class_counts, rng&)` returning a mix_result on the features' device. Ensures
/// the draws depend only on the generator it is given (they are made on the host, so a seeded
/// run is reproducible on every device).
template <class X, class T = float, class D = cpu::device>
concept mixing_policy = requires(const X& x, index_t epoch, const variable<T, D>& h, const tensor<std::int64_t, D>& y,
                                 const std::vector<double>& counts, rng& g) {
  { x.point() } -> std::convertible_to<std::string>;
  { x.active(epoch) } -> std::convertible_to<bool>;
  { x.name() } -> std::convertible_to<std::string>;
  { x.mix(h, y, counts, g) } -> std::same_as<mix_result<T, D>>;
};

/// No mixing (plain ERM).
struct none {
  [[nodiscard]] std::string point() const { return "input"; }
  [[nodiscard]] bool active(index_t) const { return false; }
  [[nodiscard]] std::string name() const { return "none"; }
  template <real_scalar T, device D>
  mix_result<T, D> mix(const variable<T, D>& h, const tensor<std::int64_t, D>&, const std::vector<double>&, rng&) const {
    return {h, {}, {}};
  }
};

namespace detail {
/// Whether epoch e lies in [start, stop) (stop −1: no end) — the mixing policies' active window.
constexpr bool in_epochs(index_t e, index_t start, index_t stop) { return e >= start && (stop < 0 || e < stop); }

/// A uniformly random permutation of [0, n) as an int64 tensor.
inline tensor<std::int64_t> random_permutation(index_t n, rng& g) {
  tensor<std::int64_t> p(shape{n});
  std::iota(p.data(), p.data() + n, std::int64_t{0});
  g.shuffle(std::span<std::int64_t>(p.data(), static_cast<std::size_t>(n)));
  return p;
}
inline tensor<std::int64_t> permute_labels(const tensor<std::int64_t>& y, const tensor<std::int64_t>& perm) {
  const auto yc = y.contiguous();
  tensor<std::int64_t> out(y.sizes());
  for (index_t i = 0; i < y.numel(); ++i) out.data()[i] = yc.data()[perm.data()[i]];
  return out;
}
inline void check_alpha(double alpha, const char* who) {
  LTL_CHECK(alpha > 0 && std::isfinite(alpha), value_error, "{}: alpha must be positive, got {}", who, alpha);
}
}  // namespace detail

/// The spread γ of MFW's s(N) (MFW paper Eq. 12). The paper calls μ and γ "the geometric mean
/// and standard deviation" of {N_c}, which reads two ways (SPEC §8):
///  - geometric: γ = exp(std(log N_c)), the geometric standard deviation. On CIFAR-10-LT ρ = 100
///    with β = 2 this gives s ≈ 0.5 for N_c ≥ 645 and s ≈ 0 for N_c ≤ 387 — what §3.4 states
///    ("s(N_1) ≈ 0.5 and s(N_10) ≈ 0"), hence the default;
///  - arithmetic: γ = std(N_c), the plain standard deviation: s = 0.41 … 0.23 on the same
///    profile, which contradicts §3.4 (ltlearn's only reading before the geometric one).
/// On step profiles the two agree (both s ≈ 0.5 for the major and ≈ 0 for the minor classes).
enum class mfw_spread { geometric, arithmetic };

/// MFW's class-dependent weight s(N) = 0.5·σ((N − μ)/(β·γ)) with μ the geometric mean of the
/// class counts and γ their spread as `spread` reads it (MFW paper Eq. 12).
///
/// Both readings use the population standard deviation (divide by C, NumPy's default ddof = 0):
/// the classes {N_c}_{c=1..C} are the whole set being normalised, not a sample of a larger one
/// (the paper's footnote 6 likens it to a z-score), and it is the choice that reproduces the
/// SPEC's arithmetic values 0.41 … 0.23 (the sample deviation gives 0.40 … 0.23). For the
/// geometric reading the choice hardly matters (CIFAR-10-LT: γ = 4.35 or 4.71, same s to 1e-5).
inline std::vector<double> mfw_weights(const std::vector<double>& counts, double beta,
                                       mfw_spread spread = mfw_spread::geometric) {
  LTL_CHECK(!counts.empty() && beta > 0, value_error, "mfw: needs class counts and beta > 0 (beta = {})", beta);
  double log_sum = 0, sum = 0;
  for (double n : counts) {
    LTL_CHECK(n > 0, value_error, "mfw: every class needs at least one training sample");
    log_sum += std::log(n);
    sum += n;
  }
  const double C = static_cast<double>(counts.size());
  const double mu = std::exp(log_sum / C), mean = sum / C;
  double sd = 0;
  if (spread == mfw_spread::arithmetic) {
    double var = 0;
    for (double n : counts) var += (n - mean) * (n - mean);
    sd = std::sqrt(var / C);
  } else {
    const double mean_log = log_sum / C;
    double var = 0;
    bool all_equal = true;
    for (double n : counts) {
      var += (std::log(n) - mean_log) * (std::log(n) - mean_log);
      all_equal = all_equal && n == counts.front();
    }
    // exp(0) = 1, not 0: equal counts are caught by value, so they get s = 0.25 as above.
    sd = all_equal ? 0.0 : std::exp(std::sqrt(var / C));
  }
  std::vector<double> s(counts.size());
  for (std::size_t c = 0; c < counts.size(); ++c) {
    // All classes equal (no spread): the argument is 0, s = 0.25 for every class.
    const double a = sd > 0 ? (counts[c] - mu) / (beta * sd) : 0.0;
    s[c] = 0.5 / (1.0 + std::exp(-a));
  }
  return s;
}

/// Major feature weakening (MFW paper Alg. 1): λ_i = s(N_{y_i})·u_i, u_i ~ Beta(α, α), own label
/// kept. β = 2 for long-tailed profiles and 0.01 for step profiles; α tuned on held-out data.
struct mfw {
  double alpha = 1.0;
  double beta = 2.0;
  mfw_spread spread = mfw_spread::geometric;  ///< γ of Eq. 12 (see mfw_spread)
  std::string at = "stage1";  ///< "after the second group" of the CIFAR ResNets
  index_t start_epoch = 0;
  index_t stop_epoch = -1;     ///< −1: until the end
  [[nodiscard]] std::string point() const { return at; }
  [[nodiscard]] bool active(index_t e) const { return detail::in_epochs(e, start_epoch, stop_epoch); }
  [[nodiscard]] std::string name() const {
    return "mfw(alpha=" + std::to_string(alpha) + ",beta=" + std::to_string(beta) +
           (spread == mfw_spread::geometric ? ",spread=geometric)" : ",spread=arithmetic)");
  }
  /// The λ_i of a batch with labels y (exposed for tests and analysis).
  template <class T>
  tensor<T> lambdas(const tensor<std::int64_t>& y, const std::vector<double>& counts, rng& g) const {
    detail::check_alpha(alpha, "mfw");
    const auto s = mfw_weights(counts, beta, spread);
    tensor<T> lam(shape{y.numel()});
    const auto yc = y.contiguous();
    for (index_t i = 0; i < y.numel(); ++i) {
      const std::int64_t c = yc.data()[i];
      LTL_CHECK(c >= 0 && c < static_cast<std::int64_t>(s.size()), value_error,
                "mfw: label {} at position {} is outside [0, {})", c, i, s.size());
      lam.data()[i] = static_cast<T>(s[static_cast<std::size_t>(c)] * g.beta(alpha, alpha));
    }
    return lam;
  }
  template <real_scalar T, device D>
  mix_result<T, D> mix(const variable<T, D>& h, const tensor<std::int64_t, D>& y, const std::vector<double>& counts,
                       rng& g) const {
    const auto perm = detail::random_permutation(h.size(0), g);
    const auto lam = lambdas<T>(ltl::detail::to_host(y), counts, g);
    return {lerp_mix(h, h, lam.template to<D>(), perm.template to<D>()), {}, {}};
  }
};

/// mixup (at "input") and manifold mixup (at a feature point): one λ ~ Beta(α, α) per batch.
struct mixup {
  double alpha = 1.0;
  std::string at = "input";
  index_t start_epoch = 0;
  index_t stop_epoch = -1;  ///< −1: until the end
  [[nodiscard]] std::string point() const { return at; }
  [[nodiscard]] bool active(index_t e) const { return detail::in_epochs(e, start_epoch, stop_epoch); }
  [[nodiscard]] std::string name() const { return (at == "input" ? "mixup(alpha=" : "manifold_mixup(alpha=") + std::to_string(alpha) + ")"; }
  template <real_scalar T, device D>
  mix_result<T, D> mix(const variable<T, D>& h, const tensor<std::int64_t, D>& y, const std::vector<double>&,
                       rng& g) const {
    detail::check_alpha(alpha, "mixup");
    const index_t B = h.size(0);
    const auto perm = detail::random_permutation(B, g);
    const T lam = static_cast<T>(g.beta(alpha, alpha));
    return {lerp_mix(h, h, tensor<T, D>::full(shape{B}, lam), perm.template to<D>()),
            detail::permute_labels(ltl::detail::to_host(y), perm).template to<D>(),
            tensor<T, D>::full(shape{B}, T(1) - lam)};
  }
};

/// Remix (Chou et al. 2020): features mixed with one λ ~ Beta(α, α); with λ_a = 1 − λ the own
/// sample's share, the own label's weight is 0 if N_a/N_b ≥ κ and λ_a < τ, 1 if N_a/N_b ≤ 1/κ
/// and 1 − λ_a < τ, else λ_a.
struct remix {
  double alpha = 1.0;
  double kappa = 3.0;
  double tau = 0.5;
  std::string at = "input";
  index_t start_epoch = 0;
  index_t stop_epoch = -1;  ///< −1: until the end
  [[nodiscard]] std::string point() const { return at; }
  [[nodiscard]] bool active(index_t e) const { return detail::in_epochs(e, start_epoch, stop_epoch); }
  [[nodiscard]] std::string name() const { return "remix(alpha=" + std::to_string(alpha) + ",kappa=" + std::to_string(kappa) + ",tau=" + std::to_string(tau) + ")"; }
  /// Own-label weight for own class size na, partner class size nb and own share la.
  [[nodiscard]] double label_weight(double na, double nb, double la) const {
    if (na / nb >= kappa && la < tau) return 0.0;
    if (na / nb <= 1.0 / kappa && 1.0 - la < tau) return 1.0;
    return la;
  }
  template <real_scalar T, device D>
  mix_result<T, D> mix(const variable<T, D>& h, const tensor<std::int64_t, D>& y, const std::vector<double>& counts,
                       rng& g) const {
    detail::check_alpha(alpha, "remix");
    const index_t B = h.size(0);
    const auto perm = detail::random_permutation(B, g);
    const double lam = g.beta(alpha, alpha);
    const auto yc = ltl::detail::to_host(y);
    const auto yb = detail::permute_labels(yc, perm);
    tensor<T> w(shape{B});
    for (index_t i = 0; i < B; ++i) {
      const auto a = static_cast<std::size_t>(yc.data()[i]), b = static_cast<std::size_t>(yb.data()[i]);
      LTL_CHECK(a < counts.size() && b < counts.size(), value_error, "remix: label outside the {} class counts",
                counts.size());
      w.data()[i] = static_cast<T>(label_weight(counts[a], counts[b], 1.0 - lam));
    }
    return {lerp_mix(h, h, tensor<T, D>::full(shape{B}, static_cast<T>(lam)), perm.template to<D>()),
            yb.template to<D>(), w.template to<D>()};
  }
};

}  // namespace ltl::mixing
