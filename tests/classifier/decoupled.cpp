// Tests of classifier/: the post-hoc transforms (posthoc.hpp), NCM, cRT, LWS and stage 2
// (decoupled.hpp), tau search, and feature extraction against the image path (features.hpp).
#include <catch2/catch.hpp>
#include <ltlearn/classifier/decoupled.hpp>
#include <ltlearn/classifier/features.hpp>
#include <ltlearn/classifier/posthoc.hpp>
#include <ltlearn/eval/analysis.hpp>
#include <ltlearn/eval/batched_pass.hpp>
#include <ltlearn/eval/scope.hpp>
#include <ltlearn/metrics/analysis.hpp>
#include <ltlearn/metrics/calibration.hpp>
#include <ltlearn/metrics/class_analysis.hpp>
#include <ltlearn/nn/activation.hpp>
#include <ltlearn/ops/shape_ops.hpp>
#include <ltlearn/train/evaluate.hpp>

#include "support/test_aliases.hpp"
#include "support/tiny_model.hpp"

#include <cmath>
#include <functional>
#include <map>
#include <span>
#include <vector>

namespace cl = ltl::classifier;
namespace lm = ltl::metrics;
using namespace ltl_test;  // test_aliases.hpp, tiny_model.hpp

namespace {

/// Root of an increasing function on [lo, hi] by bisection.
double bisect(const std::function<double(double)>& f, double lo, double hi) {
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    (f(mid) > 0 ? hi : lo) = mid;
  }
  return 0.5 * (lo + hi);
}

/// One-hot features e_y, counts[y] rows of class y.
cl::feature_table<double> one_hot_table(const std::vector<index_t>& counts) {
  const auto C = static_cast<index_t>(counts.size());
  std::vector<double> f;
  std::vector<std::int64_t> y;
  for (index_t c = 0; c < C; ++c)
    for (index_t i = 0; i < counts[static_cast<std::size_t>(c)]; ++i) {
      for (index_t j = 0; j < C; ++j) f.push_back(j == c ? 1.0 : 0.0);
      y.push_back(c);
    }
  const auto N = static_cast<index_t>(y.size());
  return cl::make_feature_table(TD::from({N, C}, f), TL::from({N}, y), C);
}

}  // namespace

