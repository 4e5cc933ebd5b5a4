#pragma once
// The --fsa-phase2 mode: phase II of feature space augmentation (Chu, Bian, Liu, Ye, ECCV 2020;
// SPEC §10) on a phase-I checkpoint, over the grid of the --fsa-* flags
// (ltl::augment::fsa_grid_search: one shared feature bank, held-out selection). Prints each
// configuration, writes <out>/fsa_results.json and the selected model to
// <out>/fsa_checkpoint.safetensors. Composition only: the method lives in include/ltlearn/augment/.

#include "common.hpp"
#include "report.hpp"

#include <ltlearn/augment/fsa_grid.hpp>
#include <ltlearn/train/checkpoint.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <string>

namespace example {

/// One line of a report: top-1, mean per-class and shot-group accuracy.
inline std::string fsa_line(const char* name, const ltl::metrics::eval_report& r) {
  return fmt::format("{} top-1 {:.2f}% mpc {:.2f}% (many {} med {} few {})", name, 100 * r.top1,
                     100 * r.mean_per_class, ltl::metrics::format_accuracy(r.shots.many),
                     ltl::metrics::format_accuracy(r.shots.medium), ltl::metrics::format_accuracy(r.shots.few));
}

/// Loads the phase-I checkpoint into `model`, runs the grid and writes the reports.
template <class D>
int run_fsa_phase2(const run_flags& f, ltl::nn::staged_model<float, D>& model,
                          const ltl::data::image_dataset& train, const ltl::data::image_dataset* val,
                          const ltl::data::image_dataset& test, const ltl::data::normalize& norm,
                          const std::string& args_text) {
  namespace la = ltl::augment;
  const auto& ff = f.fsa;
  const auto st = ltl::train::load_checkpoint(ff.checkpoint, static_cast<ltl::nn::module<float, D>&>(model), nullptr);
  fmt::print("phase II (feature space augmentation) from {} (phase I: {} epochs)\n", ff.checkpoint, st.epoch);
  const auto counts = train.class_counts();
  const std::vector<double> dcounts(counts.begin(), counts.end());
  auto grid = ff.grid;
  grid.batch = f.batch;
  grid.seed = f.seed;
  grid.logit_scale = f.policy.loss == "ldam" ? f.policy.scale : 1.0;

  const auto t0 = std::chrono::steady_clock::now();
  const auto bank = la::build_feature_bank(model, train, norm, ff.point);
  fmt::print("feature bank: {} maps [{}, {}, {}] at '{}' ({:.1f} s)\n", bank.size(), bank.channels, bank.height,
             bank.width, ff.point, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());

  const bool full_each = grid.size() == 1 || val == nullptr;  // full reports per configuration
  la::fsa_grid_hooks hooks;
  hooks.on_phase1 = [](const ltl::metrics::eval_report& te, const std::optional<ltl::metrics::eval_report>& va) {
    fmt::print("phase I:  {}{}\n", va ? fsa_line("val", *va) + "  " : std::string(), fsa_line("test", te));
  };
  hooks.on_split = [](double hr, ltl::index_t, const la::head_tail_split& s, const auto& conf) {
    fmt::print("\nh_r {}: head {} ({:.1f}% of the images), tail {}\n", hr, s.head, 100 * s.head_share, s.tail);
    for (ltl::index_t c : s.tail) fmt::print("  confusing classes of {}: {}\n", c, conf[static_cast<std::size_t>(c)]);
  };
  hooks.on_skip = [](double hr, double ts, double tg, ltl::index_t na, ltl::index_t nf) {
    fmt::print("h_r {} tau_s {} tau_g {} N_a {} N_f {}: no tail class, skipped\n", hr, ts, tg, na, nf);
  };
  hooks.on_config = [&](const la::fsa_config_result& r) {
    const auto& ft = r.finetune;
    fmt::print("{} | batch {} | loss {:.4f} -> {:.4f} | {}{} | {:.1f} s\n", r.name(), r.batch, ft.first_loss,
               ft.last_loss, r.val ? fsa_line("val", *r.val) + "  " : std::string(), fsa_line("test", r.test), r.seconds);
    if (ft.empty_specific + ft.empty_generic > 0)
      fmt::print("  zero-vector shares: {} specific, {} generic of {} augmented samples\n", ft.empty_specific,
                 ft.empty_generic, ft.augmented_rows);
    if (!full_each) return;
    if (r.val) print_report("phase II held-out (" + r.name() + ")", *r.val, dcounts);
    print_report("phase II test (" + r.name() + ")", r.test, dcounts);
  };
  const auto res = la::fsa_grid_search(model, bank, counts, val, test, norm, grid, hooks);

  nlohmann::json out;
  out["phase1"]["test"] = res.phase1_test.to_json();
  if (res.phase1_val) out["phase1"]["val"] = res.phase1_val->to_json();
  out["configs"] = nlohmann::json::array();
  for (auto& r : res.configs) out["configs"].push_back(r.to_json(grid, ff.point));
  if (res.selected) {
    const auto& r = res.configs[*res.selected];
    fmt::print("\nselected{}: {}\n", val ? " on the held-out split" : "", r.name());
    if (!full_each) {
      if (r.val) print_report("phase II held-out", *r.val, dcounts);
      print_report("phase II test", r.test, dcounts);
    }
    out["selected"] = *res.selected;
    if (!f.out.empty()) {  // the model holds the selected configuration's weights
      ltl::io::create_output_dir(f.out);
      ltl::train::train_state s = st;
      s.extra["fsa"] = out["configs"][*res.selected];
      ltl::train::save_checkpoint(std::filesystem::path(f.out) / "fsa_checkpoint.safetensors",
                                  static_cast<const ltl::nn::module<float, D>&>(model), nullptr, s);
    }
  }
  out["checkpoint"] = ff.checkpoint;
  out["args"] = args_text;
  if (!f.out.empty()) {
    ltl::io::create_output_dir(f.out);
    write_json_atomically(std::filesystem::path(f.out) / "fsa_results.json", out);
  }
  return 0;
}

}  // namespace example
