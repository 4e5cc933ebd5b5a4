#pragma once
// The training run of imagenet_lt / inat_lt: an ImageNet ResNet (optionally initialised from
// torchvision weights) trained by train::trainer on an encoded long-tailed set through
// data::image_pipeline (RandomResizedCrop + flip [+ ColorJitter], per-sample random streams),
// with the policies the flags choose, evaluated with Resize + CenterCrop.
//
// Everything else is the trainer's, as for fmnist_lt: checkpoints with the run's fingerprint and
// bit-exact resume, the run directory's checks (--overwrite), log.jsonl trimmed on resume, no
// checkpoint after a non-finite loss, and data parallelism under mpirun — every rank decodes its
// slice of each global batch, each image augmented as a single process would (train/
// training_source.hpp), and evaluation is sharded across the ranks. --fsa-phase2 runs phase II of
// feature space augmentation on a checkpoint instead (fsa_phase2.hpp), on rank 0.

#include "distributed.hpp"
#include "fsa_phase2.hpp"
#include "image_lt_flags.hpp"
#include "report.hpp"

#include <ltlearn/metrics/report.hpp>
#include <ltlearn/nn/models/torchvision.hpp>
#include <ltlearn/train/trainer.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace example {

namespace ld = ltl::data;

/// The union of every rank's `files` (each rank knows only the bad images it decoded), sorted.
inline std::vector<std::string> union_over_ranks(ltl::dist::any_communicator comm, const std::vector<std::string>& files) {
  std::set<std::string> all(files.begin(), files.end());
  std::string mine;
  for (const auto& f : files) mine += f + '\n';
  for (int r = 0; r < comm.size() && !comm.single(); ++r) {
    std::int64_t n = r == comm.rank() ? static_cast<std::int64_t>(mine.size()) : 0;
    comm.all_reduce_sum(std::span<std::int64_t>(&n, 1));
    std::string text = r == comm.rank() ? mine : std::string(static_cast<std::size_t>(n), '\0');
    comm.broadcast(std::as_writable_bytes(std::span<char>(text.data(), text.size())), r);
    for (std::size_t at = 0, nl; (nl = text.find('\n', at)) != std::string::npos; at = nl + 1)
      all.insert(text.substr(at, nl - at));
  }
  return {all.begin(), all.end()};
}

/// Prints `r` (the whole report up to 100 classes, one line with the shot groups beyond) and
/// stores it as res[name].
inline void report_set(const char* name, const ltl::metrics::eval_report& r, const std::vector<double>& counts,
                       nlohmann::json& res) {
  const bool small = r.per_class.size() <= 100;
  if (small) print_report(name, r, counts);
  else fmt::print("\n{}: top-1 {:.2f}%  top-5 {:.2f}%  many {}  medium {}  few {}\n", name, 100 * r.top1, 100 * r.top5,
                  ltl::metrics::format_accuracy(r.shots.many), ltl::metrics::format_accuracy(r.shots.medium),
                  ltl::metrics::format_accuracy(r.shots.few));
  res[name] = r.to_json(/*with_confusion=*/small);
}

