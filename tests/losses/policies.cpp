#include <catch2/catch.hpp>

#include "reference/loss_reference.hpp"

#include <ltlearn/losses/fused_loss.hpp>
#include <ltlearn/losses/policies.hpp>
#include <ltlearn/mixing/any_mixing.hpp>
#include <ltlearn/mixing/mixed_loss.hpp>
#include <ltlearn/mixing/policies.hpp>
#include <ltlearn/sampling/samplers.hpp>

#include <cmath>
#include <map>
#include <set>

using ltl::index_t;

namespace {
std::vector<std::int64_t> lt_labels(const std::vector<index_t>& counts) {
  std::vector<std::int64_t> y;
  for (std::size_t c = 0; c < counts.size(); ++c) y.insert(y.end(), static_cast<std::size_t>(counts[c]), static_cast<std::int64_t>(c));
  return y;
}
// Pearson chi-square statistic of observed class counts against probabilities p.
double chi_square(const std::vector<double>& observed, const std::vector<double>& p) {
  double total = 0, chi = 0;
  for (double o : observed) total += o;
  for (std::size_t j = 0; j < p.size(); ++j) {
    const double e = p[j] * total;
    if (e > 0) chi += (observed[j] - e) * (observed[j] - e) / e;
  }
  return chi;
}
template <class S>
std::vector<double> class_frequencies(const S& s, const std::vector<std::int64_t>& y, index_t C, index_t epochs, index_t first = 0) {
  std::vector<double> f(static_cast<std::size_t>(C), 0.0);
  for (index_t e = first; e < first + epochs; ++e)
    for (index_t i : s.epoch_indices(e)) f[static_cast<std::size_t>(y[static_cast<std::size_t>(i)])] += 1;
  return f;
}
// chi-square critical value for 9 degrees of freedom at p = 0.001
constexpr double chi2_9_999 = 27.88;
}  // namespace

TEST_CASE("samplers draw classes with the probabilities of Kang et al. Eq. 1-2", "[sampling]") {
  const std::vector<index_t> counts{500, 300, 180, 108, 65, 39, 23, 14, 8, 5};
  const auto y = lt_labels(counts);
  std::vector<double> n(counts.begin(), counts.end());
  namespace s = ltl::sampling;
  for (double q : {0.0, 0.5, 1.0}) {
    s::power_sampler ps(y, 10, q, 7);
    const auto f = class_frequencies(ps, y, 10, 30);
    const auto p = s::power_probabilities(n, q);
    INFO("q = " << q);
    REQUIRE(chi_square(f, p) < chi2_9_999);
    // a wrong p (the neighbouring q) is rejected by the same statistic
    REQUIRE(chi_square(f, s::power_probabilities(n, q == 1.0 ? 0.5 : q + 0.5)) > chi2_9_999);
  }
  // class-balanced p_j = 1/C exactly
  for (double v : s::power_probabilities(n, 0.0)) REQUIRE(v == Approx(0.1));
  // square-root: p_j ∝ √N_j
  const auto sq = s::power_probabilities(n, 0.5);
  REQUIRE(sq[0] / sq[9] == Approx(std::sqrt(100.0)));

  // instance-balanced: a permutation of the whole set
  s::instance_balanced ib(y, 10, 3);
  auto o = ib.epoch_indices(4);
  std::sort(o.begin(), o.end());
  for (std::size_t i = 0; i < o.size(); ++i) REQUIRE(o[i] == static_cast<index_t>(i));
  REQUIRE(ib.epoch_indices(4) == ib.epoch_indices(4));
  REQUIRE(ib.epoch_indices(4) != ib.epoch_indices(5));

  // progressive: interpolates from instance to class-balanced, weight t/(T − 1) (Kang et al.'s code)
  s::progressive pr(y, 10, 10, 5);
  REQUIRE(pr.class_probabilities(0) == s::power_probabilities(n, 1.0));
  const auto mid = pr.class_probabilities(5);
  REQUIRE(mid[9] == Approx((1 - 5.0 / 9) * 5.0 / 1242.0 + 5.0 / 9 * 0.1));
  REQUIRE(chi_square(class_frequencies(pr, y, 10, 1, 5), mid) < chi2_9_999 + 10);

  // class-aware round robin: exactly balanced over full rounds
  s::class_aware ca(y, 10, 1, 1, 1000);
  const auto fca = class_frequencies(ca, y, 10, 1);
  for (double v : fca) REQUIRE(v == 100.0);

  // deferred re-sampling switches at the given epoch
  s::deferred drs(s::instance_balanced(y, 10, 1), s::power_sampler(y, 10, 0.0, 1), 3);
  REQUIRE(drs.epoch_indices(2) == s::instance_balanced(y, 10, 1).epoch_indices(2));
  REQUIRE(drs.epoch_indices(3) == s::power_sampler(y, 10, 0.0, 1).epoch_indices(3));
  static_assert(s::sampler<decltype(drs)>);
  REQUIRE_THROWS_AS(s::power_sampler(std::vector<std::int64_t>{0, 11}, 10, 0.0, 1), ltl::value_error);
}

