#pragma once
// Shared command-line plumbing of the example trainers: flags → policies, and the final report.
// Composition only: every method lives in the library.

#include <ltlearn/losses/any_policy.hpp>
#include <ltlearn/mixing/any_mixing.hpp>
#include <ltlearn/optim/any_schedule.hpp>
#include <ltlearn/sampling/any_sampler.hpp>
#include <ltlearn/train/evaluate.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cmath>
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
  double alpha = 1.0, mfw_beta = 2.0;
  std::string schedule = "step";  // step | cosine

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
    app.add_option("--alpha", alpha, "Beta(alpha, alpha) of the mixing policies")->capture_default_str();
    app.add_option("--beta", mfw_beta, "MFW softness beta (2 long-tailed, 0.01 step)")->capture_default_str();
    app.add_option("--schedule", schedule, "step (warm-up, x0.1 at 80%, x0.01 at 90%) | cosine")->capture_default_str();
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
    if (mix == "mfw") return m::mfw{.alpha = alpha, .beta = mfw_beta, .at = mix_point};
    if (mix == "mixup") return m::mixup{.alpha = alpha, .at = "input"};
    if (mix == "manifold") return m::mixup{.alpha = alpha, .at = mix_point};
    if (mix == "remix") return m::remix{.alpha = alpha, .at = mix_point == "stage1" ? "input" : mix_point};
    throw ltl::value_error("unknown --mix '" + mix + "'");
  }

  ltl::optim::any_schedule make_schedule(double lr, index_t iters_per_epoch, index_t warmup_epochs, index_t epochs) const {
    if (schedule == "step")
      return ltl::optim::make_step_recipe(lr, iters_per_epoch, warmup_epochs, (epochs * 4 + 4) / 5, (epochs * 9 + 9) / 10);
    if (schedule == "cosine") return ltl::optim::make_cosine_recipe(lr, iters_per_epoch, warmup_epochs, epochs);
    throw ltl::value_error("unknown --schedule '" + schedule + "'");
  }
};

/// Prints per-class and shot-group accuracy of a final evaluation.
inline void print_report(const std::string& title, const ltl::train::eval_report& r, const std::vector<double>& counts) {
  fmt::print("\n{}: top-1 {:.2f}%  top-5 {:.2f}%  mean per-class {:.2f}%  ECE {:.4f}  ({} images)\n", title,
             100 * r.top1, 100 * r.top5, 100 * r.mean_per_class, r.ece, r.n);
  fmt::print("  shot groups: many {}  medium {}  few {}\n", ltl::metrics::format_accuracy(r.shots.many),
             ltl::metrics::format_accuracy(r.shots.medium), ltl::metrics::format_accuracy(r.shots.few));
  fmt::print("  {:>5} {:>8} {:>9}\n", "class", "train n", "accuracy");
  for (std::size_t c = 0; c < r.per_class.size(); ++c)
    fmt::print("  {:>5} {:>8} {:>8.2f}%\n", c, counts[c], 100 * r.per_class[c]);
}

}  // namespace example