TEST_CASE("tau-normalisation, N_c^tau and post-hoc logit adjustment transforms", "[classifier]") {
  const TD w = TD::from({3, 2}, {3, 4, 0, 2, 1, 0});  // row norms 5, 2, 1
  const TD b = TD::from({3}, {0.1, 0.2, 0.3});
  auto fc = cl::make_linear_head(w, b);

  auto t0 = cl::tau_normalize(w, 0.0);
  REQUIRE(t0.to_vector() == w.to_vector());
  auto t1 = cl::tau_normalize(w, 1.0);
  const std::vector<double> unit{0.6, 0.8, 0, 1, 1, 0};
  for (std::size_t i = 0; i < unit.size(); ++i) REQUIRE(t1.to_vector()[i] == Approx(unit[i]).epsilon(1e-14));
  auto th = cl::tau_normalize(w, 0.5);
  REQUIRE(row(th, 0)[1] == Approx(4 / std::sqrt(5.0)));
  REQUIRE(row(th, 1)[1] == Approx(2 / std::sqrt(2.0)));
  REQUIRE(row(th, 2)[0] == Approx(1.0));

  // The τ-normalised head drops the bias: logits of x = (1, 1) are (1.4, 1, 1) at τ = 1.
  auto tn = cl::tau_normalized(*fc, 1.0);
  REQUIRE_FALSE(tn->bias.defined());
  const VD x(TD::from({1, 2}, {1, 1}));
  auto z = tn->forward(x).value().to_vector();
  REQUIRE(z[0] == Approx(1.4));
  REQUIRE(z[1] == Approx(1.0));
  REQUIRE(z[2] == Approx(1.0));

  // N_c^τ: w_c / N_c^τ with counts 100, 10, 1 and τ = 0.5 → factors 0.1, 1/√10, 1.
  const std::vector<double> counts{100, 10, 1};
  auto nc = cl::nc_tau_scale(w, counts, 0.5);
  REQUIRE(row(nc, 0)[0] == Approx(0.3));
  REQUIRE(row(nc, 0)[1] == Approx(0.4));
  REQUIRE(row(nc, 1)[1] == Approx(2 / std::sqrt(10.0)));
  REQUIRE(row(nc, 2)[0] == Approx(1.0));
  REQUIRE(cl::nc_tau_scale(w, counts, 0.0).to_vector() == w.to_vector());
  auto nch = cl::nc_tau_normalized(*fc, counts, 0.5);
  REQUIRE_FALSE(nch->bias.defined());
  REQUIRE(nch->forward(x).value().to_vector()[0] == Approx(0.7));
  // The bias option: dropped (the default, above) or scaled with the weights, (w_c·x + b_c)/N_c^τ.
  auto ncd = cl::nc_tau_normalized(*fc, counts, 0.5, cl::nc_tau_bias::drop);
  REQUIRE_FALSE(ncd->bias.defined());
  REQUIRE(ncd->forward(x).value().to_vector() == nch->forward(x).value().to_vector());
  auto ncs = cl::nc_tau_normalized(*fc, counts, 0.5, cl::nc_tau_bias::scale);
  REQUIRE(ncs->bias.defined());
  const auto zs = ncs->forward(x).value().to_vector();
  REQUIRE(zs[0] == Approx((7 + 0.1) / 10).epsilon(1e-14));
  REQUIRE(zs[1] == Approx((2 + 0.2) / std::sqrt(10.0)).epsilon(1e-14));
  REQUIRE(zs[2] == Approx(1 + 0.3).epsilon(1e-14));
  REQUIRE(ncs->weight.value().to_vector() == nch->weight.value().to_vector());
  REQUIRE(fc->bias.value().to_vector() == std::vector<double>{0.1, 0.2, 0.3});  // the source is untouched
  // A classifier without bias gives the same head either way.
  auto nobias = cl::make_linear_head(w);
  auto nsc = cl::nc_tau_normalized(*nobias, counts, 0.5, cl::nc_tau_bias::scale);
  REQUIRE_FALSE(nsc->bias.defined());
  REQUIRE(nsc->weight.value().to_vector() == nch->weight.value().to_vector());

  // Post-hoc LA: z_c − τ·log π_c with π = (100, 10, 1)/111.
  const auto off = cl::logit_adjustment_offsets(counts, 1.0);
  REQUIRE(off[0] == Approx(-std::log(100.0 / 111)));
  REQUIRE(off[2] == Approx(std::log(111.0)));
  const auto base = fc->forward(x).value().to_vector();
  for (double tau : {0.0, 1.0, 2.0}) {
    auto la = cl::logit_adjusted(*fc, counts, tau);
    const auto za = la->forward(x).value().to_vector();
    for (std::size_t c = 0; c < 3; ++c) REQUIRE(za[c] - base[c] == Approx(-tau * std::log(counts[c] / 111)).margin(1e-12));
  }
  // The same shift on any head, and a scale: z·s + o.
  cl::class_affine_head<double> aff(fc, std::vector<double>{1, 2, 3}, off);
  const auto zf = aff.forward(x).value().to_vector();
  for (std::size_t c = 0; c < 3; ++c) REQUIRE(zf[c] == Approx(base[c] * static_cast<double>(c + 1) + off[c]));

  REQUIRE_THROWS_AS(cl::nc_tau_scale(w, std::vector<double>{1, 2}, 0.5), ltl::shape_error);
  REQUIRE_THROWS_AS(cl::logit_adjustment_offsets(std::vector<double>{1, 0}, 1.0), ltl::value_error);
  REQUIRE_THROWS_AS(cl::make_linear_head(w, TD::from({2}, {0, 0})), ltl::shape_error);

  // float instantiation
  auto wf = cl::tau_normalize(ltl::tensor<float>::from({1, 2}, {3.f, 4.f}), 1.0);
  REQUIRE(wf.to_vector()[1] == Approx(0.8f));
}

