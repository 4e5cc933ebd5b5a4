// Tests of mixing/policies.hpp, mixing/any_mixing.hpp and mixing/mixed_loss.hpp: MFW's weights,
// lambdas and gradients, mixup and Remix label weights, epoch windows and the mixed loss.
#include <catch2/catch.hpp>

#include <ltlearn/losses/fused_loss.hpp>
#include <ltlearn/losses/policies.hpp>
#include <ltlearn/mixing/any_mixing.hpp>
#include <ltlearn/mixing/mixed_loss.hpp>
#include <ltlearn/mixing/policies.hpp>
#include <ltlearn/ops/reduce.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <span>
#include <string>
#include <vector>

using ltl::index_t;

TEST_CASE("MFW weights, lambdas and gradients follow the paper", "[mixing][mfw]") {
  // The arithmetic reading of γ (ltlearn's only one before the geometric default), asked for by name.
  const std::vector<double> n{5000, 500, 50};
  const auto s = ltl::mixing::mfw_weights(n, 2.0, ltl::mixing::mfw_spread::arithmetic);
  const double mu = std::cbrt(5000.0 * 500 * 50), mean = 5550.0 / 3;
  const double sd = std::sqrt(((5000 - mean) * (5000 - mean) + (500 - mean) * (500 - mean) + (50 - mean) * (50 - mean)) / 3);
  for (int c = 0; c < 3; ++c) REQUIRE(s[c] == Approx(0.5 / (1 + std::exp(-(n[c] - mu) / (2.0 * sd)))));
  REQUIRE(s[0] > s[1]);
  REQUIRE(s[1] > s[2]);
  for (double v : s) REQUIRE((v > 0 && v < 0.5));

  // Two-sample batch: with perm = swap, out_0 = (1−λ0)h0 + λ0 h1, out_1 = (1−λ1)h1 + λ1 h0, labels kept.
  ltl::mixing::mfw m{.alpha = 1.0, .beta = 2.0, .spread = ltl::mixing::mfw_spread::arithmetic};
  const auto y = ltl::tensor<std::int64_t>::from({2}, {0, 2});
  ltl::variable<double> h(ltl::tensor<double>::from({2, 3}, {1, 2, 3, 4, 5, 6}), true);
  ltl::rng g(1), replay(1);
  // Replay the policy's draws through the public generator: the partner permutation (a
  // Fisher–Yates shuffle of 0..B−1, as every mixing policy draws it first), then the λ_i.
  std::vector<std::int64_t> perm{0, 1};
  replay.shuffle(std::span<std::int64_t>(perm));
  const auto lam = m.lambdas<double>(y, n, replay);
  auto r = m.mix(h, y, n, g);
  REQUIRE_FALSE(r.own_weight.defined());
  const double l0 = lam.data()[0], l1 = lam.data()[1];
  REQUIRE(l0 <= s[0]);
  REQUIRE(l1 <= s[2]);
  const auto c = ltl::tensor<double>::from({2, 3}, {1, -2, 0.5, 3, 1, -1});
  ltl::sum(r.h * ltl::variable<double>(c)).backward();
  const bool swapped = perm[0] == 1;
  for (int k = 0; k < 3; ++k) {
    const double c0 = c.data()[k], c1 = c.data()[3 + k];
    const double g0 = swapped ? (1 - l0) * c0 + l1 * c1 : c0;
    const double g1 = swapped ? l0 * c0 + (1 - l1) * c1 : c1;
    REQUIRE(h.grad().data()[k] == Approx(g0));
    REQUIRE(h.grad().data()[3 + k] == Approx(g1));
    const double o0 = swapped ? (1 - l0) * (k + 1) + l0 * (k + 4) : k + 1;
    REQUIRE(r.h.value().data()[k] == Approx(o0));
  }
}

