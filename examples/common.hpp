#pragma once
// Shared command-line plumbing of the example programs: flags → policies, the long-tailed split
// and the model a run's flags define. Composition only: every method lives in the library. The
// modes of fmnist_lt / cifar_lt (train, --evaluate, --fsa-phase2) are one header each
// (train_mode.hpp, evaluate_mode.hpp, fsa_phase2.hpp); modes.hpp picks one.

#include <ltlearn/losses/any_policy.hpp>
#include <ltlearn/mixing/any_mixing.hpp>
#include <ltlearn/optim/any_schedule.hpp>
#include <ltlearn/sampling/any_sampler.hpp>
#include <ltlearn/data/long_tail.hpp>
#include <ltlearn/data/transforms.hpp>
#include <ltlearn/nn/models/resnet_cifar.hpp>

#include "fsa_flags.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <string>
#include <vector>

namespace example {

using ltl::index_t;

/// Long-tail policy flags shared by the example trainers.
struct policy_flags {
  std::string sampler = "instance";  // instance | class | class-aware | sqrt | progressive | drs
  std::string loss = "ce";           // ce | cdt | ldam | la | focal | inv-freq | cb
  double gamma = 0.1;                // CDT γ, focal γ or inverse-frequency exponent
  index_t gamma_start = 0;           // CDT: γ = 0 before this epoch
  double tau = 1.0;                  // logit adjustment τ
  double cb_beta = 0.9999;           // class-balanced β
  double margin = 0.5, scale = 30;   // LDAM
  index_t drw_epoch = -1;            // deferred re-weighting from this epoch (−1: off)
  index_t drs_epoch = -1;            // deferred re-sampling switch epoch (−1: 80 % of the epochs)
  std::string mix = "none";          // none | mfw | mixup | manifold | remix
  std::string mix_point = "stage1";
  index_t mix_until = -1;            // mixing only in epochs before this one (−1: to the end)
  double alpha = 1.0, mfw_beta = 2.0;
  std::string schedule = "step";  // step | cosine
  double decay_a = 0.1, decay_b = 0.01;  // step schedule: factors from 80 % and 90 % of the epochs

  void add_to(CLI::App& app) {
    app.add_option("--sampler", sampler, "instance|class|class-aware|sqrt|progressive|drs")->capture_default_str();
    app.add_option("--loss", loss, "ce|cdt|ldam|la|focal|inv-freq|cb")->capture_default_str();
    app.add_option("--gamma", gamma, "CDT gamma, focal gamma or inverse-frequency exponent")->capture_default_str();
    app.add_option("--gamma-start", gamma_start, "CDT: gamma = 0 before this epoch")->capture_default_str();
    app.add_option("--tau", tau, "logit-adjustment tau")->capture_default_str();
    app.add_option("--cb-beta", cb_beta, "class-balanced beta")->capture_default_str();
    app.add_option("--margin", margin, "LDAM maximum margin")->capture_default_str();
    app.add_option("--scale", scale, "LDAM logit scale")->capture_default_str();
    app.add_option("--drw-epoch", drw_epoch, "deferred re-weighting (CB, beta 0.9999) from this epoch")->capture_default_str();
    app.add_option("--drs-epoch", drs_epoch, "deferred re-sampling switch epoch (-1: 80% of the epochs)")->capture_default_str();
    app.add_option("--mix", mix, "none|mfw|mixup|manifold|remix")->capture_default_str();
    app.add_option("--mix-point", mix_point, "model point to mix at (stem, stage1, ...)")->capture_default_str();
    app.add_option("--mix-until", mix_until, "mix only in the epochs before this one (-1: all)")->capture_default_str();
    app.add_option("--alpha", alpha, "Beta(alpha, alpha) of the mixing policies")->capture_default_str();
    app.add_option("--beta", mfw_beta, "MFW softness beta (2 long-tailed, 0.01 step)")->capture_default_str();
    app.add_option("--schedule", schedule, "step (warm-up, then decays at 80% and 90% of the epochs) | cosine")->capture_default_str();
    app.add_option("--decay-a", decay_a, "step schedule: lr factor from 80% of the epochs")->capture_default_str();
    app.add_option("--decay-b", decay_b, "step schedule: lr factor from 90% of the epochs")->capture_default_str();
  }