TEST_CASE("NCM with cosine and Euclidean distances", "[classifier]") {
  // class 0: (3, 0), (0.5, 0) → mean of unit rows (1, 0); class 1: (0, 2), (1, 1) → ((1/√2)/2, (1 + 1/√2)/2);
  // class 2: (−1, 0).
  const auto t = cl::make_feature_table(TD::from({5, 2}, {3, 0, 0.5, 0, 0, 2, 1, 1, -1, 0}), TL::from({5}, {0, 0, 1, 1, 2}), 3);
  const double r = 1 / std::sqrt(2.0);
  const std::vector<double> m1{r / 2, (1 + r) / 2};
  auto cos = cl::make_ncm(t, cl::ncm_metric::cosine);
  auto l2 = cl::make_ncm(t, cl::ncm_metric::euclidean);
  REQUIRE(row(cos->means(), 1)[0] == Approx(m1[0]));
  REQUIRE(row(cos->means(), 1)[1] == Approx(m1[1]));
  const VD x(TD::from({1, 2}, {1, 1}));  // x̂ = (r, r)
  const auto zc = cos->forward(x).value().to_vector();
  const double n1 = std::hypot(m1[0], m1[1]);
  REQUIRE(zc[0] == Approx(r));
  REQUIRE(zc[1] == Approx(r * (m1[0] + m1[1]) / n1));
  REQUIRE(zc[2] == Approx(-r));
  const auto ze = l2->forward(x).value().to_vector();
  REQUIRE(ze[0] == Approx(-std::hypot(r - 1, r)));
  REQUIRE(ze[1] == Approx(-std::hypot(r - m1[0], r - m1[1])));
  REQUIRE(ze[2] == Approx(-std::hypot(r + 1, r)));

  // Separable clusters at 0°, 120°, 240° with random radii and small angular noise: both metrics
  // classify fresh points perfectly.
  ltl::rng g(5);
  auto cluster = [&](index_t n) {
    std::vector<double> f;
    std::vector<std::int64_t> y;
    for (index_t i = 0; i < n; ++i) {
      const auto c = static_cast<std::int64_t>(i % 3);
      const double a = 2.0943951 * static_cast<double>(c) + g.uniform(-0.3, 0.3), rad = g.uniform(0.2, 5.0);
      f.push_back(rad * std::cos(a));
      f.push_back(rad * std::sin(a));
      y.push_back(c);
    }
    return cl::make_feature_table(TD::from({n, 2}, f), TL::from({n}, y), 3);
  };
  const auto train = cluster(60), test = cluster(90);
  for (auto metric : {cl::ncm_metric::cosine, cl::ncm_metric::euclidean}) {
    auto ncm = cl::make_ncm(train, metric);
    const auto rep = cl::evaluate_features(cl::as_head<double>(*ncm), test, train.class_counts_double());
    REQUIRE(rep.top1 == 1.0);
  }
  const auto empty_class = cl::make_feature_table(TD::from({1, 2}, {1, 0}), TL::from({1}, {0}), 2);
  REQUIRE_THROWS_AS(cl::make_ncm(empty_class, cl::ncm_metric::cosine), ltl::value_error);
}

