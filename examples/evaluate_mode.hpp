#pragma once
// The --evaluate mode of fmnist_lt / cifar_lt: a checkpoint's report on the test and held-out
// splits, confusion matrices included, in <out>/eval.json — no training.

#include "common.hpp"
#include "report.hpp"

#include <ltlearn/eval/evaluate.hpp>
#include <ltlearn/train/checkpoint.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <utility>
#include <vector>

namespace example {

/// Loads `f.evaluate` into `model` and reports it on `test` (and `val`). The training set only
/// gives the shot groups.
template <class D>
int evaluate_checkpoint(const run_flags& f, ltl::nn::resnet_cifar<float, D>& model,
                               const ltl::data::image_dataset& train, const ltl::data::image_dataset* val,
                               const ltl::data::image_dataset& test, const ltl::data::normalize& norm) {
  const auto st = ltl::train::load_checkpoint(f.evaluate, static_cast<ltl::nn::module<float, D>&>(model), nullptr);
  fmt::print("evaluating {} (epoch {}, step {})\n", f.evaluate, st.epoch, st.iteration);
  std::vector<double> counts;
  for (index_t c : train.class_counts()) counts.push_back(static_cast<double>(c));
  nlohmann::json res;
  res["checkpoint"] = f.evaluate;
  res["epoch"] = st.epoch;
  res["iteration"] = st.iteration;
  for (auto [name, ds] : {std::pair{"val", val}, std::pair{"test", &test}}) {
    if (ds == nullptr) continue;
    const auto r = ltl::eval::evaluate(model, *ds, norm, counts);
    print_report(name, r, counts);
    print_confusion(r);
    res[name] = r.to_json(/*with_confusion=*/r.per_class.size() <= 100);
  }
  ltl::io::create_output_dir(f.out);
  write_json_atomically(std::filesystem::path(f.out) / "eval.json", res);
  return 0;
}

}  // namespace example
