#pragma once
/// \file
/// Long-tailed datasets from balanced ones (SPEC §3; Cao et al. LDAM-DRW, Cui et al. CB loss):
/// exponential and step class-count profiles, seeded per-class selection, and the held-out
/// balanced validation split (CDT paper App. B.6).

#include "ltlearn/core/error.hpp"
#include "ltlearn/core/rng.hpp"
#include "ltlearn/core/shape.hpp"
#include "ltlearn/data/dataset.hpp"

#include <cmath>
#include <cstdint>
#include <numeric>
#include <span>
#include <string>
#include <vector>

namespace ltl::data {

namespace detail {
inline void check_profile_args(const char* op, index_t n_max, index_t num_classes, double rho) {
  LTL_CHECK(n_max >= 0, value_error, "{}: n_max must be non-negative, got {}", op, n_max);
  LTL_CHECK(num_classes >= 1, value_error, "{}: num_classes must be at least 1, got {}", op, num_classes);
  LTL_CHECK(std::isfinite(rho) && rho >= 1.0, value_error, "{}: imbalance ratio rho must be finite and >= 1, got {}",
            op, rho);
}
}  // namespace detail

/// Exponential profile: n_i = int(n_max · ρ^(−i/(C−1))) for i = 0..C−1, truncated (not rounded)
/// exactly as SPEC §3 writes it, so CIFAR-10 ρ=100 gives 5000, 2997, …, 50. With C = 1: {n_max}.
inline std::vector<index_t> exponential_profile(index_t n_max, index_t num_classes, double rho) {
  detail::check_profile_args("exponential_profile", n_max, num_classes, rho);
  std::vector<index_t> n(static_cast<std::size_t>(num_classes), n_max);
  // The exponent is computed as −i/(C−1) in double, then the power, then the product, then the
  // truncation: reordering (e.g. (1/ρ)^(i/(C−1))) could move a value across an integer.
  for (index_t i = 1; i < num_classes; ++i) {
    const double e = -static_cast<double>(i) / static_cast<double>(num_classes - 1);
    n[static_cast<std::size_t>(i)] = static_cast<index_t>(static_cast<double>(n_max) * std::pow(rho, e));
  }
  return n;
}

/// Step profile: n_i = n_max for i < ⌊C/2⌋, int(n_max/ρ) otherwise (SPEC §3).
inline std::vector<index_t> step_profile(index_t n_max, index_t num_classes, double rho) {
  detail::check_profile_args("step_profile", n_max, num_classes, rho);
  std::vector<index_t> n(static_cast<std::size_t>(num_classes), n_max);
  const auto minor = static_cast<index_t>(static_cast<double>(n_max) / rho);
  for (index_t i = num_classes / 2; i < num_classes; ++i) n[static_cast<std::size_t>(i)] = minor;
  return n;
}

/// Sum of a profile (the size of the long-tailed training set).
inline index_t total_count(std::span<const index_t> counts) {
  return std::accumulate(counts.begin(), counts.end(), index_t{0});
}

/// Keeps counts[c] images of each class c: the class's indices (ascending) are shuffled with
/// `ltl::rng(seed, c)` and the first counts[c] kept. Classes are visited in order 0..C−1 and the
/// result is class-major, so the subset is a pure function of (dataset, counts, seed).
/// Throws value_error when counts has the wrong length or a class has too few images.
/// Works on any subsettable_dataset (in-memory or encoded): the selection depends only on labels.
template <subsettable_dataset Ds>
Ds make_long_tailed(const Ds& ds, std::span<const index_t> counts, std::uint64_t seed, std::string name = {}) {
  LTL_CHECK(static_cast<index_t>(counts.size()) == ds.num_classes(), value_error,
            "make_long_tailed '{}': {} class counts for a dataset of {} classes", ds.name(), counts.size(),
            ds.num_classes());
  auto by_class = ds.class_indices();
  std::vector<index_t> chosen;
  chosen.reserve(static_cast<std::size_t>(total_count(counts)));
  for (std::size_t c = 0; c < by_class.size(); ++c) {
    auto& idx = by_class[c];
    const index_t want = counts[c];
    LTL_CHECK(want >= 0 && want <= static_cast<index_t>(idx.size()), value_error,
              "make_long_tailed '{}': class {} has {} images but the profile asks for {}", ds.name(), c, idx.size(),
              want);
    rng g(seed, c);
    g.shuffle(std::span<index_t>(idx));
    chosen.insert(chosen.end(), idx.begin(), idx.begin() + want);
  }
  return ds.subset(chosen, name.empty() ? ds.name() + "-lt" : std::move(name));
}

/// Training set with a balanced validation set taken out of it.
template <subsettable_dataset Ds>
struct basic_train_val_split {
  Ds train;                             ///< the rest, in the original order
  Ds val;                               ///< `per_class` images of each non-skipped class, class-major
  std::vector<index_t> skipped_classes; ///< classes with ≤ per_class images: left wholly in train
};
/// The split of an in-memory dataset.
using train_val_split = basic_train_val_split<image_dataset>;

/// Takes `per_class` (K) images of every class with at least K+1 images out of `ds` into a
/// balanced validation set (CDT App. B.6: K = 3 for CIFAR, 10 for iNaturalist); hyper-parameters
/// are tuned on it, never on test. Smaller classes are skipped (kept in train) and listed.
/// Selection per class: shuffle with a generator of (seed, class) distinct from make_long_tailed's
/// and take the first K.
template <subsettable_dataset Ds>
basic_train_val_split<Ds> held_out_split(const Ds& ds, index_t per_class, std::uint64_t seed) {
  LTL_CHECK(per_class >= 1, value_error, "held_out_split '{}': per-class validation size must be >= 1, got {}",
            ds.name(), per_class);
  // Domain separation: the same user seed must not replay make_long_tailed's permutations.
  constexpr std::uint64_t held_out_domain = 0x68656C645F6F7574ull;  // "held_out"
  auto by_class = ds.class_indices();
  std::vector<char> in_val(static_cast<std::size_t>(ds.size()), 0);
  std::vector<index_t> val;
  basic_train_val_split<Ds> out;
  for (std::size_t c = 0; c < by_class.size(); ++c) {
    auto& idx = by_class[c];
    if (static_cast<index_t>(idx.size()) <= per_class) {
      out.skipped_classes.push_back(static_cast<index_t>(c));
      continue;
    }
    rng g(seed ^ held_out_domain, c);
    g.shuffle(std::span<index_t>(idx));
    for (index_t k = 0; k < per_class; ++k) {
      val.push_back(idx[static_cast<std::size_t>(k)]);
      in_val[static_cast<std::size_t>(idx[static_cast<std::size_t>(k)])] = 1;
    }
  }
  std::vector<index_t> train;
  train.reserve(static_cast<std::size_t>(ds.size()) - val.size());
  for (index_t i = 0; i < ds.size(); ++i)
    if (!in_val[static_cast<std::size_t>(i)]) train.push_back(i);
  out.train = ds.subset(train, ds.name());
  out.val = ds.subset(val, ds.name() + "-val");
  return out;
}

}  // namespace ltl::data
