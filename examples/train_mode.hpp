#pragma once
// The training mode of fmnist_lt / cifar_lt: a CIFAR ResNet trained on the long-tailed split with
// the policies the flags choose, evaluated on the test split (and the held-out one) every
// --test-every epochs; the final report is printed and written to <out>/results.json.

#include "common.hpp"
#include "distributed.hpp"
#include "report.hpp"

#include <ltlearn/eval/analysis.hpp>
#include <ltlearn/train/trainer.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

namespace example {

/// Trains `model` on `train` (resuming from --resume) and reports the last epoch.
template <class D>
int train_long_tailed(const run_flags& f, ltl::nn::resnet_cifar<float, D>& model,
                             const ltl::data::image_dataset& train, const ltl::data::image_dataset* val,
                             const ltl::data::image_dataset& test, const ltl::data::normalize& norm,
                             const std::string& args_text) {
  namespace ld = ltl::data;
  const auto C = static_cast<index_t>(train.num_classes());
  const ld::standard_augment aug{.crop = {.pad = 4}, .flip = {.p = 0.5}, .norm = norm};
  const auto sampler = f.policy.make_sampler(train.labels(), C, f.epochs, f.seed);
  const index_t iters = (static_cast<index_t>(sampler.epoch_indices(0).size()) + f.batch - 1) / f.batch;
  ltl::train::trainer tr(model, train,
                         {.epochs = f.epochs, .batch_size = f.batch, .seed = f.seed, .out_dir = f.out,
                          .checkpoint_every_steps = f.checkpoint_every, .loader_workers = f.workers,
                          .progress = !f.quiet, .test_every = f.test_every, .comm = distributed::trainer_comm<D>(),
                          .reducer = distributed::reducer_options(), .overwrite = f.overwrite,
                          .run_config = {{"profile", f.profile}, {"rho", f.rho}, {"held_out", f.held_out},
                                         {"train_limit", f.train_limit}, {"lr", f.lr}, {"warmup", f.warmup},
                                         {"schedule", f.policy.schedule}, {"depth", f.depth}}},
                         sampler, f.policy.make_loss(), f.policy.template make_mixing<D>(),
                         f.policy.make_schedule(f.lr, iters, f.warmup, f.epochs),
                         aug, norm);
  tr.set_eval_sets(val, &test);
  if (!f.resume.empty()) tr.resume(f.resume, {.force = f.force_resume});
  if (f.analysis_every > 0 && distributed::root())
    tr.on_epoch_end = ltl::eval::analysis_recorder<float, ld::image_dataset, D>(
        model, train, test, norm, std::filesystem::path(f.out) / "analysis.jsonl", {.point = f.policy.analysis_point()},
        f.analysis_every);
  auto summaries = tr.fit();
  if (summaries.empty() && tr.state().epoch == f.epochs && tr.state().progress == ltl::train::epoch_progress{}) {
    // Resumed from the final checkpoint (a run killed before it wrote results.json): the report
    // is a function of the final weights, evaluated as the trainer evaluates.
    const index_t batch = ltl::train::trainer_options{}.eval_batch_size;
    ltl::train::epoch_summary s;
    s.epoch = f.epochs - 1;
    const auto& comm = distributed::comm();
    if (val) s.val = ltl::dist::evaluate(model, *val, norm, tr.class_counts(), comm, batch);
    s.test = ltl::dist::evaluate(model, test, norm, tr.class_counts(), comm, batch);
    summaries.push_back(std::move(s));
  }
  if (summaries.empty() || !summaries.back().test || !distributed::root()) return 0;
  const auto& last = summaries.back();
  print_report("test", *last.test, tr.class_counts());
  double secs = 0;
  for (auto& s : summaries) secs += s.seconds;
  const double per_epoch = secs / static_cast<double>(summaries.size());
  fmt::print("  mean training time per epoch: {:.1f} s ({} threads)\n", per_epoch, f.threads);
  nlohmann::json res;
  res["test"] = last.test->to_json(/*with_confusion=*/C <= 100);
  if (last.val) res["val"] = last.val->to_json();
  res["seconds_per_epoch"] = per_epoch;
  res["threads"] = f.threads;
  res["args"] = args_text;
  write_json_atomically(std::filesystem::path(f.out) / "results.json", res);
  return 0;
}

}  // namespace example
