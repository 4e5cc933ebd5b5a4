#pragma once
/// \file
/// Classifiers made without training, from a trained linear classifier or cached features
/// (SPEC §9), and the choice of their τ:
///   - NCM (Kang et al., ICLR 2020, §4): class means m_c of L2-normalised training features;
///     cosine z_c = ⟨x̂, m_c/‖m_c‖⟩ or Euclidean z_c = −‖x̂ − m_c‖₂, with x̂ = x/‖x‖; or
///     "cl2n", their code's default: x̂ = (x − μ)/‖x − μ‖ with μ the mean training feature.
///   - τ-normalisation (Kang Eq. 3): w̃_c = w_c/‖w_c‖^τ, bias dropped.
///   - N_c^τ rule (Ye et al., CDT paper §4.1, Eq. 5): w̃_c = w_c/N_c^τ, bias dropped or scaled
///     alike (nc_tau_bias).
///   - post-hoc logit adjustment (Menon et al.): z_c − τ·log π_c with π_c = N_c/N.
///   - τ by grid search: the mean per-class accuracy on the balanced held-out split, or on the
///     training set (Kang App. B.5) — pass the table to score on.
/// Shapes: weights [C, F], bias [C], features [N, F], logits [N, C].

#include "ltlearn/classifier/features.hpp"
#include "ltlearn/metrics/class_analysis.hpp"
#include "ltlearn/metrics/selection.hpp"
#include "ltlearn/nn/linear.hpp"
#include "ltlearn/ops/activation.hpp"
#include "ltlearn/ops/linalg.hpp"

#include <nlohmann/json.hpp>
#include <xtensor/xadapt.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>
#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include <array>
#include <cmath>
#include <memory>
#include <span>
#include <vector>

