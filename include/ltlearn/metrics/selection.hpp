#pragma once
/// \file
/// metrics::held_out_selector: the one rule by which ltlearn picks a configuration (a τ of the
/// post-hoc classifiers, an FSA phase-II setting, a hyper-parameter of a run) from its held-out
/// evaluations: the highest held-out mean per-class accuracy, the first listed on ties; a NaN
/// score never wins. Configurations are offered in the order they are listed.
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
  /// Offers the next configuration's score; true when it becomes the selection (a caller keeps
  /// that configuration's state then).
  bool offer(double score) {
    const std::size_t i = offered_++;
    if (score != score) return false;                       // NaN is never selected
    if (best_ && !(score > best_score_)) return false;      // a tie keeps the earlier one
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
