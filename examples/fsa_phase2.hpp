#pragma once
// The --fsa-phase2 mode: phase II of feature space augmentation (Chu, Bian, Liu, Ye, ECCV 2020;
// SPEC §10) on a phase-I checkpoint, over the grid of the --fsa-* flags
// (ltl::augment::fsa_grid_search: one shared feature bank, held-out selection). Prints each
// configuration, writes <out>/fsa_results.json and the selected model to
// <out>/fsa_checkpoint.safetensors. fmnist_lt / cifar_lt run it on their in-memory splits,
// imagenet_lt / inat_lt on their encoded sets through the evaluation transform (the bank holds
// every training image's maps on the host: --fsa-bank-limit-gb refuses one that would not fit).
// Composition only: the method lives in include/ltlearn/augment/.

#include "common.hpp"
#include "report.hpp"

#include <ltlearn/augment/fsa_grid.hpp>
#include <ltlearn/augment/streamed_bank.hpp>
#include <ltlearn/train/checkpoint.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace example {

/// One line of a report: top-1, mean per-class and shot-group accuracy.
inline std::string fsa_line(const char* name, const ltl::metrics::eval_report& r) {
  return fmt::format("{} top-1 {:.2f}% mpc {:.2f}% (many {} med {} few {})", name, 100 * r.top1,
                     100 * r.mean_per_class, ltl::metrics::format_accuracy(r.shots.many),
                     ltl::metrics::format_accuracy(r.shots.medium), ltl::metrics::format_accuracy(r.shots.few));
}

/// What a phase-II run takes from its trainer besides the --fsa-* flags.
struct fsa_run {
  ltl::index_t batch = 128;  // phase-II batch ≈ this (the trainer's --batch-size)
  std::uint64_t seed = 0;
  double logit_scale = 1;    // LDAM's cosine classifier: its scale s
  std::string out;           // output directory ("" writes nothing)
  int workers = 0;           // loader threads building (decoding) bank and evaluation batches ahead
};

/// Loads the phase-I checkpoint into `model`, builds the feature bank from `train` (a pass
/// source: the training images without augmentation), runs the grid evaluated on `test` (and the
/// held-out `val`), and writes the reports. `counts`: the training set's images per class.
template <class D, class Src>
int run_fsa_phase2_on(const fsa_flags& ff, const fsa_run& run, ltl::nn::staged_model<float, D>& model,
                      const Src& train, const std::vector<ltl::index_t>& counts, const Src* val, const Src& test,
                      const std::string& args_text) {
  namespace la = ltl::augment;
  const auto st = ltl::train::load_checkpoint(ff.checkpoint, static_cast<ltl::nn::module<float, D>&>(model), nullptr);
  fmt::print("phase II (feature space augmentation) from {} (phase I: {} epochs)\n", ff.checkpoint, st.epoch);
  const std::vector<double> dcounts(counts.begin(), counts.end());
  auto grid = ff.grid;
  grid.batch = run.batch;
  grid.seed = run.seed;
  grid.logit_scale = run.logit_scale;
  grid.eval_workers = run.workers;

  // The grid on `bank` (resident or streamed), its reports printed and written.
  const auto search = [&](const auto& bank, const char* kind) -> int {
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
    const auto res = la::fsa_grid_search(model, bank, counts, val, test, grid, hooks);

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
      if (!run.out.empty()) {  // the model holds the selected configuration's weights
        ltl::io::create_output_dir(run.out);
        ltl::train::train_state s = st;
        s.extra["fsa"] = out["configs"][*res.selected];
        ltl::train::save_checkpoint(std::filesystem::path(run.out) / "fsa_checkpoint.safetensors",
                                    static_cast<const ltl::nn::module<float, D>&>(model), nullptr, s);
      }
    }
    out["bank"] = kind;
    out["checkpoint"] = ff.checkpoint;
    out["args"] = args_text;
    if (!run.out.empty()) {
      ltl::io::create_output_dir(run.out);
      write_json_atomically(std::filesystem::path(run.out) / "fsa_results.json", out);
    }
    return 0;
  };

  // The bank: resident when asked for, or (auto) when it fits the limit; else streamed.
  const std::uint64_t limit = ff.bank_limit_bytes();
  const auto gib = [](std::uint64_t b) { return static_cast<double>(b) / 1073741824.0; };
  bool resident = ff.bank == "resident";
  if (ff.bank == "auto") {
    const std::uint64_t need = la::resident_bank_bytes(model, train, ff.point);
    resident = limit == 0 || need <= limit;
    if (!resident)
      fmt::print("a resident feature bank would need {:.2f} GiB, over the limit of {:.2f} GiB: streamed\n", gib(need),
                 gib(limit));
  }
  const la::bank_options bo{.batch_size = grid.eval_batch_size, .workers = grid.eval_workers, .max_bytes = limit};
  const auto t0 = std::chrono::steady_clock::now();
  const auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  if (resident) {
    const auto bank = la::build_feature_bank(model, train, ff.point, bo);
    fmt::print("feature bank: {} maps [{}, {}, {}] at '{}', {:.2f} GiB ({:.1f} s)\n", bank.size(), bank.channels,
               bank.height, bank.width, ff.point,
               gib(la::feature_bank_bytes<float>(bank.size(), bank.channels, bank.height, bank.width,
                                                 bank.num_classes)),
               seconds());
    return search(bank, "resident");
  }
  const la::streamed_bank<float, D, Src> bank(model, train, ff.point, grid.logit_scale, bo);
  fmt::print("streamed feature bank: {} samples, maps [{}, {}, {}] at '{}' recomputed per batch ({:.1f} s)\n",
             bank.size(), bank.channels, bank.height, bank.width, ff.point, seconds());
  return search(bank, "streamed");
}

/// Phase II of fmnist_lt / cifar_lt: in-memory splits normalised by `norm`.
template <class D>
int run_fsa_phase2(const run_flags& f, ltl::nn::staged_model<float, D>& model,
                          const ltl::data::image_dataset& train, const ltl::data::image_dataset* val,
                          const ltl::data::image_dataset& test, const ltl::data::normalize& norm,
                          const std::string& args_text) {
  using source = ltl::eval::normalized_dataset<float, ltl::data::image_dataset>;
  constexpr auto delivery = ltl::eval::delivery_for<D, float>;
  const source train_src(train, norm, delivery), test_src(test, norm, delivery);
  const std::optional<source> val_src =
      val ? std::optional<source>(std::in_place, *val, norm, delivery) : std::nullopt;
  return run_fsa_phase2_on(f.fsa,
                           {.batch = f.batch, .seed = f.seed,
                            .logit_scale = f.policy.loss == "ldam" ? f.policy.scale : 1.0, .out = f.out},
                           model, train_src, train.class_counts(), val_src ? &*val_src : nullptr, test_src, args_text);
}

}  // namespace example
