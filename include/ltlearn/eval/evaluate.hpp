#pragma once
/// \file
/// Evaluation of a model on a dataset: loss, top-1/top-5, per-class and shot-group accuracy,
/// ECE and the confusion matrix (metrics::eval_report), in eval mode without recording a graph.

#include "ltlearn/eval/batched_pass.hpp"
#include "ltlearn/losses/fused_loss.hpp"
#include "ltlearn/metrics/report.hpp"

#include <algorithm>
#include <vector>

namespace ltl::eval {

/// Runs `logits_of(images)` (a variable [B, C, H, W] on D → logits [B, C]) over `ds` in batches
/// without recording a graph and measures the predictions; `train_counts` (per class) define the
/// shot groups. Module modes are the caller's: evaluate() wraps this in an eval_scope.
template <real_scalar T, device D = cpu::device, data::dataset Ds, class Logits>
metrics::eval_report evaluate_with(Logits&& logits_of, const Ds& ds, const data::normalize& norm,
                                   const std::vector<double>& train_counts, index_t batch_size = 256) {
  LTL_CHECK(ds.size() > 0, value_error, "evaluate: the dataset is empty");
  const auto C = static_cast<index_t>(ds.num_classes());
  metrics::classification_meter meter(C, std::min<index_t>(5, C));
  no_grad_guard ng;
  double loss_sum = 0;
  for_each_batch<T, D>(
      ds, norm,
      [&](const pass_batch<T, D>& b) {
        const variable<T, D> z = logits_of(variable<T, D>(b.images));
        loss_sum += static_cast<double>(cross_entropy(z, b.labels).value().item()) * static_cast<double>(b.size());
        meter.add(z.value(), b.labels);
      },
      {.batch_size = batch_size});
  return metrics::eval_report::from(meter, loss_sum, train_counts);
}

/// Evaluates `model` (in an eval_scope for the duration) on `ds`.
template <real_scalar T, device D, data::dataset Ds>
metrics::eval_report evaluate(nn::staged_model<T, D>& model, const Ds& ds, const data::normalize& norm,
                              const std::vector<double>& train_counts, index_t batch_size = 256) {
  eval_scope scope(model);
  return evaluate_with<T, D>([&](const variable<T, D>& x) { return model.forward(x); }, ds, norm, train_counts,
                             batch_size);
}

}  // namespace ltl::eval
