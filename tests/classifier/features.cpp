// classifier/features.hpp and posthoc.hpp's xtensor forms of the cached-feature tables (class
// means, row scaling, the cl2n centre) against plain loops on random tables: equal bit for bit.

#include <catch2/catch.hpp>
#include <ltlearn/ltlearn.hpp>

#include <cmath>
#include <cstring>
#include <vector>

namespace cl = ltl::classifier;
using ltl::index_t;
using ltl::shape;

namespace {

template <class T>
ltl::tensor<T> random_matrix(index_t r, index_t c, ltl::rng& g) {
  ltl::tensor<T> x(shape{r, c});
  for (index_t i = 0; i < r * c; ++i) x.data()[i] = static_cast<T>(g.normal() + 0.3);
  return x;
}

template <class T>
bool same_bits(const T* a, const T* b, index_t n) {
  return std::memcmp(a, b, static_cast<std::size_t>(n) * sizeof(T)) == 0;
}

}  // namespace

TEST_CASE("class_means::means equals sums over counts, zero rows for empty classes", "[classifier][xtensor]") {
  ltl::rng g(5);
  const index_t N = 200, F = 17, C = 9;
  const auto f = random_matrix<float>(N, F, g);
  ltl::tensor<std::int64_t> y(shape{N});
  for (index_t i = 0; i < N; ++i) y.data()[i] = static_cast<std::int64_t>(g.below(C - 1));  // class C-1 empty
  for (bool l2 : {false, true}) {
    cl::class_means m(C, F);
    m.add(f, y, l2);
    std::vector<double> sums(static_cast<std::size_t>(C * F), 0.0);
    std::vector<index_t> n(static_cast<std::size_t>(C), 0);
    for (index_t i = 0; i < N; ++i) {
      const auto c = y.data()[i];
      const float* row = f.data() + i * F;
      double s = 1;
      if (l2) {
        double n2 = 0;
        for (index_t j = 0; j < F; ++j) n2 += static_cast<double>(row[j]) * row[j];
        s = 1.0 / std::max(std::sqrt(n2), 1e-12);
      }
      for (index_t j = 0; j < F; ++j) sums[static_cast<std::size_t>(c * F + j)] += s * row[j];
      ++n[static_cast<std::size_t>(c)];
    }
    std::vector<float> want(static_cast<std::size_t>(C * F));
    for (index_t c = 0; c < C; ++c)
      for (index_t j = 0; j < F; ++j)
        want[static_cast<std::size_t>(c * F + j)] =
            n[static_cast<std::size_t>(c)]
                ? static_cast<float>(sums[static_cast<std::size_t>(c * F + j)] / static_cast<double>(n[static_cast<std::size_t>(c)]))
                : 0.0f;
    const auto got = m.means<float>();
    REQUIRE(got.sizes() == shape{C, F});
    REQUIRE(same_bits(got.data(), want.data(), C * F));
    REQUIRE(got.data()[(C - 1) * F] == 0.0f);
    REQUIRE(m.sums().shape(0) == static_cast<std::size_t>(C));
  }
}

TEST_CASE("scale_rows, tau_normalize and nc_tau_scale equal per-row loops", "[classifier][xtensor]") {
  ltl::rng g(6);
  const auto w = random_matrix<float>(13, 8, g);
  std::vector<double> f(13);
  for (auto& v : f) v = 0.1 + 3 * g.uniform();
  const auto got = cl::scale_rows(w, std::span<const double>(f));
  std::vector<float> want(w.data(), w.data() + w.numel());
  for (index_t c = 0; c < 13; ++c)
    for (index_t j = 0; j < 8; ++j) want[static_cast<std::size_t>(c * 8 + j)] *= static_cast<float>(f[static_cast<std::size_t>(c)]);
  REQUIRE(same_bits(got.data(), want.data(), w.numel()));

  const auto norms = ltl::metrics::weight_norms(w);
  std::vector<double> tf(norms.size());
  for (std::size_t c = 0; c < norms.size(); ++c) tf[c] = norms[c] > 0 ? std::pow(norms[c], -0.7) : 1.0;
  const auto tn = cl::tau_normalize(w, 0.7);
  const auto tw = cl::scale_rows(w, std::span<const double>(tf));
  REQUIRE(same_bits(tn.data(), tw.data(), w.numel()));
  REQUIRE_FALSE(same_bits(tn.data(), w.data(), w.numel()));
}

TEST_CASE("make_ncm cl2n: the centre and the centred class means equal plain loops", "[classifier][xtensor]") {
  ltl::rng g(8);
  const index_t N = 150, F = 12, C = 5;
  const auto f = random_matrix<float>(N, F, g);
  ltl::tensor<std::int64_t> y(shape{N});
  for (index_t i = 0; i < N; ++i) y.data()[i] = static_cast<std::int64_t>(i % C);
  const auto table = cl::make_feature_table(f, y, C);
  const auto ncm = cl::make_ncm(table, cl::ncm_metric::cl2n);

  std::vector<double> mu(static_cast<std::size_t>(F), 0.0);
  for (index_t i = 0; i < N; ++i)
    for (index_t j = 0; j < F; ++j) mu[static_cast<std::size_t>(j)] += static_cast<double>(f.data()[i * F + j]);
  std::vector<float> center(static_cast<std::size_t>(F));
  for (index_t j = 0; j < F; ++j) {
    mu[static_cast<std::size_t>(j)] /= static_cast<double>(N);
    center[static_cast<std::size_t>(j)] = static_cast<float>(mu[static_cast<std::size_t>(j)]);
  }
  REQUIRE(same_bits(ncm->center().data(), center.data(), F));

  ltl::tensor<double> centred(shape{N, F});
  for (index_t i = 0; i < N; ++i)
    for (index_t j = 0; j < F; ++j)
      centred.data()[i * F + j] = static_cast<double>(f.data()[i * F + j]) - mu[static_cast<std::size_t>(j)];
  cl::class_means acc(C, F);
  acc.add(centred, y, true);
  const auto means = acc.means<float>();
  REQUIRE(same_bits(ncm->means().data(), means.data(), C * F));
}
