#pragma once
/// \file
/// Cached features for the decoupled and post-hoc classifiers (Kang et al., ICLR 2020, §4):
/// the pooled feature f(x) [N, F] of every image, extracted once in evaluation mode without
/// augmentation and reused by NCM, τ-normalisation, N_c^τ, post-hoc logit adjustment, τ search
/// and cRT/LWS on cached features. Also streaming class means, batched logits of a head over a
/// table and evaluation of a head on a table with the report of eval::evaluate_with.
///
/// A "head" is any callable mapping features [B, F] to logits [B, C] as variables — an
/// nn::unary_module (the model's classifier, or one made by classifier/posthoc.hpp or
/// classifier/decoupled.hpp) or a lambda. `eval::evaluate_with` evaluates the same head on
/// images through `[&](auto& x) { return head(model.features(x)); }`.
///
/// Devices: the table is host data (it is gathered, sorted and averaged on the host); a head on
/// device D gets its rows moved to D batch by batch (the `D` template argument, CPU by default).

#include "ltlearn/data/dataset.hpp"
#include "ltlearn/data/transforms.hpp"
#include "ltlearn/eval/batched_pass.hpp"
#include "ltlearn/losses/fused_loss.hpp"
#include "ltlearn/metrics/classification.hpp"
#include "ltlearn/metrics/report.hpp"
#include "ltlearn/nn/staged_model.hpp"
#include "ltlearn/ops/indexing.hpp"

#include <xtensor/xadapt.hpp>
#include <xtensor/xnoalias.hpp>
#include <xtensor/xoperation.hpp>
#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <numeric>
#include <span>
#include <vector>

namespace ltl::classifier {

/// Features [N, F] with their labels [N] (host).
template <real_scalar T>
struct feature_table {
  tensor<T> features;           ///< [N, F], contiguous
  tensor<std::int64_t> labels;  ///< [N]
  index_t num_classes = 0;

