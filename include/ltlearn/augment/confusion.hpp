#pragma once
/// \file
/// Confusing classes of feature space augmentation (Chu et al., ECCV 2020, §4.2; SPEC §10):
/// "we calculate the classification scores for all other classes for each training sample in a
/// given tail class, and then find its top N_f confusing classes by ranking the average
/// classification scores of other classes over all samples within the tail class."
/// Scores are softmax probabilities of the phase-I model.

#include "ltlearn/core/error.hpp"
#include "ltlearn/tensor/tensor.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <span>
#include <vector>

namespace ltl::augment {

/// Mean softmax scores per true class, accumulated batch by batch: rows added in order give
/// mean_class_scores of all of them, bit for bit (a streamed feature bank keeps these [C, C]
/// instead of every sample's logits).
class class_score_means {
 public:
  /// `num_classes` C, `scale` as mean_class_scores'.
  class_score_means(index_t num_classes, double scale) : C_(num_classes), scale_(scale) {
    LTL_CHECK(num_classes > 0, value_error, "mean_class_scores: {} classes", num_classes);
    LTL_CHECK(scale > 0 && std::isfinite(scale), value_error, "mean_class_scores: scale {} must be positive", scale);
    sums_ = tensor<double>::zeros(shape{C_, C_});
    n_of_.assign(static_cast<std::size_t>(C_), 0);
    p_.resize(static_cast<std::size_t>(C_));
  }

  /// Adds logits [n, C] of samples with labels [n].
  template <real_scalar T>
  void add(const tensor<T>& logits, std::span<const std::int64_t> labels) {
    LTL_CHECK(logits.dim() == 2 && logits.size(0) == static_cast<index_t>(labels.size()) && logits.size(1) == C_,
              shape_error, "mean_class_scores: logits {} must be [N, C] with N = {} labels and C = {}",
              logits.sizes(), labels.size(), C_);
    const index_t N = logits.size(0), C = C_;
    const auto z = logits.contiguous();
    for (index_t i = 0; i < N; ++i) {
      const std::int64_t y = labels[static_cast<std::size_t>(i)];
      LTL_CHECK(y >= 0 && y < C, value_error, "mean_class_scores: label {} of sample {} is outside [0, {})", y,
                n_seen_ + i, C);
      const T* row = z.data() + i * C;
      const double mx = scale_ * static_cast<double>(*std::max_element(row, row + C));
      double se = 0;
      for (index_t c = 0; c < C; ++c) se += p_[static_cast<std::size_t>(c)] = std::exp(scale_ * row[c] - mx);
      double* o = sums_.data() + y * C;
      for (index_t c = 0; c < C; ++c) o[c] += p_[static_cast<std::size_t>(c)] / se;
      ++n_of_[static_cast<std::size_t>(y)];
    }
    n_seen_ += N;
  }

  /// The [C, C] means; rows of classes without samples are zero.
  [[nodiscard]] tensor<double> means() const {
    auto out = sums_.clone();
    for (index_t c = 0; c < C_; ++c)
      if (const auto n = n_of_[static_cast<std::size_t>(c)]; n > 0)
        for (index_t u = 0; u < C_; ++u) out.data()[c * C_ + u] /= static_cast<double>(n);
    return out;
  }
  [[nodiscard]] double scale() const noexcept { return scale_; }

 private:
  index_t C_;
  double scale_;
  tensor<double> sums_;
  std::vector<index_t> n_of_;
  std::vector<double> p_;
  index_t n_seen_ = 0;
};

/// Mean softmax scores per true class: logits [N, C] and labels [N] → [C, C] (double) whose row
/// c is the mean of softmax(scale·z_i) over the samples i of class c; rows of classes without
/// samples are zero. `scale` is the logit scale of the loss (e.g. LDAM's s for a cosine
/// classifier), 1 for a plain linear classifier.
template <real_scalar T>
tensor<double> mean_class_scores(const tensor<T>& logits, std::span<const std::int64_t> labels, double scale = 1) {
  LTL_CHECK(logits.dim() == 2 && logits.size(0) == static_cast<index_t>(labels.size()), shape_error,
            "mean_class_scores: logits {} must be [N, C] with N = {} labels", logits.sizes(), labels.size());
  class_score_means m(logits.size(1), scale);
  m.add(logits, labels);
  return m.means();
}

/// The N_f most confusing classes of each target class: for target c, the classes u ≠ c with
/// `candidate[u]` ranked by descending scores[c, u] (ties: lower index first). scores [C, C] as
/// from mean_class_scores; `candidate` [C] (empty = every class) restricts the partners, e.g.
/// to classes that have images, or to head classes only. Returns [C] lists, empty for classes
/// that are not targets; a target gets fewer than N_f partners when fewer candidates exist.
inline std::vector<std::vector<index_t>> confusing_classes(const tensor<double>& scores,
                                                           std::span<const index_t> targets, index_t n_f,
                                                           const std::vector<bool>& candidate = {}) {
  LTL_CHECK(scores.dim() == 2 && scores.size(0) == scores.size(1), shape_error,
            "confusing_classes: scores {} must be [C, C]", scores.sizes());
  const index_t C = scores.size(0);
  LTL_CHECK(n_f >= 1, value_error, "confusing_classes: N_f = {} must be at least 1", n_f);
  LTL_CHECK(candidate.empty() || static_cast<index_t>(candidate.size()) == C, shape_error,
            "confusing_classes: candidate mask has {} entries for {} classes", candidate.size(), C);
  const auto s = scores.contiguous();
  std::vector<std::vector<index_t>> out(static_cast<std::size_t>(C));
  for (index_t c : targets) {
    LTL_CHECK(c >= 0 && c < C, value_error, "confusing_classes: target class {} is outside [0, {})", c, C);
    std::vector<index_t> u;
    for (index_t k = 0; k < C; ++k)
      if (k != c && (candidate.empty() || candidate[static_cast<std::size_t>(k)])) u.push_back(k);
    const double* row = s.data() + c * C;
    std::stable_sort(u.begin(), u.end(), [row](index_t a, index_t b) { return row[a] > row[b]; });
    if (static_cast<index_t>(u.size()) > n_f) u.resize(static_cast<std::size_t>(n_f));
    out[static_cast<std::size_t>(c)] = std::move(u);
  }
  return out;
}

}  // namespace ltl::augment