TEST_CASE("NCM cl2n: centred with the training mean, normalised, nearest mean", "[classifier]") {
  // Training rows: class 0 (4, 0), (2, 2); class 1 (0, 4), (−2, 2). Mean μ = (1, 2); centred rows
  // (3, −2), (1, 0), (−1, 2), (−3, 0); normalised (3, −2)/√13, (1, 0), (−1, 2)/√5, (−1, 0).
  const auto t = cl::make_feature_table(TD::from({4, 2}, {4, 0, 2, 2, 0, 4, -2, 2}), TL::from({4}, {0, 0, 1, 1}), 2);
  const double s13 = std::sqrt(13.0), s5 = std::sqrt(5.0);
  const std::vector<double> m0{(3 / s13 + 1) / 2, (-2 / s13) / 2}, m1{(-1 / s5 - 1) / 2, (2 / s5) / 2};
  auto ncm = cl::make_ncm(t, cl::ncm_metric::cl2n);
  REQUIRE(ncm->metric() == cl::ncm_metric::cl2n);
  REQUIRE(ncm->center().to_vector() == std::vector<double>{1, 2});
  for (std::size_t j = 0; j < 2; ++j) {
    REQUIRE(row(ncm->means(), 0)[j] == Approx(m0[j]).epsilon(1e-14));  // means of the centred unit rows,
    REQUIRE(row(ncm->means(), 1)[j] == Approx(m1[j]).epsilon(1e-14));  // not re-normalised
  }
  // x = (2, 3): centred (1, 1), normalised (r, r); z_c = −‖x̂ − m_c‖.
  const double r = 1 / std::sqrt(2.0);
  const auto z = ncm->forward(VD(TD::from({1, 2}, {2, 3}))).value().to_vector();
  REQUIRE(z[0] == Approx(-std::hypot(r - m0[0], r - m0[1])).epsilon(1e-12));
  REQUIRE(z[1] == Approx(-std::hypot(r - m1[0], r - m1[1])).epsilon(1e-12));
  // Test rows are centred with the training μ, not their batch's mean: a row's logits do not
  // depend on the other rows of its batch.
  const auto zb = ncm->forward(VD(TD::from({3, 2}, {2, 3, 0.9, 2, 100, -50}))).value().to_vector();
  REQUIRE(zb[0] == z[0]);
  REQUIRE(zb[1] == z[1]);
  // (0.9, 2) centred is (−0.1, 0), x̂ = (−1, 0): nearest to class 1's mean. Without centring
  // x̂ = (0.9, 2)/‖·‖ lies nearer class 0's mean of the plain unit rows: the centring decides.
  REQUIRE(zb[3] > zb[2]);
  REQUIRE(zb[2] == Approx(-std::hypot(-1 - m0[0], m0[1])).epsilon(1e-12));
  const auto zl = cl::make_ncm(t, cl::ncm_metric::euclidean)->forward(VD(TD::from({1, 2}, {0.9, 2}))).value().to_vector();
  REQUIRE(zl[0] > zl[1]);
  // Not trainable: no graph.
  REQUIRE_FALSE(ncm->forward(VD(TD::from({1, 2}, {2, 3}), true)).requires_grad());
  // A center belongs to cl2n only; cl2n needs one of the features' dimension.
  REQUIRE_THROWS_AS(cl::ncm_classifier<double>(ncm->means(), cl::ncm_metric::cosine, ncm->center()), ltl::value_error);
  REQUIRE_THROWS_AS(cl::ncm_classifier<double>(ncm->means(), cl::ncm_metric::cl2n), ltl::shape_error);
  REQUIRE_THROWS_AS(cl::ncm_classifier<double>(ncm->means(), cl::ncm_metric::cl2n, TD::from({3}, {0, 0, 0})),
                    ltl::shape_error);
  // The buffers travel with the module's state.
  REQUIRE(ncm->named_buffers().size() == 2);
  REQUIRE(cl::make_ncm(t, cl::ncm_metric::cosine)->named_buffers().size() == 1);
}

TEST_CASE("streaming class means", "[classifier]") {
  cl::class_means m(2, 2);
  m.add(TD::from({2, 2}, {3, 4, 1, 1}), TL::from({2}, {0, 1}), false);
  m.add(TD::from({1, 2}, {1, 0}), TL::from({1}, {0}), false);
  const auto mu = m.means<double>().to_vector();
  REQUIRE(mu == std::vector<double>{2, 2, 1, 1});
  cl::class_means u(2, 2);
  u.add(TD::from({2, 2}, {3, 4, 0, 2}), TL::from({2}, {0, 0}), true);
  const auto mn = u.means<double>().to_vector();
  REQUIRE(mn[0] == Approx(0.3));
  REQUIRE(mn[1] == Approx(0.9));
  REQUIRE(mn[2] == 0.0);
  REQUIRE(u.counts() == std::vector<index_t>{2, 0});
}