TEST_CASE("progressively-balanced sampling ends fully class-balanced", "[sampling]") {
  namespace s = ltl::sampling;
  const std::vector<index_t> counts{500, 300, 180, 108, 65, 39, 23, 14, 8, 5};
  const auto y = lt_labels(counts);
  const std::vector<double> n(counts.begin(), counts.end());
  const auto pi = s::power_probabilities(n, 1.0), pc = s::power_probabilities(n, 0.0);
  const index_t T = 7;
  s::progressive pr(y, 10, T, 3);
  REQUIRE(pr.class_probabilities(0) == pi);      // epoch 0: instance-balanced
  REQUIRE(pr.class_probabilities(T - 1) == pc);  // last epoch: class-balanced (Eq. 2's t/T would stop at 6/7)
  REQUIRE(pr.class_probabilities(T + 3) == pc);  // past the end: stays class-balanced
  for (index_t t = 0; t < T; ++t) {
    const double w = static_cast<double>(t) / static_cast<double>(T - 1);
    REQUIRE(pr.balanced_weight(t) == Approx(w).epsilon(1e-15));
    const auto p = pr.class_probabilities(t);
    double total = 0;
    for (std::size_t j = 0; j < 10; ++j) {
      REQUIRE(p[j] == Approx((1 - w) * pi[j] + w * pc[j]).epsilon(1e-14));
      total += p[j];
    }
    REQUIRE(total == Approx(1.0).epsilon(1e-14));
  }
  // linear in t: the middle epoch is the average of the endpoints
  const auto p3 = pr.class_probabilities(3);
  for (std::size_t j = 0; j < 10; ++j) REQUIRE(p3[j] == Approx(0.5 * (pi[j] + pc[j])).epsilon(1e-14));
  // the last epoch's draws follow the class-balanced probabilities
  REQUIRE(chi_square(class_frequencies(pr, y, 10, 1, T - 1), pc) < chi2_9_999);
  REQUIRE(chi_square(class_frequencies(pr, y, 10, 1, T - 1), pi) > chi2_9_999);
  // T = 1: np.linspace(0, 1, 1) = [0]: instance-balanced, no division by zero
  s::progressive one(y, 10, 1, 3);
  REQUIRE(one.balanced_weight(0) == 0.0);
  REQUIRE(one.class_probabilities(0) == pi);
  REQUIRE(one.class_probabilities(4) == pi);
  for (double v : one.class_probabilities(0)) REQUIRE(std::isfinite(v));
  REQUIRE_THROWS_AS(s::progressive(y, 10, 0, 3), ltl::value_error);
}

