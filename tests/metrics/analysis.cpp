// Tests of metrics/: feature deviation and gradient norms (analysis.hpp, class_analysis.hpp),
// ECE per shot group (calibration.hpp), classification ratio and held-out selection (selection.hpp).
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
#include <ltlearn/metrics/selection.hpp>

#include "support/test_aliases.hpp"
#include "support/tiny_model.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <span>
#include <vector>
#include <optional>

namespace lm = ltl::metrics;
using namespace ltl_test;  // test_aliases.hpp, tiny_model.hpp

TEST_CASE("feature deviation matches a brute-force computation", "[metrics]") {
  ltl::rng g(9);
  const std::vector<index_t> ntr{12, 7, 5}, nte{6, 4, 3};
  auto make = [&](const std::vector<index_t>& n, TD& f, TL& y) {
    std::vector<double> fv;
    std::vector<std::int64_t> yv;
    for (std::size_t c = 0; c < n.size(); ++c)
      for (index_t i = 0; i < n[c]; ++i) {
        for (int j = 0; j < 4; ++j) fv.push_back(g.normal() + static_cast<double>(c == static_cast<std::size_t>(j)));
        yv.push_back(static_cast<std::int64_t>(c));
      }
    const auto N = static_cast<index_t>(yv.size());
    f = TD::from({N, 4}, fv);
    y = TL::from({N}, yv);
  };
  TD ftr, fte;
  TL ytr, yte;
  make(ntr, ftr, ytr);
  make(nte, fte, yte);
  const lm::deviation_options o{.k = 0, .rounds = 50, .seed = 17};
  const auto dis = lm::feature_deviation(ftr, ytr, fte, yte, 3, o);

  auto unit = [](const TD& f, index_t i) {
    auto v = row(f, i);
    double n = 0;
    for (double a : v) n += a * a;
    for (double& a : v) a /= std::sqrt(n);
    return v;
  };
  index_t first = 0;
  for (std::size_t c = 0; c < 3; ++c) {
    std::vector<double> mu(4, 0.0);
    index_t tfirst = 0;
    for (std::size_t k = 0; k < c; ++k) tfirst += nte[k];
    for (index_t i = 0; i < nte[c]; ++i)
      for (int j = 0; j < 4; ++j) mu[static_cast<std::size_t>(j)] += unit(fte, tfirst + i)[static_cast<std::size_t>(j)] / static_cast<double>(nte[c]);
    ltl::rng gc(17, c);
    double total = 0;
    for (int r = 0; r < 50; ++r) {
      std::vector<index_t> list(static_cast<std::size_t>(ntr[c]));
      for (index_t i = 0; i < ntr[c]; ++i) list[static_cast<std::size_t>(i)] = first + i;
      std::vector<double> m(4, 0.0);
      for (std::uint64_t j = 0; j < 5; ++j) {  // K = 5, the smallest class
        std::swap(list[j], list[j + gc.below(static_cast<std::uint64_t>(ntr[c]) - j)]);
        for (int d = 0; d < 4; ++d) m[static_cast<std::size_t>(d)] += unit(ftr, list[j])[static_cast<std::size_t>(d)] / 5;
      }
      double d2 = 0;
      for (int d = 0; d < 4; ++d) d2 += (m[static_cast<std::size_t>(d)] - mu[static_cast<std::size_t>(d)]) * (m[static_cast<std::size_t>(d)] - mu[static_cast<std::size_t>(d)]);
      total += std::sqrt(d2);
    }
    REQUIRE(dis[c] == Approx(total / 50).epsilon(1e-12));
    if (ntr[c] == 5) {  // K = N_c: every subsample is the whole class, whatever the seed
      std::vector<double> m(4, 0.0);
      for (index_t i = 0; i < 5; ++i)
        for (int d = 0; d < 4; ++d) m[static_cast<std::size_t>(d)] += unit(ftr, first + i)[static_cast<std::size_t>(d)] / 5;
      double d2 = 0;
      for (int d = 0; d < 4; ++d) d2 += std::pow(m[static_cast<std::size_t>(d)] - mu[static_cast<std::size_t>(d)], 2);
      REQUIRE(dis[c] == Approx(std::sqrt(d2)).epsilon(1e-12));
    }
    first += ntr[c];
  }
  REQUIRE(lm::feature_deviation(ftr, ytr, fte, yte, 3, {.k = 5, .rounds = 50, .seed = 17}) == dis);
  REQUIRE(lm::feature_deviation(ftr, ytr, fte, yte, 3, {.k = 5, .rounds = 50, .seed = 18}) != dis);
  REQUIRE_THROWS_AS(lm::feature_deviation(ftr, ytr, fte, yte, 3, {.k = 6}), ltl::value_error);
  REQUIRE_THROWS_AS(lm::feature_deviation(ftr, ytr, fte.narrow(1, 0, 3), yte, 3), ltl::shape_error);
}

