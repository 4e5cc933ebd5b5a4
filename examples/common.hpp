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

#include "device.hpp"
#include "flag_checks.hpp"
#include "fsa_flags.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <string>
#include <vector>

namespace example {

using ltl::index_t;

/// Long-tail policy flags shared by the example trainers: one flag per meaning. A flag that only
/// means something with another flag's value (e.g. --cdt-gamma with --loss cdt) is rejected by
/// `check` when set to anything but its default without that value, so a run never silently
/// ignores what the user asked for.
struct policy_flags {
  std::string sampler = "instance";  // instance | class | class-aware | sqrt | power | progressive | drs
  double sampler_q = 1.0;            // power: p_j ∝ N_j^q
  index_t per_class = 1;             // class-aware: consecutive draws per class visit
  index_t epoch_size = 0;            // class-aware: draws per epoch (0: the training-set size)
  std::string loss = "ce";           // ce | cdt | ldam | la | focal | inv-freq | cb | cb-focal
  double cdt_gamma = 0.1;            // CDT's γ (a_c = (N_max/N_c)^γ)
  double focal_gamma = 1.0;          // focal γ (focal, cb-focal)
  double inv_freq_power = 1.0;       // inverse-frequency weights w_c ∝ N_c^(−p)
  index_t gamma_start = 0;           // CDT: γ = 0 before this epoch
  double tau = 1.0;                  // logit adjustment τ
  double cb_beta = 0.9999;           // class-balanced β (cb, cb-focal and the DRW weights)
  double margin = 0.5, scale = 30;   // LDAM
  index_t drw_epoch = -1;            // deferred re-weighting from this epoch (−1: off)
  index_t drs_epoch = -1;            // deferred re-sampling switch epoch (−1: 80 % of the epochs)
  std::string mix = "none";          // none | mfw | mixup | manifold | remix
  std::string mix_point;             // empty: the policy's own (input for mixup/remix, else stage1)
  index_t mix_from = 0;              // mixing from this epoch on
  index_t mix_until = -1;            // mixing only in epochs before this one (−1: to the end)
  double alpha = 1.0, mfw_beta = 2.0;
  std::string mfw_spread = "geometric";  // γ of MFW's Eq. 12 (ltl::mixing::mfw_spread)
  std::string schedule = "step";  // step | cosine
  double decay_a = 0.1, decay_b = 0.01;  // step schedule: factors from 80 % and 90 % of the epochs