TEST_CASE("class-aware sampler: visits of k samples, Kang's epoch size, determinism", "[sampling]") {
  namespace s = ltl::sampling;
  const std::vector<index_t> counts{40, 12, 7, 3};
  const auto y = lt_labels(counts);
  // Kang et al.'s epoch: max_c N_c × C draws; an empty class does not count.
  REQUIRE(s::class_aware_epoch_size(y, 4) == 160);
  REQUIRE(s::class_aware_epoch_size(y, 5) == 160);
  const index_t k = 4, epoch = s::class_aware_epoch_size(y, 4);
  s::class_aware ca(y, 4, 11, k, epoch);
  const auto o = ca.epoch_indices(2);
  REQUIRE(static_cast<index_t>(o.size()) == 160);
  // 160 draws = 40 visits of 4 = 10 rounds over the 4 classes: each class exactly 40 times.
  std::vector<index_t> per_class(4, 0);
  for (index_t i : o) ++per_class[static_cast<std::size_t>(y[static_cast<std::size_t>(i)])];
  REQUIRE(per_class == std::vector<index_t>{40, 40, 40, 40});
  for (std::size_t v = 0; v < 40; ++v) {
    const auto c = y[static_cast<std::size_t>(o[v * 4])];
    for (std::size_t r = 1; r < 4; ++r) REQUIRE(y[static_cast<std::size_t>(o[v * 4 + r])] == c);  // k consecutive
    if (v % 4 == 3) {  // each round of 4 visits covers every class once
      std::set<std::int64_t> round;
      for (std::size_t u = v - 3; u <= v; ++u) round.insert(y[static_cast<std::size_t>(o[u * 4])]);
      REQUIRE(round.size() == 4);
    }
  }
  // Within a class, each pass over its shuffled list draws every member once before any repeats.
  for (std::int64_t c = 0; c < 4; ++c) {
    std::vector<index_t> seq;
    for (index_t i : o)
      if (y[static_cast<std::size_t>(i)] == c) seq.push_back(i);
    const auto nc = static_cast<std::size_t>(counts[static_cast<std::size_t>(c)]);
    for (std::size_t p0 = 0; p0 + nc <= seq.size(); p0 += nc)
      REQUIRE(std::set<index_t>(seq.begin() + static_cast<std::ptrdiff_t>(p0), seq.begin() + static_cast<std::ptrdiff_t>(p0 + nc)).size() == nc);
  }
  // A custom epoch size is honoured (the last visit cut short), and 0 means N.
  REQUIRE(s::class_aware(y, 4, 11, k, 1003).epoch_indices(0).size() == 1003);
  REQUIRE(s::class_aware(y, 4, 11, k, 6).epoch_indices(0).size() == 6);
  REQUIRE(s::class_aware(y, 4, 11, k).epoch_indices(0).size() == y.size());
  // The order is a function of (seed, epoch) alone.
  REQUIRE(s::class_aware(y, 4, 11, k, epoch).epoch_indices(2) == o);
  REQUIRE(ca.epoch_indices(3) != o);
  REQUIRE(ca.epoch_indices(2) == o);
  REQUIRE(s::class_aware(y, 4, 12, k, epoch).epoch_indices(2) != o);
  REQUIRE_THROWS_AS(s::class_aware(y, 4, 11, 0), ltl::value_error);
}

TEST_CASE("distributed shards partition the global order", "[sampling]") {
  const auto y = lt_labels({50, 20, 7});
  ltl::sampling::power_sampler s(y, 3, 0.0, 9);
  const auto order = s.epoch_indices(2);
  std::multiset<index_t> all;
  std::size_t total = 0;
  for (index_t r = 0; r < 3; ++r) {
    const auto sh = ltl::sampling::shard(order, r, 3);
    for (std::size_t k = 0; k < sh.size(); ++k) REQUIRE(sh[k] == order[k * 3 + static_cast<std::size_t>(r)]);
    all.insert(sh.begin(), sh.end());
    total += sh.size();
  }
  REQUIRE(total == order.size());
  REQUIRE(all == std::multiset<index_t>(order.begin(), order.end()));
}

TEST_CASE("loss policies give the papers' per-class terms", "[losses]") {
  namespace l = ltl::losses;
  const std::vector<double> n{5000, 500, 50};
  auto cdt = l::make_terms(l::cdt{.gamma = 0.5}, n, 0);
  REQUIRE(cdt.temperatures[0] == Approx(1.0));
  REQUIRE(cdt.temperatures[2] == Approx(10.0));
  REQUIRE(l::make_terms(l::cdt{.gamma = 0.5, .start_epoch = 3}, n, 2).temperatures.empty());
  auto ld = l::make_terms(l::ldam{}, n, 0);
  REQUIRE(ld.margins[2] == Approx(0.5));
  REQUIRE(ld.margins[0] == Approx(0.5 * std::pow(50.0 / 5000.0, 0.25)));
  REQUIRE(ld.scale == 30);
  auto la = l::make_terms(l::logit_adjust{.tau = 1}, n, 0);
  REQUIRE(la.offsets[1] == Approx(std::log(500.0 / 5550.0)));
  auto cb = l::make_terms(l::class_balanced_weights{.beta = 0.9999}, n, 0);
  double s = 0;
  for (double w : cb.weights) s += w;
  REQUIRE(s == Approx(3.0));
  REQUIRE(cb.weights[2] / cb.weights[0] == Approx((1 - std::pow(0.9999, 5000)) / (1 - std::pow(0.9999, 50))));
  auto inv = l::make_terms(l::inverse_frequency_weights{.gamma = 1}, n, 0);
  REQUIRE(inv.weights[2] / inv.weights[0] == Approx(100.0));
  // DRW switches at its epoch; composition keeps each policy's fields
  auto ldam_drw = l::compose(l::ldam{}, l::drw(160));
  REQUIRE(l::make_terms(ldam_drw, n, 159).weights.empty());
  auto after = l::make_terms(ldam_drw, n, 160);
  REQUIRE(after.weights.size() == 3);
  REQUIRE(after.margins.size() == 3);
  REQUIRE_THROWS_AS(l::make_terms(l::cdt{}, std::vector<double>{10, 0}, 0), ltl::value_error);
}