TEST_CASE("cRT reaches the class-balanced optimum in closed form", "[classifier]") {
  // One-hot features with counts 30, 10, 5, class-aware batches of 9 (three full rounds, so
  // every batch is exactly balanced). The balanced objective (1/C)Σ_y CE(W e_y + b, y) +
  // (λ/2)(‖W‖² + ‖b‖²) is minimised by W = αI + β(11ᵀ − I), b = 0 with β = −α/(C−1) and
  // α = (1 − p(α))/(Cλ), p(α) = 1/(1 + (C−1)·exp(−αC/(C−1))).
  const auto t = one_hot_table({30, 10, 5});
  const double lam = 0.05, C = 3;
  const double alpha = bisect(
      [&](double a) { return a - (1 - 1 / (1 + (C - 1) * std::exp(-a * C / (C - 1)))) / (C * lam); }, 0, 1 / (C * lam));
  // One sample per class visit and epochs of N rows (not Kang's defaults) keep every batch balanced.
  const cl::stage2_options o{.epochs = 120, .batch_size = 9, .lr = 0.5, .weight_decay = lam, .per_class = 1,
                             .length = cl::epoch_length::dataset, .seed = 3};
  auto fc = cl::crt<double>(cl::cached_source<double>(t), o);
  for (index_t c = 0; c < 3; ++c) {
    for (index_t j = 0; j < 3; ++j) REQUIRE(row(fc->weight.value(), c)[static_cast<std::size_t>(j)] == Approx(c == j ? alpha : -alpha / 2).margin(1e-4));
    REQUIRE(fc->bias.value().to_vector()[static_cast<std::size_t>(c)] == Approx(0).margin(1e-4));
  }
  // Instance-balanced data with two-stage class-balanced draws: still near the optimum.
  auto fc2 = cl::crt<double>(cl::cached_source<double>(t),
                             {.epochs = 120, .batch_size = 9, .lr = 0.5, .weight_decay = lam,
                              .sampler = cl::balance::two_stage, .length = cl::epoch_length::dataset, .seed = 4});
  REQUIRE(row(fc2->weight.value(), 2)[2] == Approx(alpha).epsilon(0.1));
}

namespace {
/// A cached source that records the rows of every batch, by epoch.
struct recording_source {
  const cl::cached_source<double>* inner;
  std::map<index_t, std::vector<index_t>>* seen;
  [[nodiscard]] std::span<const std::int64_t> labels() const { return inner->labels(); }
  [[nodiscard]] index_t num_classes() const { return inner->num_classes(); }
  [[nodiscard]] index_t dim() const { return inner->dim(); }
  [[nodiscard]] std::pair<TD, TL> batch(index_t e, index_t b, std::span<const index_t> idx) const {
    auto& v = (*seen)[e];
    v.insert(v.end(), idx.begin(), idx.end());
    return inner->batch(e, b, idx);
  }
};
}  // namespace