  void add_to(CLI::App& app) {
    const auto nonneg = finite_at_least(0), positive = finite_at_least(0, true);
    app.add_option("--sampler", sampler, "instance|class|class-aware|sqrt|power|progressive|drs")
        ->check(one_of({"instance", "class", "class-aware", "sqrt", "power", "progressive", "drs"}))
        ->capture_default_str();
    app.add_option("--sampler-q", sampler_q, "power sampler: class probabilities p_j ~ N_j^q (0: class-balanced)")
        ->check(nonneg)->capture_default_str();
    app.add_option("--per-class", per_class, "class-aware sampler: consecutive draws per class visit (Kang et al.: 4)")
        ->check(positive)->capture_default_str();
    app.add_option("--epoch-size", epoch_size, "class-aware sampler: draws per epoch (0: the training-set size)")
        ->check(nonneg)->capture_default_str();
    app.add_option("--loss", loss, "ce|cdt|ldam|la|focal|inv-freq|cb|cb-focal")
        ->check(one_of({"ce", "cdt", "ldam", "la", "focal", "inv-freq", "cb", "cb-focal"}))
        ->capture_default_str();
    app.add_option("--cdt-gamma", cdt_gamma, "CDT: temperatures a_c = (N_max/N_c)^gamma")->check(nonneg)
        ->capture_default_str();
    app.add_option("--focal-gamma", focal_gamma, "focal and cb-focal: focusing parameter gamma")->check(nonneg)
        ->capture_default_str();
    app.add_option("--inv-freq-power", inv_freq_power, "inv-freq: class weights ~ N_c^-p")->check(nonneg)
        ->capture_default_str();
    // --gamma meant three things at once (CDT's, the focal and the inverse-frequency exponent),
    // so `--loss focal` silently inherited CDT's 0.1: it now only says which flag to use.
    app.add_option_function<std::string>(
           "--gamma",
           [](const std::string&) {
             throw CLI::ValidationError("--gamma", "is ambiguous and no longer accepted: use --cdt-gamma (--loss cdt), "
                                                   "--focal-gamma (--loss focal, cb-focal) or --inv-freq-power "
                                                   "(--loss inv-freq)");
           },
           "removed: use --cdt-gamma, --focal-gamma or --inv-freq-power");
    app.add_option("--gamma-start", gamma_start, "CDT: gamma = 0 before this epoch")->check(nonneg)->capture_default_str();
    app.add_option("--tau", tau, "la: logit-adjustment tau")->check(nonneg)->capture_default_str();
    app.add_option("--cb-beta", cb_beta, "class-balanced beta (cb, cb-focal, and the --drw-epoch weights)")
        ->check(finite_in_half_open(0, 1))->capture_default_str();
    app.add_option("--margin", margin, "LDAM maximum margin")->check(nonneg)->capture_default_str();
    app.add_option("--scale", scale, "LDAM logit scale")->check(positive)->capture_default_str();
    app.add_option("--drw-epoch", drw_epoch,
                   "deferred re-weighting (CB weights, --cb-beta) from this epoch, -1: off (ce, cdt, ldam, la, focal)")
        ->check(finite_at_least(-1))->capture_default_str();
    app.add_option("--drs-epoch", drs_epoch, "drs sampler: switch epoch (-1: 80% of the epochs)")
        ->check(finite_at_least(-1))->capture_default_str();
    app.add_option("--mix", mix, "none|mfw|mixup|manifold|remix")
        ->check(one_of({"none", "mfw", "mixup", "manifold", "remix"}))->capture_default_str();
    app.add_option("--mix-point", mix_point,
                   "model point to mix at (stem, stage1, ...; default: input for mixup and remix, stage1 otherwise)");
    app.add_option("--mix-from", mix_from, "mix only from this epoch on")->check(nonneg)->capture_default_str();
    app.add_option("--mix-until", mix_until, "mix only in the epochs before this one (-1: all)")
        ->check(finite_at_least(-1))->capture_default_str();
    app.add_option("--alpha", alpha, "Beta(alpha, alpha) of the mixing policies")->check(positive)->capture_default_str();
    app.add_option("--beta", mfw_beta, "MFW softness beta (2 long-tailed, 0.01 step)")->check(nonneg)
        ->capture_default_str();
    app.add_option("--mfw-spread", mfw_spread,
                   "MFW: the spread gamma of Eq. 12, geometric (reproduces the paper's s(N) values) | arithmetic")
        ->check(one_of({"geometric", "arithmetic"}))->capture_default_str();
    app.add_option("--schedule", schedule, "step (warm-up, then decays at 80% and 90% of the epochs) | cosine")
        ->check(one_of({"step", "cosine"}))->capture_default_str();
    app.add_option("--decay-a", decay_a, "step schedule: lr factor from 80% of the epochs")->check(nonneg)
        ->capture_default_str();
    app.add_option("--decay-b", decay_b, "step schedule: lr factor from 90% of the epochs")->check(nonneg)
        ->capture_default_str();
  }

  /// The mixing point in effect: --mix-point, or the policy's own.
  [[nodiscard]] std::string point() const {
    if (!mix_point.empty()) return mix_point;
    return mix == "mixup" || mix == "remix" ? "input" : "stage1";
  }
  /// The point the per-class analysis reads features at (the mixing point, stage1 for input mixing).
  [[nodiscard]] std::string analysis_point() const { return point() == "input" ? "stage1" : point(); }