namespace ltl::classifier {

/// Rows of w [C, F] multiplied by factors [C].
template <real_scalar T>
tensor<T> scale_rows(const tensor<T>& w, std::span<const double> factors) {
  LTL_CHECK(w.dim() == 2 && static_cast<index_t>(factors.size()) == w.size(0), shape_error,
            "scale_rows: weights {} and {} factors", w.sizes(), factors.size());
  tensor<T> out = w.contiguous().clone();
  const auto C = static_cast<std::size_t>(w.size(0)), F = static_cast<std::size_t>(w.size(1));
  auto o = xt::adapt(out.data(), C * F, xt::no_ownership(), std::array<std::size_t, 2>{C, F});
  const auto f = xt::adapt(factors.data(), C, xt::no_ownership(), std::array<std::size_t, 1>{C});
  xt::noalias(o) *= xt::view(xt::cast<T>(f), xt::all(), xt::newaxis());  // factor c (rounded to T) along row c
  return out;
}

/// τ-normalised weights w_c/‖w_c‖^τ (τ = 0: unchanged, τ = 1: unit rows). A zero row stays zero.
template <real_scalar T>
tensor<T> tau_normalize(const tensor<T>& w, double tau) {
  auto n = metrics::weight_norms(w);
  for (auto& v : n) v = v > 0 ? std::pow(v, -tau) : 1.0;
  return scale_rows(w, n);
}

/// N_c^τ rule: w_c/N_c^τ for class counts [C] (all positive).
template <real_scalar T>
tensor<T> nc_tau_scale(const tensor<T>& w, std::span<const double> counts, double tau) {
  std::vector<double> f(counts.size());
  for (std::size_t c = 0; c < counts.size(); ++c) {
    LTL_CHECK(counts[c] > 0, value_error, "nc_tau_scale: class {} has count {}; N_c^tau needs N_c > 0", c, counts[c]);
    f[c] = std::pow(counts[c], -tau);
  }
  return scale_rows(w, f);
}

/// Post-hoc logit-adjustment offsets −τ·log π_c, π_c = N_c/N, [C] (all counts positive).
inline std::vector<double> logit_adjustment_offsets(std::span<const double> counts, double tau) {
  double total = 0;
  for (std::size_t c = 0; c < counts.size(); ++c) {
    LTL_CHECK(counts[c] > 0, value_error, "logit_adjustment_offsets: class {} has count {}; log pi_c needs N_c > 0", c,
              counts[c]);
    total += counts[c];
  }
  std::vector<double> o(counts.size());
  for (std::size_t c = 0; c < counts.size(); ++c) o[c] = -tau * std::log(counts[c] / total);
  return o;
}

/// A linear head x·Wᵀ + b on device D holding copies of weight [C, F] and bias [C]
/// (undefined: no bias), usable as a model's classifier (`staged_model::set_classifier`).
template <real_scalar T, device D = cpu::device>
std::shared_ptr<nn::linear<T, D>> make_linear_head(const tensor<T, D>& weight, const tensor<T, D>& bias = {}) {
  LTL_CHECK(weight.dim() == 2, shape_error, "make_linear_head: weight must be [C, F], got {}", weight.sizes());
  LTL_CHECK(!bias.defined() || (bias.dim() == 1 && bias.size(0) == weight.size(0)), shape_error,
            "make_linear_head: bias {} does not match weight {}", bias.defined() ? bias.sizes() : shape{}, weight.sizes());
  rng g(0);  // the initial values are overwritten below
  auto fc = std::make_shared<nn::linear<T, D>>(
      nn::linear_options{.in_features = weight.size(1), .out_features = weight.size(0), .bias = bias.defined()}, g);
  fc->weight.value().copy_(weight);
  if (bias.defined()) fc->bias.value().copy_(bias);
  return fc;
}

/// The model's classifier as nn::linear; value_error when it is another kind of head.
template <real_scalar T>
nn::linear<T>& linear_classifier(nn::staged_model<T>& model) {
  auto* fc = dynamic_cast<nn::linear<T>*>(&model.classifier());
  LTL_CHECK(fc != nullptr, value_error,
            "linear_classifier: the model's classifier is not nn::linear (a cosine classifier has no weight norms to "
            "rescale; use class_affine_head)");
  return *fc;
}

/// τ-normalised classifier (Kang Eq. 3): weights w_c/‖w_c‖^τ, no bias.
template <real_scalar T>
std::shared_ptr<nn::linear<T>> tau_normalized(const nn::linear<T>& fc, double tau) {
  return make_linear_head(tau_normalize(fc.weight.value(), tau));
}

/// What the N_c^τ rule does with the classifier's bias b_c.
///
/// The CDT paper's Eq. 5, ŷ = argmax_c (w_c/N_c^τ)ᵀ f(x), has no bias, and the paper does not say
/// what becomes of one: its footnote 2 omits the bias "for brevity" from every classifier formula
/// (which would make the decision value w_cᵀf + b_c, all of it divided by N_c^τ — `scale`), while
/// Eq. 5 is introduced as Eq. 4, Kang et al.'s τ-normalisation, with N_c in place of ‖w_c‖, and
/// Kang et al. discard the bias there (`drop`). Neither reading is stated, so the default keeps
/// ltlearn's earlier behaviour, `drop`, which also matches τ-normalisation; the held-out split can
/// compare the two.
enum class nc_tau_bias {
  drop,   ///< z_c = w_cᵀx/N_c^τ (the default)
  scale,  ///< z_c = (w_cᵀx + b_c)/N_c^τ: the bias scaled with the weights
};

/// N_c^τ classifier (CDT Eq. 5): weights w_c/N_c^τ; the bias dropped or scaled by the same
/// factor (`bias`; a classifier without bias gives the same head either way).
template <real_scalar T>
std::shared_ptr<nn::linear<T>> nc_tau_normalized(const nn::linear<T>& fc, std::span<const double> counts, double tau,
                                                 nc_tau_bias bias = nc_tau_bias::drop) {
  auto w = nc_tau_scale(fc.weight.value(), counts, tau);
  if (bias == nc_tau_bias::drop || !fc.bias.defined()) return make_linear_head(w);
  const index_t C = fc.bias.numel();
  const auto b = nc_tau_scale(fc.bias.value().contiguous().view(shape{C, 1}), counts, tau);
  return make_linear_head(w, b.view(shape{C}));
}

/// Post-hoc logit adjustment folded into the bias: b_c − τ·log π_c (a bias is added if absent).
template <real_scalar T>
std::shared_ptr<nn::linear<T>> logit_adjusted(const nn::linear<T>& fc, std::span<const double> counts, double tau) {
  const auto off = logit_adjustment_offsets(counts, tau);
  const index_t C = fc.weight.size(0);
  LTL_CHECK(static_cast<index_t>(off.size()) == C, shape_error, "logit_adjusted: {} counts for {} classes", off.size(), C);
  tensor<T> b(shape{C});
  for (index_t c = 0; c < C; ++c)
    b.data()[c] = (fc.bias.defined() ? fc.bias.value().contiguous().data()[c] : T(0)) + static_cast<T>(off[static_cast<std::size_t>(c)]);
  return make_linear_head(fc.weight.value(), b);
}

/// z_c·s_c + o_c over any head (e.g. N_c^τ or logit adjustment of a cosine classifier, whose
/// weights cannot be rescaled). scale and offset are buffers [C].
template <real_scalar T>
class class_affine_head : public nn::unary_module<T> {
 public:
  using typename nn::module<T>::var;
  class_affine_head(std::shared_ptr<nn::unary_module<T>> base, std::span<const double> scale,
                    std::span<const double> offset)
      : base_(this->register_module("base", std::move(base))) {
    LTL_CHECK(scale.size() == offset.size() && !scale.empty(), shape_error,
              "class_affine_head: {} scales and {} offsets", scale.size(), offset.size());
    const auto C = static_cast<index_t>(scale.size());
    tensor<T> s(shape{C}), o(shape{C});
    for (index_t c = 0; c < C; ++c) {
      s.data()[c] = static_cast<T>(scale[static_cast<std::size_t>(c)]);
      o.data()[c] = static_cast<T>(offset[static_cast<std::size_t>(c)]);
    }
    scale_ = this->register_buffer("scale", s);
    offset_ = this->register_buffer("offset", o);
  }
  var forward(const var& x) override {
    const var z = base_->forward(x);
    LTL_CHECK(z.dim() == 2 && z.size(1) == scale_.size(0), shape_error,
              "class_affine_head: base gave logits {} for {} classes", z.sizes(), scale_.size(0));
    return ltl::add(ltl::mul(z, var(scale_)), var(offset_));
  }

