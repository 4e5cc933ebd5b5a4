#pragma once
// Flags and data plumbing of the encoded-image trainers (imagenet_lt, inat_lt): the run's
// hyper-parameters (Kang et al.'s stage-1 recipe by default), the long-tail policy flags shared
// with fmnist_lt / cifar_lt (policy_flags, common.hpp), the --augment transforms (with CDT's
// training-set mean, saved in <out>/train_mean.json) and the --subset selections.

#include "common.hpp"
#include "report.hpp"

#include <ltlearn/data/image/channel_mean.hpp>
#include <ltlearn/data/image/encoded_dataset.hpp>
#include <ltlearn/data/image/pipeline.hpp>
#include <ltlearn/optim/any_schedule.hpp>
#include <ltlearn/optim/schedule.hpp>

#include <CLI/CLI.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace example {

/// Flags of an encoded-image training run. Defaults: Kang et al. (ICLR 2020) stage 1 — SGD
/// momentum 0.9, batch 512, lr 0.2 with a cosine schedule, 90 epochs; the trainers set the
/// architecture, weight decay, colour jitter and (inat_lt: CDT's steps) schedule of their dataset.
struct image_run_flags {
  std::string arch = "resnext50_32x4d", out, resume, init, export_torchvision, evaluate;
  std::string device = "cpu";  // --device (device.hpp); not part of the run's fingerprint
  std::string augment = "rrc";  // rrc: Kang et al.'s RandomResizedCrop | cdt: CDT's iNaturalist resize + crop
  index_t epochs = 90, batch = 512, warmup = 0, resolution = 224, subset = 0, subset_images = 0,
          checkpoint_every = 500, test_every = 10, eval_batch = 256, mean_images = 10000;
  double lr = 0.2, weight_decay = 5e-4;
  std::vector<index_t> lr_steps{};  // --schedule step: epochs where lr ×= lr_step_factor (empty: 80 % / 90 %)
  double lr_step_factor = 0.1;
  CLI::Option* lr_steps_flag = nullptr;
  int threads = 2, workers = 4;
  std::uint64_t seed = 0;
  bool jitter = true, skip_bad_images = false, quiet = false, overwrite = false, force_resume = false;
  policy_flags policy;
  fsa_flags fsa;  // phase II of feature space augmentation on a checkpoint

  image_run_flags() {
    policy.schedule = "cosine";
    fsa.point = "stage4";  // the ImageNet ResNets' last feature map
  }

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
                   "training crop side; evaluation resizes to S = round(resolution * 256 / 224) (the short side; "
                   "--augment cdt: S x S) and centre-crops resolution")->capture_default_str();
    app.add_option("--augment", augment,
                   "rrc: RandomResizedCrop + flip (+ ColorJitter on ImageNet-LT / Places-LT), dataset mean/std "
                   "(Kang et al., SPEC 12) | cdt: resize to S x S, random crop resolution, flip, training-set RGB "
                   "mean subtracted (CDT paper, iNaturalist; SPEC 4)")
        ->check(one_of({"rrc", "cdt"}))->capture_default_str();
    app.add_option("--mean-images", mean_images,
                   "--augment cdt: the training-set mean is taken over N evenly spaced training images after the "
                   "S x S resize (0: all); saved in <out>/train_mean.json and reused from there")
        ->check(CLI::NonNegativeNumber)->capture_default_str();
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
    app.add_option("--evaluate", evaluate,
                   "no training: report this checkpoint on the val / test sets (evaluation transform; sharded across "
                   "the ranks under mpirun) in <out>/eval.json")
        ->check(CLI::ExistingFile)
        ->excludes("--resume")
        ->excludes("--init")
        ->excludes("--export-torchvision");
    app.add_flag("--force-resume", force_resume,
                 "resume even a checkpoint of another experiment (data, seed, batch size, epochs, ...)");
    app.add_flag("--overwrite", overwrite, "replace the run already in --out (without it, such a run is refused)");
    app.add_option("--checkpoint-every", checkpoint_every, "also checkpoint every N steps (0: epoch ends only)")
        ->capture_default_str();
    app.add_option("--test-every", test_every, "evaluate every N epochs (and after the last)")->capture_default_str();
    app.add_option("--eval-batch-size", eval_batch)->capture_default_str();
    app.add_flag("--quiet", quiet, "no progress bar");
    add_device_option(app, device);
    policy.add_to(app);
    fsa.add_to(app);
    app.get_option("--fsa-phase2")
        ->check(CLI::ExistingFile)
        ->excludes("--evaluate")
        ->excludes("--resume")
        ->excludes("--init")
        ->excludes("--export-torchvision");
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

  /// The training and evaluation transforms of --augment, normalised by `mean` / `stddev` (cdt:
  /// the training-set mean of image_normalisation, stddev 1).
  [[nodiscard]] std::pair<ltl::data::sample_transform, ltl::data::sample_transform> transforms(
      const std::vector<double>& mean, const std::vector<double>& stddev) const {
    namespace ld = ltl::data;
    if (augment != "cdt")
      return {ld::imagenet_train_transform(resolution, jitter, mean, stddev),
              ld::imagenet_eval_transform(eval_resize(), resolution, mean, stddev)};
    for (double s : stddev)
      LTL_CHECK(s == 1.0, value_error, "--augment cdt subtracts the training-set mean only (stddev 1, got {})", s);
    return {ld::cdt_train_transform(eval_resize(), resolution, mean), ld::cdt_eval_transform(eval_resize(), resolution, mean)};
  }
};