TEST_CASE("ECE overall and per shot group on hand-computed predictions", "[metrics]") {
  // Confidences 0.75 (pred 0), 0.9 (pred 1), 0.6 (pred 0), 0.8 (pred 1); labels 0, 0, 0, 1.
  const TD z = TD::from({4, 2}, {std::log(3.0), 0, 0, std::log(9.0), std::log(1.5), 0, 0, std::log(4.0)});
  const TL y = TL::from({4}, {0, 0, 0, 1});
  lm::calibration_meter m({500, 5}, 10);  // class 0 many-shot, class 1 few-shot
  m.add(z, y);
  // One sample per bin: ECE = (0.25 + 0.9 + 0.4 + 0.2)/4.
  REQUIRE(m.ece() == Approx(0.4375));
  REQUIRE(*m.ece(ltl::shot_group::many) == Approx((0.25 + 0.9 + 0.4) / 3));
  REQUIRE(*m.ece(ltl::shot_group::few) == Approx(0.2));
  REQUIRE_FALSE(m.ece(ltl::shot_group::medium).has_value());
  lm::calibration_meter one({500, 5}, 1);  // one bin: |accuracy − mean confidence| = |0.75 − 0.7625|
  one.add(z, y);
  REQUIRE(one.ece() == Approx(0.0125));
  REQUIRE(one.bins()[0].accuracy == Approx(0.75));
  // Same binning as classification_meter.
  ltl::rng g(3);
  std::vector<double> zv;
  std::vector<std::int64_t> yv;
  for (int i = 0; i < 200; ++i) {
    for (int c = 0; c < 5; ++c) zv.push_back(2 * g.normal());
    yv.push_back(static_cast<std::int64_t>(g.below(5)));
  }
  const TD zr = TD::from({200, 5}, zv);
  const TL yr = TL::from({200}, yv);
  lm::calibration_meter cm({1, 1, 1, 1, 1}, 15);
  lm::classification_meter ref(5, 1, 15);
  cm.add(zr, yr);
  ref.add(zr, yr);
  REQUIRE(cm.ece() == Approx(ref.ece()).epsilon(1e-12));
  REQUIRE_THROWS_AS(cm.add(zr.narrow(1, 0, 4), yr), ltl::shape_error);
}

TEST_CASE("classification ratio and weight norms", "[metrics]") {
  // Confusion [[3, 1], [2, 0]] (row = true): 5 predicted as 0 of N_0 = 4, 1 as 1 of N_1 = 2.
  const auto r = lm::classification_ratio({3, 1, 2, 0}, {4, 2});
  REQUIRE(r[0] == Approx(1.25));
  REQUIRE(r[1] == Approx(0.5));
  REQUIRE(std::isnan(lm::classification_ratio({1, 0, 0, 0}, {1, 0})[1]));
  REQUIRE_THROWS_AS(lm::classification_ratio({1, 2, 3}, {1, 2}), ltl::shape_error);
  REQUIRE(lm::weight_norms(TD::from({2, 2}, {3, 4, 0, 1})) == std::vector<double>{5, 1});
}