  ltl::sampling::any_sampler make_sampler(std::span<const std::int64_t> y, index_t C, index_t epochs,
                                          std::uint64_t seed) const {
    namespace s = ltl::sampling;
    if (sampler == "instance") return s::instance_balanced(y, C, seed);
    if (sampler == "class") return s::power_sampler(y, C, 0.0, seed);
    if (sampler == "class-aware") return s::class_aware(y, C, seed);
    if (sampler == "sqrt") return s::power_sampler(y, C, 0.5, seed);
    if (sampler == "progressive") return s::progressive(y, C, epochs, seed);
    if (sampler == "drs")
      return s::deferred(s::instance_balanced(y, C, seed), s::power_sampler(y, C, 0.0, seed),
                         drs_epoch >= 0 ? drs_epoch : epochs * 4 / 5);
    throw ltl::value_error("unknown --sampler '" + sampler + "'");
  }

  ltl::losses::any_policy make_loss() const {
    namespace l = ltl::losses;
    auto with_drw = [&](auto base) -> l::any_policy {
      if (drw_epoch < 0) return base;
      return l::compose(base, l::drw(drw_epoch, cb_beta));
    };
    if (loss == "ce") return with_drw(l::cross_entropy{});
    if (loss == "cdt") return with_drw(l::cdt{.gamma = gamma, .start_epoch = gamma_start});
    if (loss == "ldam") return with_drw(l::ldam{.max_margin = margin, .scale = scale});
    if (loss == "la") return with_drw(l::logit_adjust{.tau = tau});
    if (loss == "focal") return with_drw(l::focal{.gamma = gamma});
    if (loss == "inv-freq") return l::inverse_frequency_weights{.gamma = gamma};
    if (loss == "cb") return l::class_balanced_weights{.beta = cb_beta};
    if (loss == "cb-focal") return l::compose(l::class_balanced_weights{.beta = cb_beta}, l::focal{.gamma = gamma});
    throw ltl::value_error("unknown --loss '" + loss + "'");
  }

  ltl::mixing::any_mixing<float> make_mixing() const {
    namespace m = ltl::mixing;
    if (mix == "none") return m::none{};
    if (mix == "mfw") return m::mfw{.alpha = alpha, .beta = mfw_beta, .at = mix_point, .stop_epoch = mix_until};
    if (mix == "mixup") return m::mixup{.alpha = alpha, .at = "input", .stop_epoch = mix_until};
    if (mix == "manifold") return m::mixup{.alpha = alpha, .at = mix_point, .stop_epoch = mix_until};
    if (mix == "remix")
      return m::remix{.alpha = alpha, .at = mix_point == "stage1" ? "input" : mix_point, .stop_epoch = mix_until};
    throw ltl::value_error("unknown --mix '" + mix + "'");
  }

  ltl::optim::any_schedule make_schedule(double lr, index_t iters_per_epoch, index_t warmup_epochs, index_t epochs) const {
    if (schedule == "step")
      return ltl::optim::make_step_recipe(lr, iters_per_epoch, warmup_epochs, epochs * 4 / 5, epochs * 9 / 10, decay_a,
                                          decay_b);
    if (schedule == "cosine") return ltl::optim::make_cosine_recipe(lr, iters_per_epoch, warmup_epochs, epochs);
    throw ltl::value_error("unknown --schedule '" + schedule + "'");
  }
};

/// Flags of a long-tailed training run shared by the example trainers.
struct run_flags {
  std::string profile = "exp", out, resume, evaluate;
  double rho = 100, lr = 0.1;
  index_t epochs = 20, batch = 128, held_out = 0, train_limit = 0, warmup = 1, checkpoint_every = 50,
          analysis_every = 0, test_every = 1;
  int depth = 32, threads = 2, workers = 1;
  std::uint64_t seed = 0;
  bool quiet = false, overwrite = false, force_resume = false;
  policy_flags policy;
  fsa_flags fsa;  // phase II of feature space augmentation on a checkpoint