TEST_CASE("MFW's s(N) under both readings of gamma on CIFAR-10-LT and step profiles", "[mixing][mfw]") {
  namespace m = ltl::mixing;
  // CIFAR-10-LT, rho = 100 (SPEC §8), beta = 2.
  const std::vector<double> n{5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50};
  const double C = 10;
  double prod = 1, sum = 0;
  for (double v : n) prod *= v, sum += v;
  const double mu = std::pow(prod, 1 / C), mean = sum / C;  // geometric and arithmetic means
  double var = 0, var_log = 0;
  for (double v : n) {
    var += (v - mean) * (v - mean);
    var_log += (std::log(v) - std::log(mu)) * (std::log(v) - std::log(mu));
  }
  const double sd_arith = std::sqrt(var / C), sd_geo = std::exp(std::sqrt(var_log / C));  // population
  auto expected = [&](double v, double gamma) { return 0.5 / (1 + std::exp(-(v - mu) / (2.0 * gamma))); };

  const auto ar = m::mfw_weights(n, 2.0, m::mfw_spread::arithmetic);
  const auto ge = m::mfw_weights(n, 2.0, m::mfw_spread::geometric);
  REQUIRE(m::mfw_weights(n, 2.0) == ge);  // geometric is the default
  for (std::size_t c = 0; c < n.size(); ++c) {
    INFO("N_c = " << n[c]);
    REQUIRE(ar[c] == Approx(expected(n[c], sd_arith)).epsilon(1e-12));
    REQUIRE(ge[c] == Approx(expected(n[c], sd_geo)).epsilon(1e-9));
    if (c > 0) REQUIRE(ar[c] < ar[c - 1]);
    // geometric: s ≈ 0.5 for N_c >= 645, ≈ 0 for N_c <= 387 (the paper's §3.4)
    if (n[c] >= 645) REQUIRE(ge[c] > 0.5 - 1e-6);
    else REQUIRE(ge[c] < 1e-5);
  }
  // arithmetic: s = 0.41 … 0.23, as the SPEC rounds it (nowhere near §3.4's 0.5 … 0)
  REQUIRE(ar.front() == Approx(0.41).margin(0.005));
  REQUIRE(ar.back() == Approx(0.23).margin(0.005));
  REQUIRE(ar.back() > 0.2);

  // Step profile (5 × 5000, 5 × 50), beta = 0.01: both readings give 0.5 and ≈ 0 and agree.
  std::vector<double> step(5, 5000.0);
  step.insert(step.end(), 5, 50.0);
  const auto sa = m::mfw_weights(step, 0.01, m::mfw_spread::arithmetic);
  const auto sg = m::mfw_weights(step, 0.01, m::mfw_spread::geometric);
  for (std::size_t c = 0; c < step.size(); ++c) {
    INFO("class " << c);
    REQUIRE(std::abs(sa[c] - sg[c]) < 1e-7);
    if (c < 5) REQUIRE(sg[c] == Approx(0.5).margin(1e-7));
    else REQUIRE(sg[c] < 1e-7);
  }
  // Equal class sizes: no spread, s = 0.25 under both readings (exp(0) = 1 is not taken as a spread).
  for (auto sp : {m::mfw_spread::arithmetic, m::mfw_spread::geometric})
    for (double v : m::mfw_weights({3, 3, 3}, 2.0, sp)) REQUIRE(v == 0.25);

  // The policy uses its reading: tail samples (N = 50) are not weakened under the default, and
  // are by up to 0.23 under the arithmetic reading.
  const auto tail = ltl::tensor<std::int64_t>::from({64}, std::vector<std::int64_t>(64, 9));
  ltl::rng g1(4), g2(4);
  const auto lg = m::mfw{}.lambdas<double>(tail, n, g1);
  const auto la = m::mfw{.spread = m::mfw_spread::arithmetic}.lambdas<double>(tail, n, g2);
  double max_g = 0, max_a = 0;
  for (index_t i = 0; i < 64; ++i) {
    max_g = std::max(max_g, lg.data()[i]);
    max_a = std::max(max_a, la.data()[i]);
    REQUIRE(la.data()[i] <= ar[9]);
  }
  REQUIRE(max_g < 1e-15);
  REQUIRE(max_a > 0.1);
  REQUIRE(m::mfw{}.name().find("spread=geometric") != std::string::npos);
  REQUIRE(m::mfw{.spread = m::mfw_spread::arithmetic}.name().find("spread=arithmetic") != std::string::npos);
}