TEST_CASE("fused loss equals the unfused reference for every variant", "[losses][fused]") {
  namespace l = ltl::losses;
  struct variant {
    const char* name;
    ltl::loss_terms (*make)(const std::vector<double>&);
  };
  const variant variants[] = {
      {"ce", [](const std::vector<double>& n) { return l::make_terms(l::cross_entropy{}, n, 0); }},
      {"cdt", [](const std::vector<double>& n) { return l::make_terms(l::cdt{.gamma = 0.3}, n, 0); }},
      {"ldam", [](const std::vector<double>& n) { return l::make_terms(l::ldam{}, n, 0); }},
      {"la", [](const std::vector<double>& n) { return l::make_terms(l::logit_adjust{.tau = 1.0}, n, 0); }},
      {"cb-focal", [](const std::vector<double>& n) { return l::make_terms(l::compose(l::class_balanced_weights{}, l::focal{.gamma = 1.0}), n, 0); }},
      {"ldam-drw", [](const std::vector<double>& n) { return l::make_terms(l::compose(l::ldam{}, l::drw(0)), n, 5); }},
      {"cdt-drw", [](const std::vector<double>& n) { return l::make_terms(l::compose(l::cdt{.gamma = 0.2}, l::drw(0)), n, 5); }},
      {"focal-0.5", [](const std::vector<double>& n) { return l::make_terms(l::focal{.gamma = 0.5}, n, 0); }},
  };
  // Besides the grid: one row of the pipelined path (prologue, one sweep, drain), rows
  // with a partial last vector, and a [260, 8142] gradient (8.5 MB) that is streamed past the
  // cache with unaligned row starts (the threshold set to 8 MiB for it, as on a machine with a
  // 21 MiB last-level cache; for the first variants only, to keep the reference cheap).
  // Rows of ≤ 16 classes run in transposed blocks of sixteen: whole and partial blocks, one
  // class, exactly sixteen, and (520, 11) split over two threads at a row that is not a block
  // boundary (260 = 16·16 + 4).
  const std::pair<index_t, index_t> sizes[] = {{4, 3},    {16, 10},  {37, 16},   {5, 1},     {520, 11},
                                               {8, 100},  {3, 8142}, {1, 300},   {7, 1001},  {260, 8142}};
  namespace ls = ltl::detail::loss_simd;
  struct restore {
    index_t bytes;
    ~restore() { ls::set_stream_threshold(bytes); }
  } restore_threshold{ls::set_stream_threshold(index_t{8} << 20)};
  for (auto [B, C] : sizes) {
    ltl::rng g(B * 1000 + C);
    std::vector<double> n(static_cast<std::size_t>(C));
    for (index_t c = 0; c < C; ++c) n[static_cast<std::size_t>(c)] = std::floor(5000.0 * std::pow(0.01, double(c) / double(std::max<index_t>(1, C - 1)))) + 1;
    ltl::tensor<float> z(ltl::shape{B, C});
    for (index_t i = 0; i < z.numel(); ++i) z.data()[i] = static_cast<float>(g.normal(0, 0.3));
    ltl::tensor<std::int64_t> y(ltl::shape{B});
    for (index_t i = 0; i < B; ++i) y.data()[i] = static_cast<std::int64_t>(g.below(static_cast<std::uint64_t>(C)));
    ltl::tensor<float> sw(ltl::shape{B});
    for (index_t i = 0; i < B; ++i) sw.data()[i] = static_cast<float>(g.uniform(0.2, 1.0));
    for (const auto& v : variants) {
      if (B * C > 1'000'000 && &v - variants > 3) break;
      for (bool weighted : {false, true}) {
        INFO(v.name << " B=" << B << " C=" << C << " sample weights " << weighted);
        const auto terms = v.make(n);
        ltl::variable<float> zf(z.clone(), true), zr(z.clone(), true);
        auto lf = ltl::logit_adjusted_loss(zf, y, terms, weighted ? sw : ltl::tensor<float>());
        auto lr = ltl_ref::logit_adjusted_loss(zr, y, terms, weighted ? sw : ltl::tensor<float>());
        REQUIRE(lf.value().item() == Approx(lr.value().item()).epsilon(1e-5));
        lf.backward();
        lr.backward();
        const auto gf = zf.grad().to_vector(), gr = zr.grad().to_vector();
        double max_ref = 0, max_diff = 0;
        for (std::size_t i = 0; i < gf.size(); ++i) {
          max_ref = std::max(max_ref, std::abs(double(gr[i])));
          max_diff = std::max(max_diff, std::abs(double(gf[i]) - double(gr[i])));
        }
        REQUIRE(max_diff <= 1e-5 * max_ref + 1e-9);
      }
    }
  }
}