/// What a run's images are normalised with, and its record for results.json (null for rrc).
struct image_normalisation {
  std::vector<double> mean, stddev;
  nlohmann::json record;
  /// `results` with the record added as "train_mean" (cdt only).
  [[nodiscard]] nlohmann::json recorded_in(nlohmann::json results) const {
    if (!record.is_null()) results["train_mean"] = record;
    return results;
  }
};

/// --augment rrc: the dataset's `mean` / `stddev`. --augment cdt: the training-set RGB mean after
/// the S × S resize (data::rgb_mean over --mean-images evenly spaced images), stddev 1. It is
/// computed once and written to <out>/train_mean.json; a later run or resume with that --out reads
/// it back (the same numbers, bit for bit) after checking that it was taken on the same training
/// set, side S and --mean-images — a mismatch stops the run rather than mixing two means.
inline image_normalisation normalisation_of(const image_run_flags& f, const ltl::data::encoded_dataset& train,
                                            const std::vector<double>& mean, const std::vector<double>& stddev) {
  namespace fs = std::filesystem;
  if (f.augment != "cdt") return {mean, stddev, nullptr};
  const fs::path file = fs::path(f.out) / "train_mean.json";
  const index_t side = f.eval_resize();
  nlohmann::json rec;
  if (fs::exists(file)) {
    try {
      std::ifstream in(file);
      rec = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw ltl::io_error(fmt::format("{}: unreadable ({}); delete it to compute the mean again", file.string(), e.what()));
    }
    const auto field = [&](const char* k) { return rec.contains(k) ? rec[k].dump() : std::string("none"); };
    LTL_CHECK(rec.contains("mean") && rec["mean"].is_array() && rec["mean"].size() == 3, io_error,
              "{}: no 3-value \"mean\"", file.string());
    LTL_CHECK(field("train_hash") == nlohmann::json(train.hash_hex()).dump() && field("resize") == std::to_string(side) &&
                  field("max_images") == std::to_string(f.mean_images),
              value_error,
              "{} was taken on another training set, side or --mean-images (train_hash {}, resize {}, max_images {}; "
              "this run: {}, {}, {}): use the run's own flags, or another --out",
              file.string(), field("train_hash"), field("resize"), field("max_images"), train.hash_hex(), side,
              f.mean_images);
    fmt::print("training-set mean {} read from {}\n", rec["mean"].dump(), file.string());
  } else {
    const auto m = ltl::data::rgb_mean(
        train, {.resize = side, .max_images = f.mean_images, .workers = f.workers, .on_bad_image = f.bad_images()});
    rec = {{"mean", m.mean},
           {"images", m.sample.size()},
           {"of", train.size()},
           {"sample", "items floor(k * of / images), k < images"},
           {"resize", side},
           {"max_images", f.mean_images},
           {"scale", "RGB values / 255, as the network's input"},
           {"train_hash", train.hash_hex()}};
    fs::create_directories(f.out);
    write_json_atomically(file, rec);
    fmt::print("training-set mean {} over {} of {} images written to {}\n", rec["mean"].dump(), m.sample.size(),
               train.size(), file.string());
  }
  rec["file"] = "train_mean.json";
  return {rec["mean"].get<std::vector<double>>(), {1.0, 1.0, 1.0}, rec};
}

/// inat_lt's CDT delay (SPEC 4: gamma = 0 for the first 45 of 90 epochs): --gamma-start defaults
/// to `epoch` there. Called after parsing: without --loss cdt (and no --gamma-start given) it is
/// reset to 0 — the value every other loss runs with — also in the recorded arguments; with
/// --loss cdt it must be before --epochs, or the run would be plain cross-entropy.
inline void settle_cdt_start(CLI::App& app, image_run_flags& f) {
  auto* opt = app.get_option("--gamma-start");
  if (f.policy.loss != "cdt" && opt->count() == 0) {
    f.policy.gamma_start = 0;
    opt->default_str("0");
  }
  LTL_CHECK(f.policy.loss != "cdt" || f.policy.gamma_start < f.epochs, value_error,
            "--gamma-start {} is not before --epochs {}: CDT's temperatures would never apply (CDT on iNaturalist: "
            "45 of 90 epochs)", f.policy.gamma_start, f.epochs);
}

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
