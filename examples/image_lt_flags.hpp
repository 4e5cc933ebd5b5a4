#pragma once
// Flags and data plumbing of the encoded-image trainers (imagenet_lt, inat_lt): the run's
// hyper-parameters (Kang et al.'s stage-1 recipe by default), the long-tail policy flags shared
// with fmnist_lt / cifar_lt (policy_flags, common.hpp), and the --subset selections.

#include "common.hpp"

#include <ltlearn/data/image/encoded_dataset.hpp>
#include <ltlearn/data/image/pipeline.hpp>
#include <ltlearn/optim/any_schedule.hpp>
#include <ltlearn/optim/schedule.hpp>

#include <CLI/CLI.hpp>

#include <cmath>
#include <string>
#include <vector>

namespace example {

/// Flags of an encoded-image training run. Defaults: Kang et al. (ICLR 2020) stage 1 — SGD
/// momentum 0.9, batch 512, lr 0.2 with a cosine schedule, 90 epochs; the trainers set the
/// architecture, weight decay, colour jitter and (inat_lt: CDT's steps) schedule of their dataset.
struct image_run_flags {
  std::string arch = "resnext50_32x4d", out, resume, init, export_torchvision;
  index_t epochs = 90, batch = 512, warmup = 0, resolution = 224, subset = 0, subset_images = 0,
          checkpoint_every = 500, test_every = 10, eval_batch = 256;
  double lr = 0.2, weight_decay = 5e-4;
  std::vector<index_t> lr_steps{};  // --schedule step: epochs where lr ×= lr_step_factor (empty: 80 % / 90 %)
  double lr_step_factor = 0.1;
  CLI::Option* lr_steps_flag = nullptr;
  int threads = 2, workers = 4;
  std::uint64_t seed = 0;
  bool jitter = true, skip_bad_images = false, quiet = false, overwrite = false, force_resume = false;
  policy_flags policy;

  image_run_flags() { policy.schedule = "cosine"; }

  void add_to(CLI::App& app) {
    app.add_option("--arch", arch, "resnet10|18|34|50|101|152 or resnext50_32x4d")->capture_default_str();
    app.add_option("--epochs", epochs, "training epochs (Kang et al.; CDT on iNaturalist: 90)")->capture_default_str();
    app.add_option("--batch-size", batch, "batch size (Kang et al.; CDT on iNaturalist: 512)")->capture_default_str();
    app.add_option("--lr", lr, "peak learning rate (Kang et al.; CDT on iNaturalist: 0.2)")->capture_default_str();
    app.add_option("--weight-decay", weight_decay, "weight decay (Kang et al.: 5e-4)")->capture_default_str();
    app.add_option("--warmup", warmup, "linear warm-up epochs (Kang et al.: none)")->capture_default_str();
    lr_steps_flag = app.add_option("--lr-steps", lr_steps,
                                   "with --schedule step: epochs at which the lr is multiplied by --lr-step-factor "
                                   "(empty: the policy's decays at 80% and 90% of the epochs)")
                        ->delimiter(',')->capture_default_str();
    app.add_option("--lr-step-factor", lr_step_factor, "--lr-steps: the factor of each step")->capture_default_str();
    app.add_option("--resolution", resolution,
                   "training crop side (RandomResizedCrop); evaluation resizes the short side to "
                   "round(resolution * 256 / 224) and centre-crops resolution")->capture_default_str();
    app.add_option("--subset", subset,
                   "keep only the classes with labels 0..N-1 (training and evaluation sets; 0: all)")
        ->capture_default_str();
    app.add_option("--subset-images", subset_images,
                   "then keep N evenly spaced images of the training set (0: all); evaluation sets stay whole")
        ->capture_default_str();
    app.add_option("--init", init,
                   "start from torchvision weights (safetensors, scripts/torchvision_to_safetensors.py); "
                   "the classifier is taken only when its class count matches")->check(CLI::ExistingFile);
    app.add_option("--export-torchvision", export_torchvision,
                   "after training, write the model with torchvision's names (safetensors)");
    app.add_flag("--skip-bad-images", skip_bad_images,
                 "log and count unreadable images and use the next item instead (default: stop with the file's name)");
    app.add_option("--seed", seed)->capture_default_str();
    app.add_option("--threads", threads, "OpenMP threads of the training step and of batch decoding")
        ->capture_default_str();
    app.add_option("--workers", workers, "loader threads (batches decoded ahead)")->capture_default_str();
    app.add_option("--out", out, "output directory (checkpoint, log.jsonl, results.json)")->capture_default_str();
    app.add_option("--resume", resume, "checkpoint to resume from");
    app.add_flag("--force-resume", force_resume,
                 "resume even a checkpoint of another experiment (data, seed, batch size, epochs, ...)");
    app.add_flag("--overwrite", overwrite, "replace the run already in --out (without it, such a run is refused)");
    app.add_option("--checkpoint-every", checkpoint_every, "also checkpoint every N steps (0: epoch ends only)")
        ->capture_default_str();
    app.add_option("--test-every", test_every, "evaluate every N epochs (and after the last)")->capture_default_str();
    app.add_option("--eval-batch-size", eval_batch)->capture_default_str();
    app.add_flag("--quiet", quiet, "no progress bar");
    policy.add_to(app);
  }