TEST_CASE("stage 2 runs Kang et al.'s budget by default", "[classifier]") {
  // Counts 32, 8, 4: an epoch of max_c N_c × C = 96 draws in visits of 4 samples of one class.
  const auto t = one_hot_table({32, 8, 4});
  const cl::cached_source<double> cached(t);
  static_assert(cl::feature_source<recording_source, double>);
  const std::vector<std::int64_t> y(t.labels.data(), t.labels.data() + t.size());
  REQUIRE(cl::stage2_options{}.draws_per_epoch(y, 3) == 96);
  REQUIRE(cl::stage2_options{.length = cl::epoch_length::dataset}.draws_per_epoch(y, 3) == 44);
  REQUIRE(cl::stage2_options{.epoch_size = 50}.draws_per_epoch(y, 3) == 50);
  REQUIRE(cl::stage2_options{}.per_class == 4);
  REQUIRE(cl::stage2_options{}.sampler == cl::balance::class_aware);
  REQUIRE(cl::stage2_options{}.epochs_or(cl::crt_epochs) == 10);
  REQUIRE(cl::stage2_options{.epochs = 3}.epochs_or(cl::lws_epochs) == 3);

  auto check_epochs = [&](const std::map<index_t, std::vector<index_t>>& seen, std::size_t epochs, index_t k) {
    REQUIRE(seen.size() == epochs);
    for (const auto& [e, rows] : seen) {
      INFO("epoch " << e);
      REQUIRE(rows.size() == 96);
      std::vector<index_t> per_class(3, 0);
      for (index_t i : rows) ++per_class[static_cast<std::size_t>(y[static_cast<std::size_t>(i)])];
      REQUIRE(per_class == std::vector<index_t>{32, 32, 32});  // 24 visits = 8 full rounds
      const auto kk = static_cast<std::size_t>(k);
      for (std::size_t v = 0; v * kk < rows.size(); ++v)
        for (std::size_t j = 1; j < kk; ++j)
          REQUIRE(y[static_cast<std::size_t>(rows[v * kk + j])] == y[static_cast<std::size_t>(rows[v * kk])]);
    }
  };
  std::map<index_t, std::vector<index_t>> seen;
  cl::crt<double>(recording_source{&cached, &seen});
  check_epochs(seen, 10, 4);  // cRT: 10 epochs
  seen.clear();
  auto fc = cl::make_linear_head(TD::from({3, 3}, {2, 0, 0, 0, 1, 0, 0, 0, 0.5}), TD::zeros({3}));
  cl::lws<double>(*fc, recording_source{&cached, &seen});
  check_epochs(seen, 5, 4);  // LWS: 5 epochs
  seen.clear();
  cl::learn_tau<double>(*fc, recording_source{&cached, &seen});
  check_epochs(seen, 10, 4);  // learned τ follows cRT
  // Every part of the budget is an option.
  seen.clear();
  cl::crt<double>(recording_source{&cached, &seen}, {.epochs = 3, .per_class = 2, .epoch_size = 30});
  REQUIRE(seen.size() == 3);
  for (const auto& [e, rows] : seen) {
    REQUIRE(rows.size() == 30);
    for (std::size_t v = 0; v < 15; ++v) REQUIRE(y[static_cast<std::size_t>(rows[2 * v])] == y[static_cast<std::size_t>(rows[2 * v + 1])]);
  }
  seen.clear();
  cl::lws<double>(*fc, recording_source{&cached, &seen}, {.sampler = cl::balance::two_stage, .length = cl::epoch_length::dataset});
  REQUIRE(seen.size() == 5);
  for (const auto& [e, rows] : seen) REQUIRE(rows.size() == 44);
  REQUIRE_THROWS_AS(cl::crt<double>(cached, {.epochs = -1}), ltl::value_error);
  REQUIRE_THROWS_AS(cl::crt<double>(cached, {.epoch_size = -5}), ltl::value_error);
  REQUIRE_THROWS_AS(cl::crt<double>(cached, {.per_class = 0}), ltl::value_error);
}

