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

/// Mean softmax scores per true class: logits [N, C] and labels [N] → [C, C] (double) whose row
/// c is the mean of softmax(scale·z_i) over the samples i of class c; rows of classes without
/// samples are zero. `scale` is the logit scale of the loss (e.g. LDAM's s for a cosine
/// classifier), 1 for a plain linear classifier.
template <real_scalar T>
tensor<double> mean_class_scores(const tensor<T>& logits, std::span<const std::int64_t> labels, double scale = 1) {
  LTL_CHECK(logits.dim() == 2 && logits.size(0) == static_cast<index_t>(labels.size()), shape_error,
            "mean_class_scores: logits {} must be [N, C] with N = {} labels", logits.sizes(), labels.size());
  LTL_CHECK(scale > 0 && std::isfinite(scale), value_error, "mean_class_scores: scale {} must be positive", scale);
  const index_t N = logits.size(0), C = logits.size(1);
  const auto z = logits.contiguous();
  auto out = tensor<double>::zeros(shape{C, C});
  std::vector<index_t> n_of(static_cast<std::size_t>(C), 0);
  std::vector<double> p(static_cast<std::size_t>(C));
  for (index_t i = 0; i < N; ++i) {
    const std::int64_t y = labels[static_cast<std::size_t>(i)];
    LTL_CHECK(y >= 0 && y < C, value_error, "mean_class_scores: label {} of sample {} is outside [0, {})", y, i, C);
    const T* row = z.data() + i * C;
    const double mx = scale * static_cast<double>(*std::max_element(row, row + C));
    double se = 0;
    for (index_t c = 0; c < C; ++c) se += p[static_cast<std::size_t>(c)] = std::exp(scale * row[c] - mx);
    double* o = out.data() + y * C;
    for (index_t c = 0; c < C; ++c) o[c] += p[static_cast<std::size_t>(c)] / se;
    ++n_of[static_cast<std::size_t>(y)];
  }
  for (index_t c = 0; c < C; ++c)
    if (const auto n = n_of[static_cast<std::size_t>(c)]; n > 0)
      for (index_t u = 0; u < C; ++u) out.data()[c * C + u] /= static_cast<double>(n);
  return out;
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
