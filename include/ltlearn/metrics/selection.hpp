#pragma once
/// \file
/// metrics::held_out_selector: the one rule by which ltlearn picks a configuration (a τ of the
/// post-hoc classifiers, an FSA phase-II setting, a hyper-parameter of a run) from its held-out
/// evaluations: the highest held-out mean per-class accuracy, the first listed on ties; a NaN
/// score never wins. Configurations are offered in the order they are listed.
///
/// Scores within tie_tolerance (1e-9) of each other are ties. A mean per-class accuracy is a
/// mean of per-class ratios, and its last bits depend on which classes the hits fall in: 87 of
/// 100 held-out images can score 0.8699999999999999 in one configuration and 0.8700000000000001
/// in another, which an exact comparison would rank. One image more in class c moves the score
/// by 1/(C·n_c) ≥ 1/(C·N) for N held-out images (1e-8 or more while C·N ≤ 10^8; iNaturalist's
/// 8,142 classes × 3 images: 4e-5), and summation rounding stays near C·2^-52 (below 1e-12 for
/// C up to 10^4): the tolerance separates the two.
///
/// scripts/results_table.py (Python, choosing among finished runs) applies the same rule in its
/// select(); keep the two in step.

#include "ltlearn/core/config.hpp"

#include <cstddef>
#include <optional>
#include <span>

namespace ltl::metrics {

/// Streams held-out scores and keeps the selected one.
class held_out_selector {
 public:
  /// Scores closer than this are the same score (see the file comment).
  static constexpr double tie_tolerance = 1e-9;

  /// Offers the next configuration's score; true when it becomes the selection (a caller keeps
  /// that configuration's state then).
  bool offer(double score) {
    const std::size_t i = offered_++;
    if (score != score) return false;                       // NaN is never selected
    if (best_ && !(score > best_score_ + tie_tolerance)) return false;  // a tie keeps the earlier one
    best_ = i;
    best_score_ = score;
    return true;
  }
  /// Index (in offering order) of the selected configuration; nullopt before a valid score.
  [[nodiscard]] std::optional<std::size_t> selected() const noexcept { return best_; }
  /// The selected score (meaningful when selected()).
  [[nodiscard]] double score() const noexcept { return best_score_; }
  /// Number of configurations offered.
  [[nodiscard]] std::size_t offered() const noexcept { return offered_; }

 private:
  std::size_t offered_ = 0;
  std::optional<std::size_t> best_;
  double best_score_ = 0;
};

/// The index held_out_selector selects from `scores` listed in order (nullopt: empty or all NaN).
inline std::optional<std::size_t> select_held_out(std::span<const double> scores) {
  held_out_selector s;
  for (double v : scores) s.offer(v);
  return s.selected();
}

}  // namespace ltl::metrics
