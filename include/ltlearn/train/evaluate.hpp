#pragma once
/// \file
/// The trainer's evaluation, under the names it has always had in ltl::train: the report is
/// metrics::eval_report and the functions live in eval/ (below classifier/ and augment/, which
/// use them without depending on train/): on an in-memory dataset with its normalisation, or on
/// a batch source (e.g. data::image_pipeline with an evaluation transform).

#include "ltlearn/eval/evaluate.hpp"

namespace ltl::train {

using metrics::eval_report;
using eval::evaluate;
using eval::evaluate_with;

}  // namespace ltl::train
