#pragma once
/// \file
/// Streaming classification metrics: top-1/top-k, per-class accuracy, confusion matrix,
/// shot-group accuracy (many > 100, medium 20–100, few < 20 training images; an empty group is
/// reported as empty, not 0 %) and expected calibration error. Feed batches of logits [B, C]
/// and labels [B] (on any device: they are read on the host); read the summary at the end.
/// The confusion matrix is an xt::xtensor [C, C]; per-class accuracy and the shot-group means are
/// its row sums, diagonal and masked means.

#include "ltlearn/backends/contract/indexing.hpp"
#include "ltlearn/core/error.hpp"
#include "ltlearn/core/shot_groups.hpp"
#include "ltlearn/detail/host.hpp"
#include "ltlearn/tensor/tensor.hpp"

#include <xtensor/xbuilder.hpp>
#include <xtensor/xindex_view.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>
#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace ltl::metrics {

/// The predicted class of one logit row of `n` scores: the index of the largest, the first one
/// on ties (std::max_element's rule; ltl::row_argmax, which every device's argmax_matches
/// kernel follows). Every top-1 decision of the library goes through here.
template <class T>
[[nodiscard]] index_t argmax(const T* row, index_t n) {
  return row_argmax(row, n);
}

/// Number of rows of logits [B, C] whose argmax equals the label [B]. Both on one device: that
/// device's argmax_matches kernel counts them there (a GPU downloads one number, not the
/// logits); on different devices, the host counts.
template <class T, device D1, device D2>
[[nodiscard]] index_t count_correct(const tensor<T, D1>& logits, const tensor<std::int64_t, D2>& labels) {
  LTL_CHECK(logits.dim() == 2 && labels.dim() == 1 && labels.size(0) == logits.size(0), shape_error,
            "count_correct: logits {} and labels {} must be [B, C] and [B]", logits.sizes(), labels.sizes());
  if constexpr (std::is_same_v<D1, D2> && requires { argmax_matches(logits, labels); }) {
    return argmax_matches(logits, labels);
  } else {
    const auto z = ltl::detail::to_host(logits);
    const auto y = ltl::detail::to_host(labels);
    const index_t C = z.size(1);
    index_t k = 0;
    for (index_t i = 0; i < z.size(0); ++i) k += argmax(z.data() + i * C, C) == y.data()[i];
    return k;
  }
}

/// Checks that a logit row holds no NaN or infinity (value_error naming `who` and the row).
///
/// Why an error rather than counting the row as a wrong prediction: non-finite logits come from
/// a model that has diverged or a checkpoint holding non-finite weights, and then every row is
/// affected; an accuracy of "0 %" or "10 %" with an ECE of 0 would be silent garbage in a report,
/// whereas the error names the cause. (The softmax confidence of such a row is NaN, which used to
/// become a negative calibration-bin index and crash.)
template <class T>
void require_finite_row(const T* row, index_t n, index_t position, const char* who) {
  for (index_t c = 0; c < n; ++c)
    LTL_CHECK(std::isfinite(static_cast<double>(row[c])), value_error,
              "{}: the logits of sample {} of the batch are not finite ({} for class {}): the model has diverged or "
              "its weights hold NaN/infinite values",
              who, position, static_cast<double>(row[c]), c);
}

/// Accuracy of one shot group: nullopt when the group has no classes.
struct group_accuracy {
  std::optional<double> many, medium, few;
};

/// Accumulates predictions batch by batch.
class classification_meter {
 public:
  /// The confusion matrix type: [C, C] counts, row = true class.
  using confusion_matrix_t = xt::xtensor<index_t, 2>;

  explicit classification_meter(index_t num_classes, index_t top_k = 5, int ece_bins = 15)
      : C_(num_classes), k_(top_k), bins_(ece_bins), confusion_(confusion_matrix_t::shape_type{
                                                         static_cast<std::size_t>(std::max<index_t>(num_classes, 0)),
                                                         static_cast<std::size_t>(std::max<index_t>(num_classes, 0))},
                                                     index_t{0}),
        bin_count_(static_cast<std::size_t>(ece_bins), 0), bin_conf_(static_cast<std::size_t>(ece_bins), 0.0),
        bin_correct_(static_cast<std::size_t>(ece_bins), 0.0) {
    LTL_CHECK(num_classes > 0 && top_k > 0 && ece_bins > 0, value_error,
              "classification_meter: classes {}, top_k {} and bins {} must be positive", num_classes, top_k, ece_bins);
  }