  /// Rejects combinations in which a flag would be silently ignored (ltl::value_error naming it).
  void check() const {
    const policy_flags d;  // the defaults
    auto only = [](bool set, bool applies, const char* flag, const std::string& with) {
      LTL_CHECK(!set || applies, value_error, "{} only applies with {}", flag, with);
    };
    only(sampler_q != d.sampler_q, sampler == "power", "--sampler-q", "--sampler power");
    only(per_class != d.per_class, sampler == "class-aware", "--per-class", "--sampler class-aware");
    only(epoch_size != d.epoch_size, sampler == "class-aware", "--epoch-size", "--sampler class-aware");
    only(drs_epoch != d.drs_epoch, sampler == "drs", "--drs-epoch", "--sampler drs");
    only(cdt_gamma != d.cdt_gamma, loss == "cdt", "--cdt-gamma", "--loss cdt");
    only(gamma_start != d.gamma_start, loss == "cdt", "--gamma-start", "--loss cdt");
    only(focal_gamma != d.focal_gamma, loss == "focal" || loss == "cb-focal", "--focal-gamma",
         "--loss focal or cb-focal");
    only(inv_freq_power != d.inv_freq_power, loss == "inv-freq", "--inv-freq-power", "--loss inv-freq");
    only(tau != d.tau, loss == "la", "--tau", "--loss la");
    only(margin != d.margin, loss == "ldam", "--margin", "--loss ldam");
    only(scale != d.scale, loss == "ldam", "--scale", "--loss ldam");
    only(cb_beta != d.cb_beta, loss == "cb" || loss == "cb-focal" || drw_epoch >= 0, "--cb-beta",
         "--loss cb, cb-focal or --drw-epoch");
    // inv-freq, cb and cb-focal weight the loss from the first epoch; DRW's weights would replace
    // theirs from its epoch on, which is another method, not a deferral.
    only(drw_epoch >= 0, loss != "inv-freq" && loss != "cb" && loss != "cb-focal", "--drw-epoch",
         "an unweighted loss (ce, cdt, ldam, la, focal): --loss " + loss + " already re-weights from the start");
    const bool mixing = mix != "none";
    only(!mix_point.empty(), mixing, "--mix-point", "--mix mfw, mixup, manifold or remix");
    only(mix_from != d.mix_from, mixing, "--mix-from", "--mix");
    only(mix_until != d.mix_until, mixing, "--mix-until", "--mix");
    only(alpha != d.alpha, mixing, "--alpha", "--mix");
    only(mfw_beta != d.mfw_beta, mix == "mfw", "--beta", "--mix mfw");
    only(mfw_spread != d.mfw_spread, mix == "mfw", "--mfw-spread", "--mix mfw");
    LTL_CHECK(mix != "mixup" || point() == "input", value_error,
              "--mix-point {}: --mix mixup mixes the input images; use --mix manifold to mix at a feature point",
              mix_point);
    LTL_CHECK(mix_until < 0 || mix_until > mix_from, value_error,
              "--mix-until {} must be after --mix-from {} (or -1: to the end)", mix_until, mix_from);
  }

  ltl::sampling::any_sampler make_sampler(std::span<const std::int64_t> y, index_t C, index_t epochs,
                                          std::uint64_t seed) const {
    namespace s = ltl::sampling;
    if (sampler == "instance") return s::instance_balanced(y, C, seed);
    if (sampler == "class") return s::power_sampler(y, C, 0.0, seed);
    if (sampler == "class-aware") return s::class_aware(y, C, seed, per_class, epoch_size);
    if (sampler == "sqrt") return s::power_sampler(y, C, 0.5, seed);
    if (sampler == "power") return s::power_sampler(y, C, sampler_q, seed);
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
    if (loss == "cdt") return with_drw(l::cdt{.gamma = cdt_gamma, .start_epoch = gamma_start});
    if (loss == "ldam") return with_drw(l::ldam{.max_margin = margin, .scale = scale});
    if (loss == "la") return with_drw(l::logit_adjust{.tau = tau});
    if (loss == "focal") return with_drw(l::focal{.gamma = focal_gamma});
    if (loss == "inv-freq") return l::inverse_frequency_weights{.gamma = inv_freq_power};
    if (loss == "cb") return l::class_balanced_weights{.beta = cb_beta};
    if (loss == "cb-focal")
      return l::compose(l::class_balanced_weights{.beta = cb_beta}, l::focal{.gamma = focal_gamma});
    throw ltl::value_error("unknown --loss '" + loss + "'");
  }

