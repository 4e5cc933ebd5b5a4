#pragma once
// The flags of FSA phase II (`--fsa-phase2 CHECKPOINT` and the --fsa-* grid), as a library grid.

#include <ltlearn/augment/fsa_grid.hpp>

#include "flag_checks.hpp"

#include <CLI/CLI.hpp>

#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

namespace example {

/// Flags of phase II (each hyper-parameter may list several values: a grid).
struct fsa_flags {
  std::string checkpoint;  // phase-I checkpoint; empty: no phase II
  ltl::augment::fsa_grid grid;
  std::string point = "stage3";
  double bank_limit_gb = 0;  // 0: 80 % of this machine's physical memory
  std::string bank = "auto";  // resident | streamed | auto (resident when it fits the limit)

  [[nodiscard]] bool enabled() const { return !checkpoint.empty(); }

  /// The largest feature bank phase II builds, in bytes (--fsa-bank-limit-gb; 0: 80 % of the
  /// physical memory, or no limit where the system does not say).
  [[nodiscard]] std::uint64_t bank_limit_bytes() const {
    if (bank_limit_gb > 0) return static_cast<std::uint64_t>(bank_limit_gb * 1073741824.0);
    const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
    if (pages <= 0 || page <= 0) return 0;
    return static_cast<std::uint64_t>(0.8 * static_cast<double>(pages) * static_cast<double>(page));
  }

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
    app.add_option("--fsa-point", point, "FSA augmentation point: the last feature map (stage3 of the CIFAR ResNets, stage4 of the ImageNet "
                   "ones) or an earlier stage (the paper's ablation)")
        ->capture_default_str();
    app.add_option("--fsa-bank-limit-gb", bank_limit_gb,
                   "FSA: the largest resident feature bank (every training image's maps at --fsa-point, on the host); "
                   "a larger one is refused, or streamed with --fsa-bank auto (0: 80% of the physical memory)")
        ->check(finite_at_least(0))->capture_default_str();
    app.add_option("--fsa-bank", bank,
                   "FSA feature bank: resident (every training image's maps in host memory, refused above "
                   "--fsa-bank-limit-gb) | streamed (pooled features resident, a batch's tail and partner maps "
                   "recomputed by the backbone; last feature map only) | auto (resident when it fits the limit)")
        ->check(one_of({"auto", "resident", "streamed"}))->capture_default_str();
    app.add_flag("--fsa-head-partners", grid.head_partners,
                 "FSA: draw confusing classes from the head classes only (default: any other class)");
  }
};

}  // namespace example