TEST_CASE("LWS learns the closed-form scales; learned tau finds the balanced optimum", "[classifier]") {
  // LWS on W = diag(2, 1, 0.5), b = 0, one-hot features: only class y's samples move f_y, and
  // f_y = (1 − p_y)·w_y/(Cλ) with p_y = 1/(1 + (C−1)·exp(−f_y·w_y)).
  const auto t = one_hot_table({30, 10, 5});
  const std::vector<double> wd{2, 1, 0.5};
  auto fc = cl::make_linear_head(TD::from({3, 3}, {2, 0, 0, 0, 1, 0, 0, 0, 0.5}), TD::zeros({3}));
  const double lam = 0.05, C = 3;
  auto head = cl::lws<double>(*fc, cl::cached_source<double>(t),
                              {.epochs = 120, .batch_size = 9, .lr = 0.5, .weight_decay = lam, .per_class = 1,
                               .length = cl::epoch_length::dataset, .seed = 1});
  const auto f = head->scale.value().to_vector();
  for (std::size_t y = 0; y < 3; ++y) {
    const double w = wd[y];
    const double fy = bisect([&](double s) { return s - (1 - 1 / (1 + (C - 1) * std::exp(-s * w))) * w / (C * lam); }, 0,
                             w / (C * lam));
    REQUIRE(f[y] == Approx(fy).margin(1e-4));
  }
  REQUIRE(fc->weight.value().to_vector()[0] == 2.0);  // the source classifier is untouched
  const VD x(TD::from({1, 3}, {0.3, -1, 2}));
  const auto zl = head->forward(x).value().to_vector(), zf = head->folded()->forward(x).value().to_vector();
  for (std::size_t c = 0; c < 3; ++c) REQUIRE(zl[c] == Approx(zf[c]));

  // Learned τ: W = diag(3, 1), class 0 features (1, 1), class 1 features (1, 2). With a = 3^{1−τ}
  // the balanced loss is ½[softplus(1 − a) + softplus(a − 2)], minimal at a = 1.5.
  std::vector<double> feats;
  std::vector<std::int64_t> y;
  for (int i = 0; i < 40; ++i) {
    const bool minor = i % 8 == 0;  // 5 of 40
    feats.push_back(1);
    feats.push_back(minor ? 2 : 1);
    y.push_back(minor ? 1 : 0);
  }
  const auto t2 = cl::make_feature_table(TD::from({40, 2}, feats), TL::from({40}, y), 2);
  auto fc2 = cl::make_linear_head(TD::from({2, 2}, {3, 0, 0, 1}));
  const double tau = cl::learn_tau<double>(*fc2, cl::cached_source<double>(t2),
                                           {.epochs = 200, .batch_size = 8, .lr = 1.0, .weight_decay = 0, .per_class = 1,
                                            .length = cl::epoch_length::dataset, .seed = 2},
                                           0.0);
  REQUIRE(tau == Approx(1 - std::log(1.5) / std::log(3.0)).margin(1e-3));
}

TEST_CASE("tau search recovers the best tau", "[classifier]") {
  // W = diag(2, 0.5): class 0 at (1, 1.2) is right iff 4^{1−τ} > 1.2, class 1 at (1, 1.5) iff
  // 4^{1−τ} < 1.5: on the grid 0, 0.1, …, 1 only τ = 0.8 gets both.
  const auto val = cl::make_feature_table(TD::from({2, 2}, {1, 1.2, 1, 1.5}), TL::from({2}, {0, 1}), 2);
  auto fc = cl::make_linear_head(TD::from({2, 2}, {2, 0, 0, 0.5}));
  const auto r = cl::search_tau<double>([&](double tau) { return cl::tau_normalized(*fc, tau); }, val);
  REQUIRE(r.tau == Approx(0.8));
  REQUIRE(r.score == 1.0);
  REQUIRE(r.taus.size() == 11);
  for (std::size_t i = 0; i < r.taus.size(); ++i)
    if (std::abs(r.taus[i] - 0.8) > 1e-9) REQUIRE(r.scores[i] == 0.5);

  // N_c^τ with W = I and counts (16, 1): class 0 at (1, 0.3) needs 16^{−τ} > 0.3, class 1 at
  // (1, 0.4) needs 16^{−τ} < 0.4: only τ = 0.4 on the grid.
  const auto val2 = cl::make_feature_table(TD::from({2, 2}, {1, 0.3, 1, 0.4}), TL::from({2}, {0, 1}), 2);
  auto eye = cl::make_linear_head(TD::from({2, 2}, {1, 0, 0, 1}));
  const std::vector<double> counts{16, 1};
  const auto r2 = cl::search_tau<double>(
      [&](double tau) {
        return [h = cl::nc_tau_normalized(*eye, counts, tau)](const VD& v) { return h->forward(v); };
      },
      val2);
  REQUIRE(r2.tau == Approx(0.4));
  REQUIRE(r2.score == 1.0);
  // Ties keep the first τ.
  const auto r3 = cl::search_tau<double>([&](double) { return eye; }, val2, {.lo = 0, .hi = 0.5, .step = 0.25});
  REQUIRE(r3.tau == 0.0);
  REQUIRE(r3.taus.size() == 3);
}


