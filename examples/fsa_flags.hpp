#pragma once
// The flags of FSA phase II (`--fsa-phase2 CHECKPOINT` and the --fsa-* grid), as a library grid.

#include <ltlearn/augment/fsa_grid.hpp>

#include "flag_checks.hpp"

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace example {

/// Flags of phase II (each hyper-parameter may list several values: a grid).
struct fsa_flags {
  std::string checkpoint;  // phase-I checkpoint; empty: no phase II
  ltl::augment::fsa_grid grid;
  std::string point = "stage3";

  [[nodiscard]] bool enabled() const { return !checkpoint.empty(); }

  void add_to(CLI::App& app) {
    app.add_option("--fsa-phase2", checkpoint,
                   "run phase II of feature space augmentation on this phase-I checkpoint instead of training");
    // Each value of a list is checked (a negative N_a divided by zero in phase II).
    auto list = [&](const char* name, auto& values, const char* help) {
      app.add_option(name, values, help)->delimiter(',')->check(finite_at_least(0))->capture_default_str();
    };
    list("--fsa-hr", grid.h_r, "FSA head share h_r (comma list: grid)");
    list("--fsa-ts", grid.tau_s, "FSA class-specific CAM threshold tau_s (list)");
    list("--fsa-tg", grid.tau_g, "FSA class-generic CAM threshold tau_g (list)");
    list("--fsa-na", grid.n_a, "FSA augmented samples per tail sample N_a (list; 0: no augmentation)");
    list("--fsa-nf", grid.n_f, "FSA confusing classes per tail class N_f (list)");
    app.add_option("--fsa-iters", grid.iterations, "FSA fine-tuning iterations")->check(finite_at_least(0))
        ->capture_default_str();
    app.add_option("--fsa-lr", grid.lr, "FSA fixed fine-tuning learning rate")->check(finite_at_least(0))
        ->capture_default_str();
    app.add_option("--fsa-point", point, "FSA augmentation point (stage3 = last feature map; stage2: ablation)")
        ->capture_default_str();
    app.add_flag("--fsa-head-partners", grid.head_partners,
                 "FSA: draw confusing classes from the head classes only (default: any other class)");
  }
};

}  // namespace example