TEST_CASE("mixup and Remix label weights", "[mixing]") {
  ltl::mixing::remix rm{.kappa = 3, .tau = 0.5};
  REQUIRE(rm.label_weight(300, 10, 0.4) == 0.0);   // major own sample, mostly partner: minor label
  REQUIRE(rm.label_weight(10, 300, 0.6) == 1.0);   // minor own sample keeps its label
  REQUIRE(rm.label_weight(100, 90, 0.3) == 0.3);   // similar sizes: mixup's λ
  REQUIRE(rm.label_weight(300, 10, 0.7) == 0.7);
  ltl::mixing::mixup mu{.alpha = 0.4};
  ltl::rng g(2);
  ltl::variable<float> x(ltl::tensor<float>::ones({4, 2}));
  const auto y = ltl::tensor<std::int64_t>::from({4}, {0, 1, 2, 3});
  auto r = mu.mix(x, y, {1, 1, 1, 1}, g);
  REQUIRE(r.partner_labels.numel() == 4);
  const float w = r.own_weight.data()[0];
  for (int i = 0; i < 4; ++i) REQUIRE(r.own_weight.data()[i] == w);
  std::set<std::int64_t> partners(r.partner_labels.data(), r.partner_labels.data() + 4);
  REQUIRE(partners.size() == 4);  // a permutation of the labels
  static_assert(ltl::mixing::mixing_policy<ltl::mixing::mfw>);
  static_assert(ltl::mixing::mixing_policy<ltl::mixing::remix>);
  static_assert(ltl::mixing::mixing_policy<ltl::mixing::none>);
}

TEST_CASE("mixing policies mix only inside their epoch window", "[mixing]") {
  namespace m = ltl::mixing;
  auto window = [](const auto& x) {
    std::string s;
    for (ltl::index_t e = 0; e < 6; ++e) s += x.active(e) ? '1' : '0';
    return s;
  };
  REQUIRE(window(m::mfw{}) == "111111");
  REQUIRE(window(m::mfw{.stop_epoch = 4}) == "111100");  // e.g. MFW off for DRW's epochs
  REQUIRE(window(m::mfw{.start_epoch = 1, .stop_epoch = 3}) == "011000");
  REQUIRE(window(m::mixup{.stop_epoch = 2}) == "110000");
  REQUIRE(window(m::remix{.start_epoch = 5}) == "000001");
  REQUIRE(window(m::any_mixing<float>(m::mixup{.at = "stage1", .stop_epoch = 3})) == "111000");
  REQUIRE(window(m::none{}) == "000000");
}

TEST_CASE("mixed_loss: w·ℓ(y) + (1 − w)·ℓ(y_π) for mixed labels, ℓ(y) for kept ones", "[mixing]") {
  // Logits of 3 samples, 4 classes; an LDAM-like margin so that the terms matter.
  const auto z0 = ltl::tensor<double>::from({3, 4}, {1, -0.5, 2, 0.3, 0.2, 0.1, -1, 1.5, -0.7, 0.9, 0.4, 0});
  const auto y = ltl::tensor<std::int64_t>::from({3}, {0, 3, 1});
  const auto yp = ltl::tensor<std::int64_t>::from({3}, {3, 1, 0});
  ltl::loss_terms terms;
  terms.margins = {0.3, 0.2, 0.1, 0.05};
  ltl::mixing::mix_result<double, ltl::cpu::device> m;
  m.partner_labels = yp;
  m.own_weight = ltl::tensor<double>::from({3}, {0.25, 1.0, 0.6});
  ltl::variable<double> z(z0.clone(), true), zr(z0.clone(), true);
  const auto loss = ltl::mixing::mixed_loss(z, y, m, terms);
  // reference: the two weighted terms written out, 1 − w computed by hand
  const auto other = ltl::tensor<double>::from({3}, {0.75, 0.0, 0.4});
  const auto ref = ltl::logit_adjusted_loss(zr, y, terms, m.own_weight) + ltl::logit_adjusted_loss(zr, yp, terms, other);
  REQUIRE(loss.value().item() == ref.value().item());
  loss.backward();
  ref.backward();
  for (int i = 0; i < 12; ++i) REQUIRE(z.grad().data()[i] == zr.grad().data()[i]);
  // kept labels (MFW) or no mixing: the plain loss
  ltl::variable<double> zk(z0.clone(), true);
  const auto kept = ltl::mixing::mixed_loss(zk, y, ltl::mixing::mix_result<double, ltl::cpu::device>{}, terms);
  REQUIRE(kept.value().item() == ltl::logit_adjusted_loss(ltl::variable<double>(z0), y, terms).value().item());
  // mismatched partner labels are refused
  m.partner_labels = ltl::tensor<std::int64_t>::from({2}, {0, 1});
  REQUIRE_THROWS_AS(ltl::mixing::mixed_loss(z, y, m, terms), ltl::shape_error);
}
