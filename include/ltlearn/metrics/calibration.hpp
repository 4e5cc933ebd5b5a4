#pragma once
/// \file
/// Expected calibration error (SPEC §11), overall and per shot group of the true class:
///   ECE = Σ_b (n_b/n)·|acc_b − conf_b|
/// over equal-width bins of the confidence (the softmax probability of the predicted class; bin
/// b holds confidences in [b/B, (b+1)/B), the last bin includes 1), acc_b the fraction of its
/// samples predicted correctly and conf_b their mean confidence. Same binning as
/// classification_meter::ece. Feed logits [B, C] and labels [B] batch by batch.

#include "ltlearn/metrics/classification.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <vector>

namespace ltl::metrics {

/// One confidence bin: sample count, mean confidence and accuracy (0 when empty).
struct calibration_bin {
  index_t count = 0;
  double confidence = 0, accuracy = 0;
};

/// Streaming ECE overall and for the many/medium/few-shot classes given training counts [C].
class calibration_meter {
 public:
  explicit calibration_meter(std::vector<double> train_counts, int bins = 15, shot_thresholds th = {})
      : bins_(bins), group_of_(train_counts.size()) {
    LTL_CHECK(bins > 0 && !train_counts.empty(), value_error, "calibration_meter: {} bins for {} classes", bins,
              train_counts.size());
    for (std::size_t c = 0; c < train_counts.size(); ++c)
      group_of_[c] = static_cast<int>(classify_shot(static_cast<index_t>(train_counts[c]), th));
    for (auto& a : acc_) a.assign(static_cast<std::size_t>(bins), {});
  }

  /// Adds logits [B, C] and labels [B].
  template <class T, device D1, device D2>
  void add(const tensor<T, D1>& logits, const tensor<std::int64_t, D2>& labels) {
    const auto C = static_cast<index_t>(group_of_.size());
    LTL_CHECK(logits.dim() == 2 && logits.size(1) == C && labels.dim() == 1 && labels.size(0) == logits.size(0),
              shape_error, "calibration_meter: logits {} and labels {} do not match {} classes", logits.sizes(),
              labels.sizes(), C);
    const auto z = ltl::detail::to_host(logits);
    const auto y = ltl::detail::to_host(labels);
    for (index_t i = 0; i < z.size(0); ++i) {
      const T* row = z.data() + i * C;
      const std::int64_t yi = y.data()[i];
      LTL_CHECK(yi >= 0 && yi < C, value_error, "calibration_meter: label {} at position {} is outside [0, {})", yi, i,
                C);
      require_finite_row(row, C, i, "calibration_meter");
      const index_t pred = argmax(row, C);
      double se = 0;
      for (index_t c = 0; c < C; ++c) se += std::exp(static_cast<double>(row[c]) - static_cast<double>(row[pred]));
      const double conf = 1.0 / se;
      const auto b = static_cast<std::size_t>(std::min(bins_ - 1, static_cast<int>(conf * bins_)));
      for (int slot : {3, group_of_[static_cast<std::size_t>(yi)]}) {
        auto& bin = acc_[static_cast<std::size_t>(slot)][b];
        bin.count++;
        bin.confidence += conf;
        bin.accuracy += pred == yi ? 1.0 : 0.0;
      }
    }
  }

  /// ECE over all samples (0 before any sample).
  [[nodiscard]] double ece() const { return ece_of(3).value_or(0.0); }
  /// ECE over the samples whose true class is in group `g`; nullopt when there are none.
  [[nodiscard]] std::optional<double> ece(shot_group g) const { return ece_of(static_cast<int>(g)); }
  /// The bins over all samples, with means (a reliability diagram).
  [[nodiscard]] std::vector<calibration_bin> bins() const {
    auto out = acc_[3];
    for (auto& b : out)
      if (b.count) b.confidence /= static_cast<double>(b.count), b.accuracy /= static_cast<double>(b.count);
    return out;
  }

 private:
  [[nodiscard]] std::optional<double> ece_of(int slot) const {
    const auto& a = acc_[static_cast<std::size_t>(slot)];
    index_t n = 0;
    for (auto& b : a) n += b.count;
    if (!n) return std::nullopt;
    double e = 0;
    for (auto& b : a)
      if (b.count) e += std::abs(b.accuracy - b.confidence) / static_cast<double>(n);  // n_b/n · |Σcorrect − Σconf|/n_b
    return e;
  }

  int bins_;
  std::vector<int> group_of_;
  std::array<std::vector<calibration_bin>, 4> acc_;  ///< many, medium, few, all — sums until bins()
};

}  // namespace ltl::metrics
