// metrics/classification.hpp's xtensor confusion matrix and per-class tables against plain loops
// over the same predictions: every count and every mean equal bit for bit.

#include <catch2/catch.hpp>
#include <ltlearn/ltlearn.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace lm = ltl::metrics;
using ltl::index_t;
using ltl::shape;

namespace {

struct predictions {
  ltl::tensor<float> logits;
  ltl::tensor<std::int64_t> labels;
};

// Random logits; labels skewed so that some classes have no samples (NaN accuracy).
predictions random_predictions(index_t n, index_t C, std::uint64_t seed) {
  ltl::rng g(seed);
  predictions p{ltl::tensor<float>(shape{n, C}), ltl::tensor<std::int64_t>(shape{n})};
  for (index_t i = 0; i < n * C; ++i) p.logits.data()[i] = static_cast<float>(g.normal());
  for (index_t i = 0; i < n; ++i) {
    const auto y = static_cast<std::int64_t>(g.below(static_cast<std::uint64_t>(C - C / 5)));
    p.labels.data()[i] = y;
    // Bias towards the true class so that accuracy is neither 0 nor chance.
    if (g.uniform() < 0.5) p.logits.data()[i * C + y] += 2.0f;
  }
  return p;
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

}  // namespace

TEST_CASE("classification_meter's tables equal plain loops over its predictions", "[metrics][xtensor]") {
  const index_t C = 37, n = 2000;
  const auto p = random_predictions(n, C, 7);
  lm::classification_meter m(C);
  m.add(p.logits.narrow(0, 0, 1000).contiguous(), p.labels.narrow(0, 0, 1000).contiguous());
  m.add(p.logits.narrow(0, 1000, 1000).contiguous(), p.labels.narrow(0, 1000, 1000).contiguous());

  // Reference: the confusion matrix and the tables by the definitions, in class order.
  std::vector<index_t> conf(static_cast<std::size_t>(C * C), 0);
  for (index_t i = 0; i < n; ++i)
    ++conf[static_cast<std::size_t>(p.labels.data()[i] * C + lm::argmax(p.logits.data() + i * C, C))];
  const auto cm = m.confusion();
  REQUIRE(cm == conf);
  const auto& mat = m.confusion_matrix();
  REQUIRE(mat.shape(0) == static_cast<std::size_t>(C));
  REQUIRE(mat.shape(1) == static_cast<std::size_t>(C));
  for (index_t t = 0; t < C; ++t)
    for (index_t q = 0; q < C; ++q)
      REQUIRE(mat(static_cast<std::size_t>(t), static_cast<std::size_t>(q)) == conf[static_cast<std::size_t>(t * C + q)]);

  std::vector<double> acc(static_cast<std::size_t>(C));
  index_t correct = 0;
  for (index_t t = 0; t < C; ++t) {
    index_t tot = 0;
    for (index_t q = 0; q < C; ++q) tot += conf[static_cast<std::size_t>(t * C + q)];
    const index_t hit = conf[static_cast<std::size_t>(t * C + t)];
    correct += hit;
    acc[static_cast<std::size_t>(t)] = tot ? static_cast<double>(hit) / static_cast<double>(tot) : NAN;
  }
  const auto pc = m.per_class();
  REQUIRE(pc.size() == acc.size());
  int empty = 0;
  for (std::size_t c = 0; c < acc.size(); ++c) {
    if (std::isnan(acc[c])) {
      REQUIRE(std::isnan(pc[c]));
      ++empty;
    } else {
      REQUIRE(same_bits(pc[c], acc[c]));
    }
  }
  REQUIRE(empty > 0);  // the set has classes without samples, so the NaN path is reached
  REQUIRE(same_bits(m.top1(), static_cast<double>(correct) / static_cast<double>(n)));

  double s = 0;
  int k = 0;
  for (double a : acc)
    if (!std::isnan(a)) s += a, ++k;
  REQUIRE(same_bits(m.mean_per_class(), s / k));

  // Shot groups from training counts spanning all three groups.
  std::vector<double> counts(static_cast<std::size_t>(C));
  for (index_t c = 0; c < C; ++c) counts[static_cast<std::size_t>(c)] = static_cast<double>(std::max<index_t>(200 - 7 * c, 0));  // few from 26
  double gs[3] = {0, 0, 0};
  int gk[3] = {0, 0, 0};
  for (index_t c = 0; c < C; ++c) {
    const double a = acc[static_cast<std::size_t>(c)];
    if (std::isnan(a)) continue;
    const int grp = static_cast<int>(ltl::classify_shot(static_cast<index_t>(counts[static_cast<std::size_t>(c)]), {}));
    gs[grp] += a;
    ++gk[grp];
  }
  REQUIRE(gk[0] > 0);
  REQUIRE(gk[1] > 0);
  REQUIRE(gk[2] > 0);
  const auto g = m.by_shot(counts);
  REQUIRE(same_bits(*g.many, gs[0] / gk[0]));
  REQUIRE(same_bits(*g.medium, gs[1] / gk[1]));
  REQUIRE(same_bits(*g.few, gs[2] / gk[2]));

  // An empty group is reported as empty: every class many-shot.
  const auto all_many = m.by_shot(std::vector<double>(static_cast<std::size_t>(C), 1000.0));
  REQUIRE(all_many.many);
  REQUIRE_FALSE(all_many.medium);
  REQUIRE_FALSE(all_many.few);
  REQUIRE(same_bits(*all_many.many, s / k));

  // Classification ratio: column sums over the counts.
  const auto r = lm::classification_ratio(cm, counts);
  for (index_t q = 0; q < C; ++q) {
    double predicted = 0;
    for (index_t t = 0; t < C; ++t) predicted += static_cast<double>(conf[static_cast<std::size_t>(t * C + q)]);
    const double nq = counts[static_cast<std::size_t>(q)];
    if (nq > 0) REQUIRE(same_bits(r[static_cast<std::size_t>(q)], predicted / nq));
    else REQUIRE(std::isnan(r[static_cast<std::size_t>(q)]));  // classes 29.. have no training images
  }
}

TEST_CASE("classification_meter's reduce_with round-trips the xtensor confusion matrix", "[metrics][xtensor]") {
  const auto p = random_predictions(300, 11, 9);
  lm::classification_meter a(11), b(11);
  a.add(p.logits, p.labels);
  b.add(p.logits, p.labels);
  // Doubling every count (a two-rank sum of equal meters) doubles the matrix, keeps accuracies.
  b.reduce_with([](auto v) {
    for (auto& x : v) x += x;
  });
  for (std::size_t i = 0; i < a.confusion().size(); ++i) REQUIRE(b.confusion()[i] == 2 * a.confusion()[i]);
  REQUIRE(b.count() == 2 * a.count());
  REQUIRE(same_bits(b.mean_per_class(), a.mean_per_class()));
}