  void add_to(CLI::App& app) {
    app.add_option("--profile", profile, "exp | step")->capture_default_str();
    app.add_option("--rho", rho, "imbalance ratio N_max / N_min")->capture_default_str();
    app.add_option("--epochs", epochs)->capture_default_str();
    app.add_option("--batch-size", batch)->capture_default_str();
    app.add_option("--lr", lr, "peak learning rate")->capture_default_str();
    app.add_option("--warmup", warmup, "linear warm-up epochs")->capture_default_str();
    app.add_option("--depth", depth, "ResNet depth 6n+2 (20, 32, 44, 56, 110)")->capture_default_str();
    app.add_option("--seed", seed)->capture_default_str();
    app.add_option("--threads", threads, "OpenMP threads of the training step")->capture_default_str();
    app.add_option("--workers", workers, "data loader threads")->capture_default_str();
    app.add_option("--held-out", held_out, "K images per class held out of training for tuning (0: none)")->capture_default_str();
    app.add_option("--train-limit", train_limit, "use only N evenly spaced images of the long-tailed set (smoke tests)");
    app.add_option("--out", out, "output directory (checkpoint, log.jsonl, results.json)")->capture_default_str();
    app.add_option("--resume", resume, "checkpoint to resume from");
    app.add_flag("--force-resume", force_resume,
                 "resume even a checkpoint of another experiment (seed, data, batch size, ...) or one without "
                 "optimizer state");
    app.add_flag("--overwrite", overwrite, "replace the run already in --out (without it, such a run is refused)");
    app.add_option("--evaluate", evaluate,
                   "no training: evaluate this checkpoint (of a run with the same --profile, --seed, --held-out, "
                   "--depth, --loss) on the test and held-out splits; report with the confusion matrix in "
                   "<out>/eval.json");
    app.add_option("--checkpoint-every", checkpoint_every, "also checkpoint every N steps (0: epoch ends only)")
        ->capture_default_str();
    app.add_option("--test-every", test_every, "evaluate the test set every N epochs (and after the last)")
        ->capture_default_str();
    app.add_flag("--quiet", quiet, "no progress bar");
    app.add_option("--analysis-every", analysis_every,
                   "append the per-class analysis to <out>/analysis.jsonl every k epochs (0: off)")->capture_default_str();
    policy.add_to(app);
    fsa.add_to(app);
  }
};

/// The long-tailed training set and the balanced held-out split (empty without --held-out) that
/// a run's flags define: every stage of a run (training, decoupling, analysis) rebuilds the same.
struct lt_split {
  ltl::data::image_dataset train, val;
};
inline lt_split make_split(const run_flags& f, const ltl::data::image_dataset& full, index_t n_max) {
  namespace ld = ltl::data;
  const auto C = static_cast<index_t>(full.num_classes());
  const auto counts = f.profile == "step" ? ld::step_profile(n_max, C, f.rho) : ld::exponential_profile(n_max, C, f.rho);
  lt_split s{ld::make_long_tailed(full, counts, f.seed), {}};
  if (f.held_out > 0) {
    auto split = ld::held_out_split(s.train, f.held_out, f.seed + 1);
    s.train = std::move(split.train);
    s.val = std::move(split.val);
  }
  if (f.train_limit > 0 && f.train_limit < static_cast<index_t>(s.train.size())) {
    // Evenly spaced picks from the class-major set keep the profile's proportions.
    std::vector<index_t> pick(static_cast<std::size_t>(f.train_limit));
    for (std::size_t i = 0; i < pick.size(); ++i)
      pick[i] = static_cast<index_t>(i) * static_cast<index_t>(s.train.size()) / f.train_limit;
    s.train = s.train.subset(pick);
  }
  return s;
}

/// The CIFAR ResNet a run's flags define (LDAM uses the cosine classifier).
inline ltl::nn::resnet_cifar_options model_options(const run_flags& f, index_t num_classes, index_t in_channels) {
  return {.depth = f.depth, .num_classes = num_classes, .in_channels = in_channels,
          .normed_classifier = f.policy.loss == "ldam", .seed = f.seed};
}

}  // namespace example