TEST_CASE("feature-gradient norms per class against a direct computation", "[metrics]") {
  tiny_model model;
  const auto ds = tiny_dataset(30, 4);
  const auto norms = ltl::eval::feature_gradient_norms(model, ds, tiny_norm, "stem", 7);
  // Direct: g = W1·x + b1, h = relu(g), z = W2·h + b2, ∂ℓ/∂g = (W2ᵀ(softmax(z) − e_y)) ⊙ [g > 0].
  const auto W1 = model.stem->fc->weight.value(), b1 = model.stem->fc->bias.value();
  const auto W2 = model.fc->weight.value(), b2 = model.fc->bias.value();
  std::vector<double> sum(2, 0.0), n(2, 0.0);
  for (index_t i = 0; i < 30; ++i) {
    double x[4], gv[3], h[3], z[2];
    for (int j = 0; j < 4; ++j) x[j] = (ds.image(i)[static_cast<std::size_t>(j)] / 255.0 - 0.5) / 0.25;
    for (index_t k = 0; k < 3; ++k) {
      gv[k] = b1.data()[k];
      for (index_t j = 0; j < 4; ++j) gv[k] += W1.data()[k * 4 + j] * x[j];
      h[k] = std::max(gv[k], 0.0);
    }
    for (index_t c = 0; c < 2; ++c) {
      z[c] = b2.data()[c];
      for (index_t k = 0; k < 3; ++k) z[c] += W2.data()[c * 3 + k] * h[k];
    }
    const double mx = std::max(z[0], z[1]), se = std::exp(z[0] - mx) + std::exp(z[1] - mx);
    const auto yi = ds.label(i);
    double s = 0;
    for (index_t k = 0; k < 3; ++k) {
      double d = 0;
      for (index_t c = 0; c < 2; ++c) d += W2.data()[c * 3 + k] * (std::exp(z[c] - mx) / se - (c == yi ? 1.0 : 0.0));
      if (gv[k] > 0) s += d * d;
    }
    sum[static_cast<std::size_t>(yi)] += std::sqrt(s);
    n[static_cast<std::size_t>(yi)] += 1;
  }
  for (std::size_t c = 0; c < 2; ++c) REQUIRE(norms[c] == Approx(sum[c] / n[c]).epsilon(1e-10));
  // The model is left as it was: training mode, trainable, no gradients.
  REQUIRE(model.is_training());
  for (auto& [name, p] : model.named_parameters()) {
    REQUIRE(p.requires_grad());
    REQUIRE_FALSE(p.grad().defined());
  }
  REQUIRE_THROWS_AS(ltl::eval::feature_gradient_norms(model, ds, tiny_norm, "fc"), ltl::value_error);
}


TEST_CASE("held-out selection: the highest score, the first listed on ties, never NaN", "[metrics][selection]") {
  using lm::select_held_out;
  REQUIRE(select_held_out(std::vector<double>{0.5, 0.7, 0.6}) == std::optional<std::size_t>(1));
  REQUIRE(select_held_out(std::vector<double>{0.7, 0.5, 0.7}) == std::optional<std::size_t>(0));  // tie: first
  REQUIRE(select_held_out(std::vector<double>{NAN, 0.2, NAN, 0.2}) == std::optional<std::size_t>(1));
  REQUIRE(select_held_out(std::vector<double>{0.0}) == std::optional<std::size_t>(0));  // zero is a score
  REQUIRE_FALSE(select_held_out(std::vector<double>{NAN, NAN}).has_value());
  REQUIRE_FALSE(select_held_out(std::vector<double>{}).has_value());
  // 87 of 100 held-out images, hit in different classes: the same accuracy, different last bits
  // (two runs of the MFW α grid scored exactly these). A tie, so the first listed wins.
  REQUIRE(select_held_out(std::vector<double>{0.8699999999999999, 0.83, 0.8700000000000001}) ==
          std::optional<std::size_t>(0));
  REQUIRE(select_held_out(std::vector<double>{0.8700000000000001, 0.8699999999999999}) ==
          std::optional<std::size_t>(0));
  // One image more in one class (of 10 classes of 10 images) is a real difference.
  REQUIRE(select_held_out(std::vector<double>{0.87, 0.88}) == std::optional<std::size_t>(1));
  REQUIRE(select_held_out(std::vector<double>{0.87, 0.87 + 1e-8}) == std::optional<std::size_t>(1));
  lm::held_out_selector s;
  REQUIRE(s.offer(0.3));
  REQUIRE_FALSE(s.offer(0.3));
  REQUIRE(s.offer(0.4));
  REQUIRE_FALSE(s.offer(NAN));
  REQUIRE(s.selected() == std::optional<std::size_t>(2));
  REQUIRE(s.score() == 0.4);
  REQUIRE(s.offered() == 4);
}