TEST_CASE("fused loss is NaN when a logit is NaN, on every row length", "[losses][fused]") {
  namespace l = ltl::losses;
  for (index_t C : {3, 16, 100, 1001}) {
    const std::vector<double> n(static_cast<std::size_t>(C), 10.0);
    for (const auto& terms : {l::make_terms(l::cross_entropy{}, n, 0), l::make_terms(l::cdt{.gamma = 0.3}, n, 0)}) {
      for (index_t where : {index_t{0}, C - 1}) {
        INFO("C=" << C << " NaN at class " << where);
        ltl::tensor<float> z(ltl::shape{4, C});
        for (index_t i = 0; i < z.numel(); ++i) z.data()[i] = -1.0f + 0.01f * static_cast<float>(i % 7);
        z.data()[2 * C + where] = NAN;
        const auto y = ltl::tensor<std::int64_t>::from({4}, {0, 1, 2, 0});
        ltl::tensor<float> dz(ltl::shape{4, C});
        REQUIRE(std::isnan(ltl::cpu::fused_loss(z, y, terms, &dz)));
      }
    }
  }
}

TEST_CASE("fused loss gradients pass a double-precision gradient check", "[losses][fused][grad]") {
  namespace l = ltl::losses;
  const std::vector<double> n{300, 60, 12, 5};
  const ltl::loss_terms all[] = {
      l::make_terms(l::cross_entropy{}, n, 0), l::make_terms(l::cdt{.gamma = 0.4}, n, 0),
      l::make_terms(l::ldam{.max_margin = 0.5, .scale = 5}, n, 0), l::make_terms(l::logit_adjust{}, n, 0),
      l::make_terms(l::compose(l::class_balanced_weights{.beta = 0.99}, l::focal{.gamma = 2}), n, 0)};
  ltl::rng g(3);
  ltl::tensor<double> z(ltl::shape{5, 4});
  for (index_t i = 0; i < z.numel(); ++i) z.data()[i] = g.normal();
  const auto y = ltl::tensor<std::int64_t>::from({5}, {0, 3, 2, 1, 3});
  for (const auto& t : all) {
    auto r = ltl::gradcheck<ltl::cpu::device>(
        [&](const auto& x) { return ltl::logit_adjusted_loss(x[0], y, t); }, {ltl::variable<double>(z, true)});
    INFO(r.report);
    REQUIRE(r.ok);
  }
  REQUIRE_THROWS_AS(ltl::logit_adjusted_loss(ltl::variable<double>(z), ltl::tensor<std::int64_t>::from({5}, {0, 4, 0, 0, 0}), all[0]),
                    ltl::value_error);
}

TEST_CASE("Beta sampling has the right mean and variance", "[mixing][rng]") {
  for (auto [a, b] : {std::pair{0.2, 0.2}, std::pair{1.0, 1.0}, std::pair{2.0, 5.0}}) {
    ltl::rng g(17);
    double s = 0, s2 = 0;
    const int n = 200000;
    for (int i = 0; i < n; ++i) {
      const double x = g.beta(a, b);
      REQUIRE((x >= 0 && x <= 1));
      s += x;
      s2 += x * x;
    }
    const double mean = s / n, var = s2 / n - mean * mean;
    INFO("Beta(" << a << ", " << b << ")");
    REQUIRE(mean == Approx(a / (a + b)).margin(0.004));
    REQUIRE(var == Approx(a * b / ((a + b) * (a + b) * (a + b + 1))).margin(0.002));
  }
}

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
  std::vector<std::int64_t> perm(2);
  // replay the policy's draws: permutation, then the λ_i
  auto p = ltl::mixing::detail::random_permutation(2, replay);
  const auto lam = m.lambdas<double>(y, n, replay);
  auto r = m.mix(h, y, n, g);
  REQUIRE_FALSE(r.own_weight.defined());
  const double l0 = lam.data()[0], l1 = lam.data()[1];
  REQUIRE(l0 <= s[0]);
  REQUIRE(l1 <= s[2]);
  const auto c = ltl::tensor<double>::from({2, 3}, {1, -2, 0.5, 3, 1, -1});
  ltl::sum(r.h * ltl::variable<double>(c)).backward();
  const bool swapped = p.data()[0] == 1;
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