TEST_CASE("analyze, feature extraction and evaluation on features agree with the image path", "[metrics][classifier]") {
  tiny_model model;
  const auto train = tiny_dataset(45, 1), test = tiny_dataset(30, 2);
  const auto r = ltl::eval::analyze(model, train, test, tiny_norm, {.point = "stem", .dev = {.rounds = 20}});
  REQUIRE(r.train_counts == std::vector<double>{30, 15});
  REQUIRE(r.grad_norms == ltl::eval::feature_gradient_norms(model, train, tiny_norm, "stem"));
  REQUIRE(r.classifier_norms == lm::weight_norms(model.fc->weight.value()));
  REQUIRE(r.feature_deviation.size() == 2);
  double predicted = 0;
  for (std::size_t c = 0; c < 2; ++c) predicted += r.classification_ratio[c] * r.train_counts[c];
  REQUIRE(predicted == Approx(45));
  const std::vector<double> counts{30, 15};
  const auto ev = ltl::train::evaluate(model, test, tiny_norm, counts);
  REQUIRE(r.test_top1 == ev.top1);
  REQUIRE(r.test_accuracy == ev.per_class);
  REQUIRE(r.test_ece == Approx(ev.ece));
  const auto j = r.to_json();
  REQUIRE(j["shot_group"][0] == "medium");
  REQUIRE(j["test_many"].is_null());
  REQUIRE(j["shot_group"][1] == "few");

  // Cached features through the classifier = the model on images.
  const auto ft = cl::extract_features(model, test, tiny_norm, 8);
  REQUIRE(ft.size() == 30);
  REQUIRE(ft.dim() == 3);
  const auto viaf = cl::evaluate_features(cl::as_head<double>(model.classifier()), ft, counts);
  REQUIRE(viaf.top1 == ev.top1);
  REQUIRE(viaf.loss == Approx(ev.loss).epsilon(1e-12));
  REQUIRE(viaf.confusion == ev.confusion);
  // A post-hoc head through evaluate_with on images = on cached features.
  auto la = cl::logit_adjusted(cl::linear_classifier(model), counts, 1.0);
  model.eval();
  const auto img = ltl::train::evaluate_with<double>([&](const VD& x) { return la->forward(model.features(x)); }, test,
                                                    tiny_norm, counts);
  model.train();
  const auto feat = cl::evaluate_features(cl::as_head<double>(*la), ft, counts);
  REQUIRE(img.confusion == feat.confusion);
  REQUIRE(img.loss == Approx(feat.loss).epsilon(1e-12));

  // The backbone source without augmentation (only the normalisation) gives the cached rows.
  cl::backbone_source<double> bs(model, test, [](TD& x, ltl::rng&) { tiny_norm(x); }, 0);
  REQUIRE(bs.dim() == 3);
  const std::vector<index_t> idx{4, 0, 7};
  REQUIRE(bs.batch(0, 0, idx).first.to_vector() == ft.rows(idx).first.to_vector());
  REQUIRE(model.is_training());
  // A cRT head through the backbone trains and replaces the model's classifier.
  auto head = cl::crt<double>(bs, {.epochs = 2, .batch_size = 8});
  model.set_classifier(head);
  REQUIRE(&model.classifier() == head.get());
}