  /// Adds a batch: logits [B, C] (any real type), labels [B].
  template <class T, device D1, device D2>
  void add(const tensor<T, D1>& logits, const tensor<std::int64_t, D2>& labels) {
    LTL_CHECK(logits.dim() == 2 && logits.size(1) == C_ && labels.dim() == 1 && labels.size(0) == logits.size(0),
              shape_error, "classification_meter: logits {} and labels {} do not match {} classes", logits.sizes(),
              labels.sizes(), C_);
    const auto z = ltl::detail::to_host(logits);
    const auto y = ltl::detail::to_host(labels);
    for (index_t i = 0; i < z.size(0); ++i) {
      const T* row = z.data() + i * C_;
      const std::int64_t yi = y.data()[i];
      LTL_CHECK(yi >= 0 && yi < C_, value_error, "classification_meter: label {} at position {} is outside [0, {})", yi,
                i, C_);
      require_finite_row(row, C_, i, "classification_meter");
      const index_t pred = argmax(row, C_);
      index_t rank = 0;  // number of classes scoring strictly above the true class
      double mx = row[pred], se = 0;
      for (index_t c = 0; c < C_; ++c) {
        rank += row[c] > row[yi];
        se += std::exp(static_cast<double>(row[c]) - mx);
      }
      confusion_(static_cast<std::size_t>(yi), static_cast<std::size_t>(pred))++;
      topk_ += rank < k_;
      const double conf = 1.0 / se;  // softmax probability of the predicted class
      const int b = std::min(bins_ - 1, static_cast<int>(conf * bins_));
      bin_count_[static_cast<std::size_t>(b)]++;
      bin_conf_[static_cast<std::size_t>(b)] += conf;
      bin_correct_[static_cast<std::size_t>(b)] += pred == yi;
      ++n_;
    }
  }

  [[nodiscard]] index_t count() const noexcept { return n_; }
  [[nodiscard]] index_t num_classes() const noexcept { return C_; }
  /// The [C, C] confusion matrix: (t, p) = number of samples of true class t predicted as p.
  [[nodiscard]] const confusion_matrix_t& confusion_matrix() const noexcept { return confusion_; }
  /// The confusion matrix flattened row by row (confusion[t·C + p]), as eval_report stores it.
  [[nodiscard]] std::vector<index_t> confusion() const { return {confusion_.begin(), confusion_.end()}; }

  /// Plain top-1 accuracy over all samples.
  [[nodiscard]] double top1() const { return n_ ? static_cast<double>(correct()) / static_cast<double>(n_) : 0.0; }
  [[nodiscard]] double topk() const { return n_ ? static_cast<double>(topk_) / static_cast<double>(n_) : 0.0; }
  /// Accuracy of each class (NaN for a class with no samples).
  [[nodiscard]] std::vector<double> per_class() const {
    const auto acc = per_class_table();
    return {acc.begin(), acc.end()};
  }
  /// Mean of the per-class accuracies over classes that have samples.
  [[nodiscard]] double mean_per_class() const {
    const auto acc = per_class_table();
    return masked_mean(acc, !xt::isnan(acc)).value_or(0.0);
  }
  /// Mean per-class accuracy of each shot group given the training class counts.
  [[nodiscard]] group_accuracy by_shot(const std::vector<double>& train_counts, shot_thresholds th = {}) const {
    LTL_CHECK(static_cast<index_t>(train_counts.size()) == C_, shape_error,
              "classification_meter: {} class counts for {} classes", train_counts.size(), C_);
    const auto acc = per_class_table();
    xt::xtensor<int, 1> group = xt::xtensor<int, 1>::from_shape({static_cast<std::size_t>(C_)});
    for (std::size_t c = 0; c < group.size(); ++c)
      group(c) = static_cast<int>(classify_shot(static_cast<index_t>(train_counts[c]), th));
    const auto has = !xt::isnan(acc);
    return {.many = masked_mean(acc, has && xt::equal(group, 0)),
            .medium = masked_mean(acc, has && xt::equal(group, 1)),
            .few = masked_mean(acc, has && xt::equal(group, 2))};
  }
  /// Expected calibration error with equal-width confidence bins.
  [[nodiscard]] double ece() const {
    if (!n_) return 0.0;
    double e = 0;
    for (int b = 0; b < bins_; ++b) {
      const auto bu = static_cast<std::size_t>(b);
      if (!bin_count_[bu]) continue;
      const double cnt = static_cast<double>(bin_count_[bu]);
      e += cnt / static_cast<double>(n_) * std::abs(bin_correct_[bu] / cnt - bin_conf_[bu] / cnt);
    }
    return e;
  }