  [[nodiscard]] index_t size() const { return features.defined() ? features.size(0) : 0; }
  [[nodiscard]] index_t dim() const { return features.defined() ? features.size(1) : 0; }
  /// Number of rows of each class, [num_classes].
  [[nodiscard]] std::vector<index_t> class_counts() const {
    std::vector<index_t> n(static_cast<std::size_t>(num_classes), 0);
    for (index_t i = 0; i < size(); ++i) ++n[static_cast<std::size_t>(labels.data()[i])];
    return n;
  }
  /// class_counts() as doubles (what the shot-group and loss code take).
  [[nodiscard]] std::vector<double> class_counts_double() const {
    std::vector<double> n;
    for (index_t c : class_counts()) n.push_back(static_cast<double>(c));
    return n;
  }
  /// Rows `idx` as a batch: features [B, F], labels [B].
  [[nodiscard]] std::pair<tensor<T>, tensor<std::int64_t>> rows(std::span<const index_t> idx) const {
    const auto B = static_cast<index_t>(idx.size());
    const index_t F = dim();
    tensor<T> f(shape{B, F});
    tensor<std::int64_t> y(shape{B});
    for (index_t b = 0; b < B; ++b) {
      const index_t i = idx[static_cast<std::size_t>(b)];
      LTL_CHECK(i >= 0 && i < size(), value_error, "feature_table::rows: index {} is outside [0, {})", i, size());
      std::copy_n(features.data() + i * F, F, f.data() + b * F);
      y.data()[b] = labels.data()[i];
    }
    return {std::move(f), std::move(y)};
  }
};

/// A table from given features [N, F] and labels [N] (validated; copied to contiguous storage).
template <real_scalar T>
feature_table<T> make_feature_table(const tensor<T>& features, const tensor<std::int64_t>& labels, index_t num_classes) {
  LTL_CHECK(features.dim() == 2 && labels.dim() == 1 && labels.size(0) == features.size(0), shape_error,
            "make_feature_table: features {} and labels {} must be [N, F] and [N]", features.sizes(), labels.sizes());
  LTL_CHECK(num_classes > 0, value_error, "make_feature_table: {} classes", num_classes);
  feature_table<T> t{features.contiguous().clone(), labels.contiguous().clone(), num_classes};
  for (index_t i = 0; i < t.size(); ++i) {
    const auto y = t.labels.data()[i];
    LTL_CHECK(y >= 0 && y < num_classes, value_error, "make_feature_table: label {} at row {} is outside [0, {})", y, i,
              num_classes);
  }
  return t;
}

/// f(x) [N, F] of every item of the pass_source `src` (in order, as it builds its evaluation
/// batches, `workers` loader threads ahead), with the model in eval mode (batch-norm running
/// statistics) and no graph recorded (eval::collect at the model's "pool" point).
template <real_scalar T, device D, class Src>
  requires eval::pass_source<Src, T>
feature_table<T> extract_features(nn::staged_model<T, D>& model, const Src& src, index_t batch_size = 256,
                                  int workers = 0) {
  const auto N = static_cast<index_t>(src.size());
  LTL_CHECK(N > 0 && batch_size > 0, value_error, "extract_features: {} images, batch size {}", N, batch_size);
  auto c = eval::collect(model, src, {.point = "pool", .batch_size = batch_size}, workers);
  LTL_CHECK(c.outputs.dim() == 2, shape_error, "extract_features: the model's features are {}, expected [N, F]",
            c.outputs.sizes());
  return {std::move(c.outputs), std::move(c.labels), static_cast<index_t>(src.num_classes())};
}

/// f(x) [N, F] of every image of `ds` (in order), normalised by `norm`, not augmented, with the
/// model in eval mode (batch-norm running statistics) and no graph recorded (eval::collect at
/// the model's "pool" point).
template <real_scalar T, device D, data::dataset Ds>
feature_table<T> extract_features(nn::staged_model<T, D>& model, const Ds& ds, const data::normalize& norm,
                                  index_t batch_size = 256) {
  return extract_features(model, eval::normalized_dataset<T, Ds>(ds, norm, eval::delivery_for<D, T>), batch_size);
}

/// Streaming per-class sums of features (optionally L2-normalised row by row) and counts, in
/// double: class means without keeping the rows (NCM, test-side feature means). The sums are an
/// xt::xtensor [C, F]; the means divide it by the counts broadcast along the rows.
class class_means {
 public:
  class_means(index_t num_classes, index_t dim)
      : C_(num_classes), F_(dim),
        sums_(xt::xtensor<double, 2>::shape_type{static_cast<std::size_t>(std::max<index_t>(num_classes, 0)),
                                                 static_cast<std::size_t>(std::max<index_t>(dim, 0))},
              0.0),
        counts_(static_cast<std::size_t>(num_classes), 0) {
    LTL_CHECK(num_classes > 0 && dim > 0, value_error, "class_means: {} classes of dimension {}", num_classes, dim);
  }
  /// Adds rows f [B, F] of classes y [B]; with `l2_normalize` each row is first scaled to unit norm.
  template <real_scalar T>
  void add(const tensor<T>& f, const tensor<std::int64_t>& y, bool l2_normalize) {
    LTL_CHECK(f.dim() == 2 && f.size(1) == F_ && y.dim() == 1 && y.size(0) == f.size(0), shape_error,
              "class_means::add: features {} and labels {} do not match dimension {}", f.sizes(), y.sizes(), F_);
    const auto fc = f.contiguous();
    for (index_t i = 0; i < fc.size(0); ++i) {
      const auto c = y.data()[i];
      LTL_CHECK(c >= 0 && c < C_, value_error, "class_means::add: label {} is outside [0, {})", c, C_);
      const T* row = fc.data() + i * F_;
      double s = 1;
      if (l2_normalize) {
        double n2 = 0;
        for (index_t j = 0; j < F_; ++j) n2 += static_cast<double>(row[j]) * row[j];
        s = 1.0 / std::max(std::sqrt(n2), 1e-12);
      }
      // A plain loop, not an xtensor expression: s·row + acc is a multiply-add, and keeping its
      // form keeps the compiler's FMA contraction (and so every bit) as it has always been.
      double* acc = sums_.data() + c * F_;
      for (index_t j = 0; j < F_; ++j) acc[j] += s * row[j];
      ++counts_[static_cast<std::size_t>(c)];
    }
  }
  [[nodiscard]] const std::vector<index_t>& counts() const noexcept { return counts_; }
  /// Means [C, F]; a class without rows has a zero row.
  template <real_scalar T>
  [[nodiscard]] tensor<T> means() const {
    tensor<T> m(shape{C_, F_});
    const auto n = xt::adapt(counts_.data(), counts_.size(), xt::no_ownership(), std::array<std::size_t, 1>{counts_.size()});
    const auto nc = xt::view(xt::cast<double>(n), xt::all(), xt::newaxis());  // [C, 1]
    auto out = xt::adapt(m.data(), sums_.size(), xt::no_ownership(), sums_.shape());
    xt::noalias(out) = xt::where(nc > 0.0, xt::cast<T>(sums_ / nc), T(0));
    return m;
  }
  /// The per-class sums [C, F].
  [[nodiscard]] const xt::xtensor<double, 2>& sums() const noexcept { return sums_; }

