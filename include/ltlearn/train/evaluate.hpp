#pragma once
/// \file
/// The trainer's evaluation, under the names it has always had in ltl::train: the report is
/// metrics::eval_report and the functions live in eval/ (below classifier/ and augment/, which
/// use them without depending on train/); a batch source (e.g. data::image_pipeline with an
/// evaluation transform) is evaluated by dist::evaluate's pass in one process.

#include "ltlearn/dist/evaluate.hpp"
#include "ltlearn/eval/evaluate.hpp"

#include <vector>

namespace ltl::train {

using metrics::eval_report;
using eval::evaluate;
using eval::evaluate_with;

/// Evaluates `model` (in an eval_scope for the duration) on every item of the batch source `src`.
template <real_scalar T, device D, class Src>
  requires eval::pass_source<Src, T>
metrics::eval_report evaluate(nn::staged_model<T, D>& model, const Src& src, const std::vector<double>& train_counts,
                              dist::evaluate_options o = {}) {
  return dist::evaluate(model, src, train_counts, dist::local_communicator{}, o);
}

}  // namespace ltl::train
