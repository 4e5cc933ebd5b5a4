#pragma once
/// \file
/// Head/tail split of feature space augmentation (Chu et al., ECCV 2020, §5.4; SPEC §10):
/// classes sorted by descending training count N_c; the head is the smallest prefix holding at
/// least a share h_r of all training images ("the minimum of h that satisfies h_r ≥ 0.9"), the
/// remaining classes are the tail.

#include "ltlearn/core/error.hpp"
#include "ltlearn/core/shape.hpp"

#include <algorithm>
#include <numeric>
#include <span>
#include <vector>

namespace ltl::augment {

/// Result of split_head_tail.
struct head_tail_split {
  std::vector<index_t> head;  ///< head classes, by descending count (ties: lower index first)
  std::vector<index_t> tail;  ///< tail classes with at least one image, by descending count
  std::vector<index_t> empty; ///< classes without images: neither head nor tail (nothing to draw)
  std::vector<bool> is_head;  ///< [C]
  double head_share = 0;      ///< share of all images in the head classes (≥ h_r)

  /// True when class c is a tail class.
  [[nodiscard]] bool is_tail(index_t c) const { return std::find(tail.begin(), tail.end(), c) != tail.end(); }
};

/// Splits classes by counts [C] at the cumulative share h_r ∈ (0, 1]. The share is compared
/// with a relative tolerance of 1e-9, so that e.g. 90 of 100 images meet h_r = 0.9 although
/// 0.9·100 is not exact in binary. h_r = 1 makes every class with images a head class.
inline head_tail_split split_head_tail(std::span<const index_t> counts, double h_r) {
  LTL_CHECK(h_r > 0 && h_r <= 1, value_error, "split_head_tail: h_r = {} must lie in (0, 1]", h_r);
  LTL_CHECK(!counts.empty(), value_error, "split_head_tail: no classes");
  index_t total = 0;
  for (std::size_t c = 0; c < counts.size(); ++c) {
    LTL_CHECK(counts[c] >= 0, value_error, "split_head_tail: class {} has a negative count {}", c, counts[c]);
    total += counts[c];
  }
  LTL_CHECK(total > 0, value_error, "split_head_tail: all {} classes are empty", counts.size());
  std::vector<index_t> order(counts.size());
  std::iota(order.begin(), order.end(), index_t{0});
  std::stable_sort(order.begin(), order.end(), [&](index_t a, index_t b) {
    return counts[static_cast<std::size_t>(a)] > counts[static_cast<std::size_t>(b)];
  });
  head_tail_split s;
  s.is_head.assign(counts.size(), false);
  index_t cum = 0;
  const double need = h_r * static_cast<double>(total) * (1 - 1e-9);
  for (index_t c : order) {
    const index_t n = counts[static_cast<std::size_t>(c)];
    if (n == 0) {
      s.empty.push_back(c);
    } else if (static_cast<double>(cum) < need) {
      s.head.push_back(c);
      s.is_head[static_cast<std::size_t>(c)] = true;
      cum += n;
    } else {
      s.tail.push_back(c);
    }
  }
  std::sort(s.empty.begin(), s.empty.end());
  s.head_share = static_cast<double>(cum) / static_cast<double>(total);
  return s;
}

}  // namespace ltl::augment