 private:
  index_t C_, F_;
  xt::xtensor<double, 2> sums_;
  std::vector<index_t> counts_;
};

/// Logits [N, C] (host) of `head` (on device D) on every row of `table`, in batches, without
/// recording a graph.
template <real_scalar T, device D = cpu::device, class Head>
  requires std::invocable<Head&, const variable<T, D>&>
tensor<T> logits_of(Head&& head, const feature_table<T>& table, index_t batch_size = 1024) {
  no_grad_guard ng;
  const index_t N = table.size(), F = table.dim();
  LTL_CHECK(N > 0, value_error, "logits_of: the feature table is empty");
  tensor<T> out;
  for (index_t b0 = 0; b0 < N; b0 += batch_size) {
    const index_t b1 = std::min(N, b0 + batch_size);
    const auto rows = table.features.narrow(0, b0, b1 - b0).template to<D>();
    const auto z = ltl::detail::to_host(head(variable<T, D>(rows)).value());
    LTL_CHECK(z.dim() == 2 && z.size(0) == b1 - b0, shape_error, "logits_of: head gave {} for {} rows of dimension {}",
              z.sizes(), b1 - b0, F);
    if (!out.defined()) out = tensor<T>(shape{N, z.size(1)});
    std::copy_n(z.data(), z.numel(), out.data() + b0 * z.size(1));
  }
  return out;
}

/// Evaluates `head` (on device D) on cached features with the report of eval::evaluate_with
/// (loss, top-1, top-5, per-class and shot-group accuracy by `train_counts`, ECE, confusion).
template <real_scalar T, device D = cpu::device, class Head>
  requires std::invocable<Head&, const variable<T, D>&>
metrics::eval_report evaluate_features(Head&& head, const feature_table<T>& table,
                                       const std::vector<double>& train_counts, index_t batch_size = 1024) {
  const index_t N = table.size(), C = table.num_classes;
  LTL_CHECK(N > 0, value_error, "evaluate_features: the feature table is empty");
  metrics::classification_meter meter(C, std::min<index_t>(5, C));
  no_grad_guard ng;
  double loss_sum = 0;
  for (index_t b0 = 0; b0 < N; b0 += batch_size) {
    const index_t n = std::min(N, b0 + batch_size) - b0;
    const variable<T, D> z = head(variable<T, D>(table.features.narrow(0, b0, n).template to<D>()));
    const auto y = table.labels.narrow(0, b0, n).template to<D>();
    LTL_CHECK(z.dim() == 2 && z.size(0) == n && z.size(1) == C, shape_error,
              "evaluate_features: head gave logits {} for {} rows of {} classes", z.sizes(), n, C);
    loss_sum += static_cast<double>(cross_entropy(z, y).value().item()) * static_cast<double>(n);
    meter.add(z.value(), y);
  }
  return metrics::eval_report::from(meter, loss_sum, train_counts);
}

/// A module as a head callable (forward by reference).
template <real_scalar T, device D = cpu::device>
auto as_head(nn::unary_module<T, D>& m) {
  return [&m](const variable<T, D>& f) { return m.forward(f); };
}

}  // namespace ltl::classifier
