// Tests of sampling/samplers.hpp: class-probability laws (chi-square against Kang et al.'s
// Eq. 1-2), progressive balancing, the class-aware sampler and distributed shards.
#include <catch2/catch.hpp>

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