  template <class D = ltl::cpu::device>
  ltl::mixing::any_mixing<float, D> make_mixing() const {
    namespace m = ltl::mixing;
    const std::string at = point();
    if (mix == "none") return m::none{};
    if (mix == "mfw")
      return m::mfw{.alpha = alpha, .beta = mfw_beta,
                    .spread = mfw_spread == "arithmetic" ? m::mfw_spread::arithmetic : m::mfw_spread::geometric,
                    .at = at, .start_epoch = mix_from, .stop_epoch = mix_until};
    if (mix == "mixup") return m::mixup{.alpha = alpha, .at = at, .start_epoch = mix_from, .stop_epoch = mix_until};
    if (mix == "manifold") return m::mixup{.alpha = alpha, .at = at, .start_epoch = mix_from, .stop_epoch = mix_until};
    if (mix == "remix") return m::remix{.alpha = alpha, .at = at, .start_epoch = mix_from, .stop_epoch = mix_until};
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
  std::string device = "cpu";  // --device (device.hpp)

  /// Adds the flags and --config FILE (CLI11 reads TOML or INI; a run's own <out>/config.toml
  /// reproduces it; flags given on the command line override the file's values).
  void add_to(CLI::App& app) {
    const auto nonneg = finite_at_least(0), positive = finite_at_least(0, true);
    app.set_config("--config", "", "read flags from this TOML/INI file (e.g. a run's <out>/config.toml)");
    app.add_option("--profile", profile, "exp | step")->check(one_of({"exp", "step"}))->capture_default_str();
    app.add_option("--rho", rho, "imbalance ratio N_max / N_min")->check(finite_at_least(1))->capture_default_str();
    app.add_option("--epochs", epochs)->check(positive)->capture_default_str();
    app.add_option("--batch-size", batch)->check(positive)->capture_default_str();
    // Non-finite rates are the trainer's to refuse (a diverging run must never checkpoint).
    app.add_option("--lr", lr, "peak learning rate")
        ->check(CLI::Validator(
            [](std::string& t) -> std::string {
              return t.starts_with('-') ? "must be >= 0, got " + t : std::string();
            },
            ">= 0"))
        ->capture_default_str();
    app.add_option("--warmup", warmup, "linear warm-up epochs")->check(nonneg)->capture_default_str();
    app.add_option("--depth", depth, "ResNet depth 6n+2 (20, 32, 44, 56, 110)")->check(positive)->capture_default_str();
    app.add_option("--seed", seed)->check(nonneg)->capture_default_str();
    app.add_option("--threads", threads, "OpenMP threads of the training step")->check(positive)->capture_default_str();
    app.add_option("--workers", workers, "data loader threads")->check(nonneg)->capture_default_str();
    app.add_option("--held-out", held_out, "K images per class held out of training for tuning (0: none)")
        ->check(nonneg)->capture_default_str();
    app.add_option("--train-limit", train_limit,
                   "use only N evenly spaced images of the long-tailed set (smoke tests; 0: all)")
        ->check(nonneg)->capture_default_str();
    app.add_option("--out", out, "output directory (checkpoint, log.jsonl, results.json, config.toml)")
        ->capture_default_str();
    // Not written to config.toml: a run reproduced from its file starts afresh.
    app.add_option("--resume", resume, "checkpoint to resume from")->configurable(false);
    app.add_flag("--force-resume", force_resume,
                 "resume even a checkpoint of another experiment (seed, data, batch size, ...) or one without "
                 "optimizer state")->configurable(false);
    app.add_flag("--overwrite", overwrite, "replace the run already in --out (without it, such a run is refused)")->configurable(false);
    app.add_option("--evaluate", evaluate,
                   "no training: evaluate this checkpoint (of a run with the same --profile, --seed, --held-out, "
                   "--depth, --loss) on the test and held-out splits; report with the confusion matrix in "
                   "<out>/eval.json");
    app.add_option("--checkpoint-every", checkpoint_every, "also checkpoint every N steps (0: epoch ends only)")
        ->check(nonneg)->capture_default_str();
    app.add_option("--test-every", test_every, "evaluate the test set every N epochs (and after the last)")
        ->check(positive)->capture_default_str();
    app.add_flag("--quiet", quiet, "no progress bar");
    app.add_option("--analysis-every", analysis_every,
                   "append the per-class analysis to <out>/analysis.jsonl every k epochs (0: off)")
        ->check(nonneg)->capture_default_str();
    policy.add_to(app);
    fsa.add_to(app);
    add_device_option(app, device);
  }

  /// Checks across flags (ltl::value_error naming the flag); the single values were checked by
  /// CLI11 while parsing.
  void check() const {
    policy.check();
    LTL_CHECK(policy.drw_epoch < epochs, value_error, "--drw-epoch {} is not before the last epoch (--epochs {})",
              policy.drw_epoch, epochs);
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
  if (f.held_out > 0) {
    // Checked here, before any training: a class no larger than K would be left out of the
    // held-out split (and the selection would silently ignore it).
    const auto smallest = std::min_element(counts.begin(), counts.end());
    LTL_CHECK(f.held_out < *smallest, value_error,
              "--held-out {}: class {} of the {} profile (rho {}) has only {} images; hold out at most {} per class",
              f.held_out, smallest - counts.begin(), f.profile, f.rho, *smallest, *smallest - 1);
  }
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