 private:
  std::shared_ptr<nn::unary_module<T>> base_;
  tensor<T> scale_, offset_;
};

/// Form of the nearest-class-mean classifier.
enum class ncm_metric {
  cosine,     ///< z_c = ⟨x̂, m_c/‖m_c‖⟩, x̂ = x/‖x‖, m_c the mean of the class's x̂
  euclidean,  ///< z_c = −‖x̂ − m_c‖₂, same x̂ and m_c
  /// Kang et al.'s code default ("cl2n"): x̂ = (x − μ)/‖x − μ‖ with μ the mean of all training
  /// features (test features are centred with the training μ too), m_c the mean of the class's
  /// x̂ (not re-normalised), z_c = −‖x̂ − m_c‖₂. Their code scores −‖x̂ − m_c‖², which has the same
  /// nearest mean.
  cl2n,
};

/// Nearest class mean classifier. Holds the class means m_c [C, F] (buffer "means") and, for
/// cl2n, the training-feature mean μ [F] (buffer "center"). Not trainable; the Euclidean and
/// cl2n outputs record no graph.
template <real_scalar T>
class ncm_classifier : public nn::unary_module<T> {
 public:
  using typename nn::module<T>::var;
  /// `center` is μ for cl2n and must be left undefined for the other forms.
  ncm_classifier(const tensor<T>& means, ncm_metric metric, const tensor<T>& center = {}) : metric_(metric) {
    LTL_CHECK(means.dim() == 2, shape_error, "ncm_classifier: means must be [C, F], got {}", means.sizes());
    means_ = this->register_buffer("means", means.contiguous().clone());
    if (metric == ncm_metric::cl2n) {
      LTL_CHECK(center.defined() && center.dim() == 1 && center.size(0) == means.size(1), shape_error,
                "ncm_classifier: cl2n needs the training-feature mean [{}], got {}", means.size(1),
                center.defined() ? center.sizes() : shape{});
      center_ = this->register_buffer("center", center.contiguous().clone());
    } else {
      LTL_CHECK(!center.defined(), value_error, "ncm_classifier: a center is only used by the cl2n form");
    }
  }
  var forward(const var& x) override {
    LTL_CHECK(x.dim() == 2 && x.size(1) == means_.size(1), shape_error, "ncm_classifier: features {} for means {}",
              x.sizes(), means_.sizes());
    const var xh = ltl::l2_normalize(metric_ == ncm_metric::cl2n ? ltl::sub(x, var(center_)) : x, 1);
    if (metric_ == ncm_metric::cosine) return ltl::linear(xh, ltl::l2_normalize(var(means_), 1));
    no_grad_guard ng;
    const auto dot = ltl::linear(xh, var(means_)).value().contiguous();  // [B, C]
    const auto xc = xh.value().contiguous();
    const index_t B = x.size(0), C = means_.size(0), F = means_.size(1);
    std::vector<double> m2(static_cast<std::size_t>(C), 0.0);
    for (index_t c = 0; c < C; ++c)
      for (index_t j = 0; j < F; ++j) m2[static_cast<std::size_t>(c)] += static_cast<double>(means_.data()[c * F + j]) * means_.data()[c * F + j];
    tensor<T> z(shape{B, C});
    for (index_t i = 0; i < B; ++i) {
      double x2 = 0;
      for (index_t j = 0; j < F; ++j) x2 += static_cast<double>(xc.data()[i * F + j]) * xc.data()[i * F + j];
      for (index_t c = 0; c < C; ++c) {
        const double d2 = x2 - 2.0 * dot.data()[i * C + c] + m2[static_cast<std::size_t>(c)];
        z.data()[i * C + c] = static_cast<T>(-std::sqrt(std::max(d2, 0.0)));
      }
    }
    return var(z);
  }
  [[nodiscard]] const tensor<T>& means() const noexcept { return means_; }
  /// μ [F] of the cl2n form (undefined for the others).
  [[nodiscard]] const tensor<T>& center() const noexcept { return center_; }
  [[nodiscard]] ncm_metric metric() const noexcept { return metric_; }