/// train_image_lt with the model, the optimiser and every step on device D (the images are
/// decoded and augmented on the host and uploaded batch by batch, overlapping the previous step).
template <class D>
int train_image_lt_on(D, const image_run_flags& f, const ld::encoded_dataset& train, const std::vector<eval_set>& evals,
                      const std::vector<double>& mean, const std::vector<double>& stddev, const std::string& args_text,
                      const nlohmann::json& extra_results) {
  const index_t C = train.num_classes();
  // --fsa-phase2 runs on rank 0 alone (under mpirun the other ranks stop here, before the
  // communicator every rank would have to join).
  if (f.fsa.enabled() && !distributed::root()) return 0;
  // Under mpirun on GPUs: this rank's GPU is made current before the model is built (and NCCL
  // sums the gradients where the build has it).
  const ltl::dist::any_communicator comm = f.fsa.enabled() ? ltl::dist::any_communicator{} : distributed::trainer_comm<D>();
  auto mo = ltl::nn::torchvision_resnet_options(f.arch, C, f.seed);
  mo.normed_classifier = f.policy.loss == "ldam";
  ltl::nn::resnet<float, D> model(mo);
  if (!f.init.empty()) {
    const auto rep = ltl::nn::load_torchvision(f.init, model, {.classifier = ltl::nn::classifier_import::if_shape_matches});
    fmt::print("initialised from {}: {} entries{}\n", f.init, rep.loaded,
               rep.classifier_loaded ? "" : " (classifier kept: the file's has another class count)");
  }
  const auto log_bad = [](const std::string& line) { fmt::print(stderr, "{}\n", line); };
  const auto [train_transform, eval_transform] = f.transforms(mean, stddev);
  const ld::image_pipeline<float> train_src(
      train, {.transform = train_transform, .on_bad_image = f.bad_images(), .log = log_bad});
  std::deque<ld::image_pipeline<float>> eval_srcs;  // a pipeline holds a mutex: not movable
  const ld::image_pipeline<float>*val = nullptr, *test = nullptr;
  for (auto& e : evals) {
    LTL_CHECK(e.name == "val" || e.name == "test", value_error, "evaluation set '{}': only val and test exist", e.name);
    eval_srcs.emplace_back(e.data, ld::pipeline_options{.transform = eval_transform, .on_bad_image = f.bad_images(),
                                                        .log = log_bad});
    (e.name == "val" ? val : test) = &eval_srcs.back();
  }
  std::vector<double> counts;  // the training set's, for the shot groups
  for (index_t c : train.class_counts()) counts.push_back(static_cast<double>(c));
  // The distinct bad files of every rank: the evaluation sets' (and the training set's, when it ran).
  const auto bad_over_ranks = [&](bool with_train) {
    std::vector<std::string> bad = with_train ? train_src.bad_images() : std::vector<std::string>{};
    for (auto& e : eval_srcs)
      for (auto& b : e.bad_images()) bad.push_back(b);
    return union_over_ranks(distributed::comm(), bad);
  };
  // What results.json and eval.json both record besides the reports.
  const auto describe_run = [&](nlohmann::json& into, const std::vector<std::string>& bad) {
    into["bad_images"] = {{"count", bad.size()}, {"files", bad}};
    into["arch"] = f.arch;
    into["classes"] = C;
    into["args"] = args_text;
  };
  nlohmann::json res = extra_results.is_object() ? extra_results : nlohmann::json::object();

  if (f.fsa.enabled()) {
    // --fsa-phase2: the bank from the training images through the evaluation transform (no
    // augmentation, as for the in-memory trainers); held-out selection on val when a test set is
    // given too, else val is the set reported (iNaturalist's) and a one-configuration grid runs.
    LTL_CHECK(test || val, value_error, "--fsa-phase2 needs an evaluation set (a test or val list)");
    const ld::image_pipeline<float> bank_src(
        train, {.transform = eval_transform, .on_bad_image = f.bad_images(), .log = log_bad});
    const auto* report_on = test ? test : val;
    const auto* held_out = test ? val : nullptr;
    fmt::print("phase II: reported on {}, {}\n", test ? "test" : "val",
               held_out ? "configuration chosen on val" : "no held-out split (a grid must have one configuration)");
    return run_fsa_phase2_on(f.fsa,
                             {.batch = f.batch, .seed = f.seed,
                              .logit_scale = f.policy.loss == "ldam" ? f.policy.scale : 1.0, .out = f.out,
                              .workers = f.workers},
                             model, bank_src, train.class_counts(), held_out, *report_on, args_text);
  }

  if (!f.evaluate.empty()) {
    // --evaluate: the checkpoint's report on the val / test sets (evaluation transform, sharded
    // across the ranks under mpirun), written to <out>/eval.json; no training.
    const auto st = ltl::train::load_checkpoint(f.evaluate, static_cast<ltl::nn::module<float, D>&>(model), nullptr);
    fmt::print("evaluating {} (epoch {}, step {})\n", f.evaluate, st.epoch, st.iteration);
    res["checkpoint"] = f.evaluate;
    res["epoch"] = st.epoch;
    res["iteration"] = st.iteration;
    for (int k = 0; k < 2; ++k) {
      const ld::image_pipeline<float>* src = k == 0 ? val : test;
      if (src == nullptr) continue;
      const auto r = ltl::dist::evaluate(model, *src, counts, comm, {.batch_size = f.eval_batch, .workers = f.workers});
      if (distributed::root()) report_set(k == 0 ? "val" : "test", r, counts, res);
    }
    const auto bad = bad_over_ranks(/*with_train=*/false);
    if (!distributed::root()) return 0;
    describe_run(res, bad);
    ltl::io::create_output_dir(f.out);
    write_json_atomically(std::filesystem::path(f.out) / "eval.json", res);
    fmt::print("wrote {}\n", (std::filesystem::path(f.out) / "eval.json").string());
    return 0;
  }

  auto sampler = f.policy.make_sampler(train.labels(), C, f.epochs, f.seed);
  const index_t iters = (static_cast<index_t>(sampler.epoch_indices(0).size()) + f.batch - 1) / f.batch;
  ltl::train::trainer tr(model, train_src,
                         {.epochs = f.epochs, .batch_size = f.batch, .seed = f.seed,
                          .sgd = {.momentum = 0.9, .weight_decay = f.weight_decay}, .out_dir = f.out,
                          .checkpoint_every_steps = f.checkpoint_every, .loader_workers = f.workers,
                          .progress = !f.quiet, .eval_batch_size = f.eval_batch, .test_every = f.test_every,
                          .val_every = f.test_every, .comm = comm, .reducer = distributed::reducer_options(),
                          .overwrite = f.overwrite,
                          .run_config = {{"arch", f.arch}, {"lr", f.lr}, {"warmup", f.warmup},
                                         {"schedule", f.policy.schedule}, {"resolution", f.resolution},
                                         {"jitter", f.jitter}, {"lr_steps", f.lr_steps},
                                         {"lr_step_factor", f.lr_step_factor}, {"augment", f.augment},
                                         {"mean", mean}}},
                         sampler, f.policy.make_loss(), f.policy.template make_mixing<D>(),
                         f.make_schedule(iters));
  tr.set_eval_sets(val, test);
  if (!f.resume.empty()) tr.resume(f.resume, {.force = f.force_resume});
  auto summaries = tr.fit();
  const std::size_t trained = summaries.size();
  if (summaries.empty() && tr.state().epoch == f.epochs && tr.state().progress == ltl::train::epoch_progress{}) {
    // Resumed from the final checkpoint (a run killed before it wrote results.json): the report
    // is a function of the final weights, evaluated as the trainer evaluates.
    ltl::train::epoch_summary s;
    s.epoch = f.epochs - 1;
    if (val) s.val = tr.evaluate(*val);
    if (test) s.test = tr.evaluate(*test);
    summaries.push_back(std::move(s));
  }
  const auto bad = bad_over_ranks(/*with_train=*/true);
  if (!distributed::root()) return 0;

  double seconds = 0;
  for (std::size_t e = 0; e < trained; ++e) seconds += summaries[e].seconds;
  for (int k = 0; k < 2 && !summaries.empty(); ++k) {
    const std::optional<ltl::metrics::eval_report>& r = k == 0 ? summaries.back().val : summaries.back().test;
    if (r) report_set(k == 0 ? "val" : "test", *r, counts, res);
  }
  if (f.skip_bad_images) fmt::print("bad images skipped: {}\n", bad.size());
  describe_run(res, bad);
  res["seconds_per_epoch"] = trained ? seconds / double(trained) : 0.0;
  res["threads"] = f.threads;
  write_json_atomically(std::filesystem::path(f.out) / "results.json", res);
  if (!f.export_torchvision.empty()) {
    ltl::nn::save_torchvision(f.export_torchvision, model);
    fmt::print("model written with torchvision's names to {}\n", f.export_torchvision);
  }
  return 0;
}

/// Trains on `train` on --device, evaluates on `evals` ("val" and/or "test"), writes
/// <out>/results.json (plus `extra_results`) from rank 0. The device is not part of the run's
/// fingerprint: a run checkpointed on a GPU resumes on the CPU and vice versa.
inline int train_image_lt(const image_run_flags& f, const ld::encoded_dataset& train, const std::vector<eval_set>& evals,
                          const std::vector<double>& mean, const std::vector<double>& stddev,
                          const std::string& args_text, const nlohmann::json& extra_results = {}) {
  fmt::print("train {}\n", train.summary());
  for (auto& e : evals) fmt::print("{:5} {}\n", e.name, e.data.summary());
  return with_device(f.device, [&](auto dev) {
    return train_image_lt_on(dev, f, train, evals, mean, stddev, args_text, extra_results);
  });
}

}  // namespace example