  /// The lr schedule: warm-up, then ×lr_step_factor at each of lr_steps (--schedule step), or
  /// the policy's (cosine, or step decays at 80 % and 90 % of the epochs).
  [[nodiscard]] ltl::optim::any_schedule make_schedule(index_t iters_per_epoch) const {
    const bool given = lr_steps_flag && lr_steps_flag->count() > 0;
    LTL_CHECK(policy.schedule == "step" || !given, value_error, "--lr-steps needs --schedule step (it is '{}')",
              policy.schedule);
    if (policy.schedule != "step" || lr_steps.empty()) return policy.make_schedule(lr, iters_per_epoch, warmup, epochs);
    const policy_flags defaults;
    LTL_CHECK(policy.decay_a == defaults.decay_a && policy.decay_b == defaults.decay_b, value_error,
              "--decay-a / --decay-b shape the 80%/90% step schedule, not the --lr-steps one (inat_lt's default): "
              "use --lr-step-factor");
    std::vector<index_t> at;
    std::string given_steps;
    for (index_t e : lr_steps) given_steps += (given_steps.empty() ? "" : ",") + std::to_string(e);
    for (std::size_t k = 0; k < lr_steps.size(); ++k) {
      LTL_CHECK(lr_steps[k] > 0 && (k == 0 || lr_steps[k] > lr_steps[k - 1]), value_error,
                "--lr-steps {}: epochs must be positive and increasing", given_steps);
      at.push_back(lr_steps[k] * iters_per_epoch);
    }
    LTL_CHECK(lr_step_factor > 0 && std::isfinite(lr_step_factor), value_error, "--lr-step-factor {} must be > 0",
              lr_step_factor);
    return ltl::optim::warmup<ltl::optim::multistep_lr>{
        .iters = warmup * iters_per_epoch, .after = {.lr = lr, .milestones = std::move(at), .gamma = lr_step_factor}};
  }

  /// Evaluation: Resize(round(resolution · 256/224)) + CenterCrop(resolution), the 224 recipe scaled.
  [[nodiscard]] index_t eval_resize() const {
    return static_cast<index_t>(std::lround(static_cast<double>(resolution) * 256.0 / 224.0));
  }
  [[nodiscard]] ltl::data::bad_image_policy bad_images() const {
    return skip_bad_images ? ltl::data::bad_image_policy::replace : ltl::data::bad_image_policy::stop;
  }
};

/// The items of `ds` whose label is below `classes`, as a dataset of that many classes.
inline ltl::data::encoded_dataset first_classes(const ltl::data::encoded_dataset& ds, index_t classes) {
  if (classes <= 0 || classes >= ds.num_classes()) return ds;
  std::vector<ltl::data::encoded_item> items;
  std::vector<std::int64_t> labels;
  for (index_t i = 0; i < ds.size(); ++i)
    if (ds.label(i) < classes) {
      items.push_back(ds.item(i));
      labels.push_back(ds.label(i));
    }
  std::vector<std::string> names;
  if (!ds.class_names().empty()) names.assign(ds.class_names().begin(), ds.class_names().begin() + classes);
  return {ds.name(), ds.root(), std::move(items), std::move(labels), classes, std::move(names)};
}

/// `n` evenly spaced items of `ds` (all of them when n ≤ 0 or n ≥ its size): class proportions stay.
inline ltl::data::encoded_dataset evenly_spaced(const ltl::data::encoded_dataset& ds, index_t n) {
  if (n <= 0 || n >= ds.size()) return ds;
  std::vector<index_t> pick(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) pick[static_cast<std::size_t>(i)] = i * ds.size() / n;
  return ds.subset(pick);
}

/// A named evaluation set ("val", "test").
struct eval_set {
  std::string name;
  ltl::data::encoded_dataset data;
};

}  // namespace example
