#pragma once
/// \file
/// Per-class analysis quantities computed from features, logits and weights (SPEC §11):
///   - feature deviation (Ye et al., CDT paper §3.3):
///       dis(c) = (1/R)·Σ_r ‖mean(S_K({f(x_train^c)})) − mean({f(x_test^c)})‖₂
///     over L2-normalised features, S_K a uniform subsample of K training features of class c,
///     K = the smallest training class (so that dis(c) is comparable across classes), R = 1000;
///   - classification ratio (MFW paper App. A.1): (# training images predicted as c) / N_c;
///   - classifier weight norms ‖w_c‖₂.
/// Shapes: features [N, F], labels [N], weights [C, F].

#include "ltlearn/core/config.hpp"
#include "ltlearn/core/error.hpp"
#include "ltlearn/core/rng.hpp"
#include "ltlearn/tensor/tensor.hpp"

#include <xtensor/xadapt.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xtensor.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

namespace ltl::metrics {

/// Options of feature_deviation.
struct deviation_options {
  index_t k = 0;           ///< subsample size (0: the smallest non-empty training class)
  index_t rounds = 1000;   ///< R
  std::uint64_t seed = 0;  ///< class c draws from ltl::rng(seed, c)
};

namespace detail {
/// Rows of f [N, F] scaled to unit L2 norm, in double (zero rows stay zero).
template <class T>
std::vector<double> unit_rows(const tensor<T>& f) {
  const auto fc = f.contiguous();
  const index_t N = f.size(0), F = f.size(1);
  std::vector<double> out(static_cast<std::size_t>(N * F));
  for (index_t i = 0; i < N; ++i) {
    double n2 = 0;
    for (index_t j = 0; j < F; ++j) n2 += static_cast<double>(fc.data()[i * F + j]) * fc.data()[i * F + j];
    const double s = n2 > 0 ? 1.0 / std::sqrt(n2) : 0.0;
    for (index_t j = 0; j < F; ++j) out[static_cast<std::size_t>(i * F + j)] = s * fc.data()[i * F + j];
  }
  return out;
}
}  // namespace detail

/// dis(c) for every class c (NaN for a class without training or test rows).
///
/// Sampling, so that the result is reproducible: for class c, generator rng(seed, c); its
/// training rows in table order form a list L of n_c entries; each round restarts from L and
/// takes the first K entries of a partial Fisher–Yates shuffle (for j = 0..K−1: swap L[j] with
/// L[j + below(n_c − j)]). Classes run in parallel; the result does not depend on threads.
template <class T>
std::vector<double> feature_deviation(const tensor<T>& train_features, const tensor<std::int64_t>& train_labels,
                                      const tensor<T>& test_features, const tensor<std::int64_t>& test_labels,
                                      index_t num_classes, const deviation_options& o = {}) {
  LTL_CHECK(train_features.dim() == 2 && test_features.dim() == 2 && train_features.size(1) == test_features.size(1) &&
                train_labels.dim() == 1 && train_labels.size(0) == train_features.size(0) && test_labels.dim() == 1 &&
                test_labels.size(0) == test_features.size(0),
            shape_error, "feature_deviation: train {} / {} and test {} / {} must be [N, F] features with [N] labels",
            train_features.sizes(), train_labels.sizes(), test_features.sizes(), test_labels.sizes());
  LTL_CHECK(num_classes > 0 && o.rounds > 0 && o.k >= 0, value_error,
            "feature_deviation: {} classes, {} rounds, K = {}", num_classes, o.rounds, o.k);
  const index_t F = train_features.size(1);
  const auto C = static_cast<std::size_t>(num_classes);
  auto members = [&](const tensor<std::int64_t>& y) {
    std::vector<std::vector<index_t>> m(C);
    const auto yc = y.contiguous();
    for (index_t i = 0; i < yc.numel(); ++i) {
      const auto c = yc.data()[i];
      LTL_CHECK(c >= 0 && c < num_classes, value_error, "feature_deviation: label {} at row {} is outside [0, {})", c, i,
                num_classes);
      m[static_cast<std::size_t>(c)].push_back(i);
    }
    return m;
  };
  const auto tr = members(train_labels), te = members(test_labels);
  index_t K = o.k;
  if (K == 0) {
    K = std::numeric_limits<index_t>::max();
    for (auto& m : tr)
      if (!m.empty()) K = std::min(K, static_cast<index_t>(m.size()));
    LTL_CHECK(K != std::numeric_limits<index_t>::max(), value_error, "feature_deviation: no training rows");
  }
  for (std::size_t c = 0; c < C; ++c)
    LTL_CHECK(tr[c].empty() || static_cast<index_t>(tr[c].size()) >= K, value_error,
              "feature_deviation: class {} has {} training rows, fewer than K = {}", c, tr[c].size(), K);
  const auto xtr = detail::unit_rows(train_features), xte = detail::unit_rows(test_features);
  std::vector<double> dis(C, std::numeric_limits<double>::quiet_NaN());
  LTL_OMP(omp parallel for schedule(dynamic))
  for (index_t ci = 0; ci < num_classes; ++ci) {
    const auto c = static_cast<std::size_t>(ci);
    if (tr[c].empty() || te[c].empty()) continue;
    std::vector<double> mu(static_cast<std::size_t>(F), 0.0), m(static_cast<std::size_t>(F));
    for (index_t i : te[c])
      for (index_t j = 0; j < F; ++j) mu[static_cast<std::size_t>(j)] += xte[static_cast<std::size_t>(i * F + j)];
    for (auto& v : mu) v /= static_cast<double>(te[c].size());
    rng g(o.seed, static_cast<std::uint64_t>(ci));
    const auto n = static_cast<std::uint64_t>(tr[c].size());
    std::vector<index_t> list;
    double total = 0;
    for (index_t r = 0; r < o.rounds; ++r) {
      list = tr[c];
      std::fill(m.begin(), m.end(), 0.0);
      for (index_t j = 0; j < K; ++j) {
        const auto ju = static_cast<std::uint64_t>(j);
        std::swap(list[ju], list[ju + g.below(n - ju)]);
        const index_t row = list[ju];
        for (index_t d = 0; d < F; ++d) m[static_cast<std::size_t>(d)] += xtr[static_cast<std::size_t>(row * F + d)];
      }
      double d2 = 0;
      for (index_t d = 0; d < F; ++d) {
        const double diff = m[static_cast<std::size_t>(d)] / static_cast<double>(K) - mu[static_cast<std::size_t>(d)];
        d2 += diff * diff;
      }
      total += std::sqrt(d2);
    }
    dis[c] = total / static_cast<double>(o.rounds);
  }
  return dis;
}

/// Classification ratio from a confusion matrix [C·C] (row = true class, column = prediction)
/// of the *training* set and the training counts [C]: column sum of c / N_c (NaN when N_c = 0).
inline std::vector<double> classification_ratio(const std::vector<index_t>& confusion, const std::vector<double>& counts) {
  const std::size_t C = counts.size();
  LTL_CHECK(confusion.size() == C * C, shape_error, "classification_ratio: confusion of {} entries for {} classes",
            confusion.size(), C);
  // Column sums in integers: exact in any order, so equal to summing the counts as doubles
  // (each < 2^53); the immediate reducer adds whole rows in memory order instead of walking columns.
  const auto m = xt::adapt(confusion.data(), C * C, xt::no_ownership(), std::array<std::size_t, 2>{C, C});
  const xt::xtensor<double, 1> predicted = xt::cast<double>(xt::sum(m, {0}, xt::evaluation_strategy::immediate));
  const auto n = xt::adapt(counts.data(), C, xt::no_ownership(), std::array<std::size_t, 1>{C});
  const xt::xtensor<double, 1> r = xt::where(n > 0.0, predicted / n, std::numeric_limits<double>::quiet_NaN());
  return {r.begin(), r.end()};
}

/// ‖w_c‖₂ of each row of classifier weights [C, F].
template <class T>
std::vector<double> weight_norms(const tensor<T>& w) {
  LTL_CHECK(w.dim() == 2, shape_error, "weight_norms: weights must be [C, F], got {}", w.sizes());
  const auto u = w.contiguous();
  std::vector<double> n(static_cast<std::size_t>(w.size(0)));
  for (index_t c = 0; c < w.size(0); ++c) {
    double s = 0;
    for (index_t j = 0; j < w.size(1); ++j) s += static_cast<double>(u.data()[c * w.size(1) + j]) * u.data()[c * w.size(1) + j];
    n[static_cast<std::size_t>(c)] = std::sqrt(s);
  }
  return n;
}

}  // namespace ltl::metrics
