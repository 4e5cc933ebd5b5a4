#pragma once
/// \file
/// Evaluation of a model on a dataset: loss, top-1/top-5, per-class and shot-group accuracy,
/// ECE and the confusion matrix (metrics::eval_report), in eval mode without recording a graph.

#include "ltlearn/eval/batched_pass.hpp"
#include "ltlearn/losses/fused_loss.hpp"
#include "ltlearn/metrics/report.hpp"

#include <algorithm>
#include <utility>
#include <vector>

namespace ltl::eval {

/// What a pass measures before its report: the predictions' counts and the summed loss.
struct pass_measures {
  metrics::classification_meter meter;
  double loss_sum = 0;
};

/// Runs `logits_of(images)` (a variable [B, C, H, W] on D → logits [B, C]) over the items
/// [o.begin, o.end) of the pass_source `src` without recording a graph, and measures the
/// predictions (counts and the summed cross-entropy). evaluate_with reports them; dist::evaluate
/// first adds them up across ranks. Module modes are the caller's.
template <real_scalar T, device D = cpu::device, class Src, class Logits>
  requires pass_source<Src, T>
pass_measures measure_with(Logits&& logits_of, const Src& src, const pass_options& o = {}) {
  LTL_CHECK(src.size() > 0, value_error, "evaluate: the dataset is empty");
  const auto C = static_cast<index_t>(src.num_classes());
  pass_measures m{metrics::classification_meter(C, std::min<index_t>(5, C)), 0.0};
  no_grad_guard ng;
  for_each_batch<T, D>(
      src,
      [&](const pass_batch<T, D>& b) {
        const variable<T, D> z = logits_of(variable<T, D>(b.images));
        m.loss_sum += static_cast<double>(cross_entropy(z, b.labels).value().item()) * static_cast<double>(b.size());
        m.meter.add(z.value(), b.labels);
      },
      o);
  return m;
}

/// Runs `logits_of(images)` (a variable [B, C, H, W] on D → logits [B, C]) over the pass_source
/// `src` (which makes its own evaluation batches) without recording a graph and measures the
/// predictions; `train_counts` (per class) define the shot groups. Module modes are the
/// caller's: evaluate() wraps this in an eval_scope.
template <real_scalar T, device D = cpu::device, class Src, class Logits>
  requires pass_source<Src, T>
metrics::eval_report evaluate_with(Logits&& logits_of, const Src& src, const std::vector<double>& train_counts,
                                   const pass_options& o = {}) {
  const pass_measures m = measure_with<T, D>(std::forward<Logits>(logits_of), src, o);
  return metrics::eval_report::from(m.meter, m.loss_sum, train_counts);
}

/// evaluate_with over an in-memory dataset `ds`, normalised by `norm`.
template <real_scalar T, device D = cpu::device, data::dataset Ds, class Logits>
metrics::eval_report evaluate_with(Logits&& logits_of, const Ds& ds, const data::normalize& norm,
                                   const std::vector<double>& train_counts, index_t batch_size = 256) {
  return evaluate_with<T, D>(std::forward<Logits>(logits_of), normalized_dataset<T, Ds>(ds, norm, delivery_for<D, T>),
                             train_counts, {.batch_size = batch_size});
}

/// Evaluates `model` (in an eval_scope for the duration) on the pass_source `src`.
template <real_scalar T, device D, class Src>
  requires pass_source<Src, T>
metrics::eval_report evaluate(nn::staged_model<T, D>& model, const Src& src, const std::vector<double>& train_counts,
                              const pass_options& o = {}) {
  eval_scope scope(model);
  return evaluate_with<T, D>([&](const variable<T, D>& x) { return model.forward(x); }, src, train_counts, o);
}

/// Evaluates `model` (in an eval_scope for the duration) on `ds`.
template <real_scalar T, device D, data::dataset Ds>
metrics::eval_report evaluate(nn::staged_model<T, D>& model, const Ds& ds, const data::normalize& norm,
                              const std::vector<double>& train_counts, index_t batch_size = 256) {
  return evaluate(model, normalized_dataset<T, Ds>(ds, norm, delivery_for<D, T>), train_counts,
                  {.batch_size = batch_size});
}

}  // namespace ltl::eval