 private:
  tensor<T> means_, center_;
  ncm_metric metric_;
};

/// NCM from a training feature table (every class needs at least one row). For cl2n, μ is the
/// mean of all rows and the class means are taken over the centred, L2-normalised rows (Kang et
/// al.'s "cl2ncs"), in double.
template <real_scalar T>
std::shared_ptr<ncm_classifier<T>> make_ncm(const feature_table<T>& train, ncm_metric metric) {
  LTL_CHECK(train.size() > 0, value_error, "make_ncm: the training feature table is empty");
  class_means acc(train.num_classes, train.dim());
  tensor<T> center;
  if (metric == ncm_metric::cl2n) {
    const index_t N = train.size(), F = train.dim();
    const auto f = train.features.contiguous();
    // Plain row-major loops: an xtensor column reduction or broadcast over [N, F] (N up to 10^5,
    // F up to 2048) would walk columns or use per-element steppers, several times slower.
    std::vector<double> mu(static_cast<std::size_t>(F), 0.0);
    for (index_t i = 0; i < N; ++i)
      for (index_t j = 0; j < F; ++j) mu[static_cast<std::size_t>(j)] += static_cast<double>(f.data()[i * F + j]);
    center = tensor<T>(shape{F});
    for (index_t j = 0; j < F; ++j) {
      mu[static_cast<std::size_t>(j)] /= static_cast<double>(N);
      center.data()[j] = static_cast<T>(mu[static_cast<std::size_t>(j)]);
    }
    tensor<double> centred(shape{N, F});
    for (index_t i = 0; i < N; ++i)
      for (index_t j = 0; j < F; ++j)
        centred.data()[i * F + j] = static_cast<double>(f.data()[i * F + j]) - mu[static_cast<std::size_t>(j)];
    acc.add(centred, train.labels, true);
  } else {
    acc.add(train.features, train.labels, true);
  }
  for (std::size_t c = 0; c < acc.counts().size(); ++c)
    LTL_CHECK(acc.counts()[c] > 0, value_error, "make_ncm: class {} has no training features", c);
  return std::make_shared<ncm_classifier<T>>(acc.template means<T>(), metric, center);
}

/// An evenly spaced grid lo, lo + step, …, hi (inclusive up to rounding).
struct tau_grid {
  double lo = 0.0, hi = 1.0, step = 0.1;
  [[nodiscard]] std::vector<double> values() const {
    LTL_CHECK(step > 0 && hi >= lo, value_error, "tau_grid: [{}, {}] with step {}", lo, hi, step);
    std::vector<double> v;
    const auto n = static_cast<index_t>(std::floor((hi - lo) / step + 1e-9));
    for (index_t k = 0; k <= n; ++k) v.push_back(lo + static_cast<double>(k) * step);
    return v;
  }
};

/// Outcome of a τ search: the chosen τ, its score, and the whole curve.
struct tau_search_result {
  double tau = 0, score = 0;
  std::vector<double> taus, scores;
  [[nodiscard]] nlohmann::json to_json() const {
    return {{"tau", tau}, {"score", score}, {"taus", taus}, {"scores", scores}};
  }
};

namespace detail {
template <real_scalar T, class H>
variable<T> call_head(H& h, const variable<T>& x) {
  if constexpr (std::invocable<H&, const variable<T>&>) return h(x);
  else return h->forward(x);
}
}  // namespace detail

/// Grid search over τ: score(τ) = mean per-class accuracy of `make_head(τ)` on `on` (classes
/// without rows in `on` are skipped, as the held-out split skips small classes). `make_head`
/// returns a head callable or a pointer to a module. The choice is metrics::held_out_selector's
/// (ties keep the first, smallest τ).
template <real_scalar T, class MakeHead>
tau_search_result search_tau(MakeHead&& make_head, const feature_table<T>& on, const tau_grid& grid = {}) {
  LTL_CHECK(on.size() > 0, value_error, "search_tau: the table to score on is empty");
  tau_search_result r;
  r.score = -1;
  metrics::held_out_selector select;
  for (double tau : grid.values()) {
    auto h = make_head(tau);
    const auto z = logits_of<T>([&](const variable<T>& x) { return detail::call_head<T>(h, x); }, on);
    metrics::classification_meter m(on.num_classes, 1);
    m.add(z, on.labels);
    const double s = m.mean_per_class();
    r.taus.push_back(tau);
    r.scores.push_back(s);
    if (select.offer(s)) r.score = s, r.tau = tau;
  }
  return r;
}

}  // namespace ltl::classifier