  /// Calls `sum(std::span<index_t>)` on the integer counts and `sum(std::span<double>)` on the
  /// real sums it accumulates, so that a sharded evaluation can add up every rank's meter.
  template <class Sum>
  void reduce_with(Sum&& sum) {
    std::vector<index_t> ints(confusion_.begin(), confusion_.end());
    ints.insert(ints.end(), bin_count_.begin(), bin_count_.end());
    ints.push_back(topk_);
    ints.push_back(n_);
    std::vector<double> reals(bin_conf_);
    reals.insert(reals.end(), bin_correct_.begin(), bin_correct_.end());
    sum(std::span<index_t>(ints));
    sum(std::span<double>(reals));
    const auto nc = confusion_.size(), nb = bin_count_.size();
    std::copy(ints.begin(), ints.begin() + static_cast<std::ptrdiff_t>(nc), confusion_.begin());
    std::copy_n(ints.begin() + static_cast<std::ptrdiff_t>(nc), nb, bin_count_.begin());
    topk_ = ints[nc + nb];
    n_ = ints[nc + nb + 1];
    std::copy_n(reals.begin(), nb, bin_conf_.begin());
    std::copy_n(reals.begin() + static_cast<std::ptrdiff_t>(nb), nb, bin_correct_.begin());
  }

 private:
  /// Per-class accuracy [C]: the diagonal over the row sums, NaN for rows without samples.
  [[nodiscard]] xt::xtensor<double, 1> per_class_table() const {
    const xt::xtensor<double, 1> hits = xt::cast<double>(xt::diagonal(confusion_));
    // Integer sums are exact in any order: the immediate reducer walks the matrix in memory order.
    const xt::xtensor<double, 1> total = xt::cast<double>(xt::sum(confusion_, {1}, xt::evaluation_strategy::immediate));
    return xt::where(total > 0.0, hits / total, std::numeric_limits<double>::quiet_NaN());
  }
  /// Mean of the entries of `values` where `mask` holds; nullopt if none.
  template <class Mask>
  [[nodiscard]] static std::optional<double> masked_mean(const xt::xtensor<double, 1>& values, const Mask& mask) {
    const xt::xtensor<double, 1> kept = xt::filter(values, mask);
    if (kept.size() == 0) return std::nullopt;
    // xt::sum's (default, lazy) reducer adds from 0 in index order: the class-order sum.
    return xt::sum(kept)() / static_cast<double>(kept.size());
  }
  [[nodiscard]] index_t correct() const { return xt::sum(xt::diagonal(confusion_))(); }

  index_t C_, k_;
  int bins_;
  confusion_matrix_t confusion_;
  index_t topk_ = 0, n_ = 0;
  std::vector<index_t> bin_count_;
  std::vector<double> bin_conf_, bin_correct_;
};

/// Formats an optional accuracy as a percentage, or "empty".
inline std::string format_accuracy(const std::optional<double>& a) {
  return a ? fmt::format("{:.2f}", 100.0 * *a) : std::string("empty");
}

}  // namespace ltl::metrics
