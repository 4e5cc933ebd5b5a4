#pragma once
// Phase II of feature space augmentation (Chu, Bian, Liu, Ye, ECCV 2020; SPEC §10) on a phase-I
// checkpoint, for the example trainers: `--fsa-phase2 runs/x/checkpoint.safetensors`.
// Hyper-parameter flags take comma-separated lists; the grid over them shares one feature bank
// (the training maps, CAMs and phase-I scores) and, at the last feature map, the frozen
// backbone's pooled features of the evaluation sets, so each configuration costs only its
// fine-tuning. With --held-out > 0 the configuration of best held-out mean per-class accuracy
// is selected and saved. Composition only: the method lives in include/ltlearn/augment/.

#include "report.hpp"
#include <ltlearn/augment/confusion.hpp>
#include <ltlearn/augment/finetune.hpp>
#include <ltlearn/augment/head_tail.hpp>
#include <ltlearn/data/dataset.hpp>
#include <ltlearn/train/checkpoint.hpp>
#include <ltlearn/train/evaluate.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace example {

/// Flags of phase II (each hyper-parameter may list several values: a grid).
struct fsa_flags {
  std::string checkpoint;  // phase-I checkpoint; empty: no phase II
  std::vector<double> hr{0.9}, ts{0.5}, tg{0.5};
  std::vector<ltl::index_t> na{3}, nf{3};
  ltl::index_t iters = 6400;
  double lr = 0.001;
  std::string point = "stage3";
  bool head_partners = false;  // confusing classes only among head classes

  [[nodiscard]] bool enabled() const { return !checkpoint.empty(); }

  void add_to(CLI::App& app) {
    app.add_option("--fsa-phase2", checkpoint,
                   "run phase II of feature space augmentation on this phase-I checkpoint instead of training");
    app.add_option("--fsa-hr", hr, "FSA head share h_r (comma list: grid)")
        ->delimiter(',')
        ->capture_default_str();
    app.add_option("--fsa-ts", ts, "FSA class-specific CAM threshold tau_s (list)")
        ->delimiter(',')
        ->capture_default_str();
    app.add_option("--fsa-tg", tg, "FSA class-generic CAM threshold tau_g (list)")
        ->delimiter(',')
        ->capture_default_str();
    app.add_option("--fsa-na", na, "FSA augmented samples per tail sample N_a (list; 0: no augmentation)")
        ->delimiter(',')
        ->capture_default_str();
    app.add_option("--fsa-nf", nf, "FSA confusing classes per tail class N_f (list)")
        ->delimiter(',')
        ->capture_default_str();
    app.add_option("--fsa-iters", iters, "FSA fine-tuning iterations")->capture_default_str();
    app.add_option("--fsa-lr", lr, "FSA fixed fine-tuning learning rate")->capture_default_str();
    app.add_option("--fsa-point", point, "FSA augmentation point (stage3 = last feature map; stage2: ablation)")
        ->capture_default_str();
    app.add_flag("--fsa-head-partners", head_partners,
                 "FSA: draw confusing classes from the head classes only (default: any other class)");
  }
};

/// What phase II takes over from the run's flags.
struct fsa_run_info {
  std::string out;             // output directory
  ltl::index_t batch = 128;    // phase-II batch ≈ this: N_t = batch / (2·(1 + N_a))
  std::uint64_t seed = 0;
  double logit_scale = 1;      // cosine classifier (LDAM): its scale s
  std::string args;
};

/// Loads `ff.checkpoint` into `model`, runs phase II for every configuration of the grid,
/// prints the reports and writes <out>/fsa_results.json (and fsa_checkpoint.safetensors of the
/// selected configuration).
inline int run_fsa_phase2(const fsa_flags& ff, ltl::nn::staged_model<float>& model,
                          const ltl::data::image_dataset& train, const ltl::data::image_dataset* val,
                          const ltl::data::image_dataset& test, const ltl::data::normalize& norm,
                          const fsa_run_info& info) {
  namespace la = ltl::augment;
  using ltl::index_t;
  using clock = std::chrono::steady_clock;
  auto secs = [](clock::time_point t0) { return std::chrono::duration<double>(clock::now() - t0).count(); };
  const auto st = ltl::train::load_checkpoint(ff.checkpoint, static_cast<ltl::nn::module<float>&>(model), nullptr);
  fmt::print("phase II (feature space augmentation) from {} (phase I: {} epochs)\n", ff.checkpoint, st.epoch);
  const auto counts = train.class_counts();
  const std::vector<double> dcounts(counts.begin(), counts.end());

  auto t0 = clock::now();
  const auto bank = la::build_feature_bank(model, train, norm, ff.point);
  fmt::print("feature bank: {} maps [{}, {}, {}] at '{}' ({:.1f} s)\n", bank.size(), bank.channels, bank.height,
             bank.width, ff.point, secs(t0));

  // At the last map only the classifier changes: the backbone's pooled features are cached.
  auto pooled_features = [&](const ltl::data::image_dataset& ds) {
    ltl::no_grad_guard ng;
    model.eval();
    ltl::tensor<float> out;
    std::vector<index_t> idx;
    for (index_t b0 = 0; b0 < static_cast<index_t>(ds.size()); b0 += 256) {
      const index_t n = std::min<index_t>(256, static_cast<index_t>(ds.size()) - b0);
      idx.resize(static_cast<std::size_t>(n));
      std::iota(idx.begin(), idx.end(), b0);
      auto bt = ltl::data::make_batch<float>(ds, std::span<const index_t>(idx), norm);
      const auto f = model.features(ltl::variable<float>(bt.images)).value().contiguous();
      if (b0 == 0) out = ltl::tensor<float>(ltl::shape{static_cast<index_t>(ds.size()), f.size(1)});
      std::copy_n(f.data(), f.numel(), out.data() + b0 * f.size(1));
    }
    model.train();
    return out;
  };
  std::optional<ltl::tensor<float>> val_f, test_f;
  if (bank.last_map) {
    if (val) val_f = pooled_features(*val);
    test_f = pooled_features(test);
  }
  auto evaluate = [&](const ltl::data::image_dataset& ds, const std::optional<ltl::tensor<float>>& cached) {
    if (!cached) return ltl::train::evaluate(model, ds, norm, dcounts);
    model.eval();
    index_t offset = 0;  // evaluate_with visits the set in order, batch by batch
    auto r = ltl::train::evaluate_with<float>(
        [&](const ltl::variable<float>& x) {
          const index_t n = x.size(0);
          auto z = model.classify(ltl::variable<float>(cached->narrow(0, offset, n).contiguous()));
          offset += n;
          return z;
        },
        ds, norm, dcounts);
    model.train();
    return r;
  };

  auto line = [](const char* name, const ltl::train::eval_report& r) {
    return fmt::format("{} top-1 {:.2f}% mpc {:.2f}% (many {} med {} few {})", name, 100 * r.top1,
                       100 * r.mean_per_class, ltl::metrics::format_accuracy(r.shots.many),
                       ltl::metrics::format_accuracy(r.shots.medium), ltl::metrics::format_accuracy(r.shots.few));
  };
  nlohmann::json res;
  const auto p1_test = evaluate(test, test_f);
  res["phase1"]["test"] = p1_test.to_json();
  std::string p1 = line("test", p1_test);
  if (val) {
    const auto p1_val = evaluate(*val, val_f);
    res["phase1"]["val"] = p1_val.to_json();
    p1 = line("val", p1_val) + "  " + p1;
  }
  fmt::print("phase I:  {}\n", p1);

  const auto scores = la::mean_class_scores(bank.logits, bank.labels, info.logit_scale);
  std::map<std::string, ltl::tensor<float>> initial, best_state;
  for (auto& [n, t] : model.state_dict()) initial.emplace(n, t.clone());

  const std::size_t grid = ff.hr.size() * ff.ts.size() * ff.tg.size() * ff.na.size() * ff.nf.size();
  const bool full_each = grid == 1 || val == nullptr;
  std::optional<std::size_t> best;
  double best_val = -1;
  std::vector<std::pair<ltl::train::eval_report, std::optional<ltl::train::eval_report>>> reports;
  res["configs"] = nlohmann::json::array();
  for (double hr : ff.hr)
    for (index_t nf : ff.nf) {
      const auto split = la::split_head_tail(counts, hr);
      std::vector<bool> candidate(counts.size());
      for (std::size_t c = 0; c < counts.size(); ++c)
        candidate[c] = counts[c] > 0 && (!ff.head_partners || split.is_head[c]);
      const auto conf = la::confusing_classes(scores, split.tail, nf, candidate);
      fmt::print("\nh_r {}: head {} ({:.1f}% of the images), tail {}\n", hr, split.head, 100 * split.head_share,
                 split.tail);
      for (index_t c : split.tail) fmt::print("  confusing classes of {}: {}\n", c, conf[static_cast<std::size_t>(c)]);
      for (double ts : ff.ts)
        for (double tg : ff.tg)
          for (index_t na : ff.na) {
            nlohmann::json cfg{{"h_r", hr}, {"tau_s", ts}, {"tau_g", tg}, {"N_a", na}, {"N_f", nf},
                               {"iterations", ff.iters}, {"lr", ff.lr}, {"point", ff.point},
                               {"head_partners", ff.head_partners},
                               {"head", split.head}, {"tail", split.tail}};
            const std::string name = fmt::format("h_r {} tau_s {} tau_g {} N_a {} N_f {}", hr, ts, tg, na, nf);
            if (split.tail.empty()) {
              fmt::print("{}: no tail class, skipped\n", name);
              continue;
            }
            t0 = clock::now();
            la::fsa_generator<float> gen(
                bank, split, conf,
                {.tau_s = ts, .tau_g = tg, .tail_per_batch = std::max<index_t>(1, info.batch / (2 * (1 + na))),
                 .augment_per_tail = na, .seed = info.seed});
            const auto ft = la::fsa_finetune(model, gen, {.iterations = ff.iters, .lr = ff.lr,
                                                          .logit_scale = info.logit_scale});
            auto te = evaluate(test, test_f);
            std::optional<ltl::train::eval_report> va;
            if (val) va = evaluate(*val, val_f);
            const double took = secs(t0);
            fmt::print("{} | batch {} | loss {:.4f} -> {:.4f} | {}{} | {:.1f} s\n", name, gen.batch_size(),
                       ft.first_loss, ft.last_loss, va ? line("val", *va) + "  " : std::string(), line("test", te),
                       took);
            if (ft.empty_specific + ft.empty_generic > 0)
              fmt::print("  zero-vector shares: {} specific, {} generic of {} augmented samples\n", ft.empty_specific,
                         ft.empty_generic, ft.augmented_rows);
            cfg["batch"] = gen.batch_size();
            cfg["first_loss"] = ft.first_loss;
            cfg["last_loss"] = ft.last_loss;
            cfg["augmented_rows"] = ft.augmented_rows;
            cfg["empty_specific"] = ft.empty_specific;
            cfg["empty_generic"] = ft.empty_generic;
            cfg["seconds"] = took;
            cfg["test"] = te.to_json();
            if (va) cfg["val"] = va->to_json();
            if (full_each) {
              if (va) print_report("phase II held-out (" + name + ")", *va, dcounts);
              print_report("phase II test (" + name + ")", te, dcounts);
            }
            const bool better = va ? va->mean_per_class > best_val : grid == 1;
            if (better) {
              best = res["configs"].size();
              best_val = va ? va->mean_per_class : 0;
              best_state.clear();
              for (auto& [n, t] : model.state_dict()) best_state.emplace(n, t.clone());
            }
            reports.emplace_back(std::move(te), std::move(va));
            res["configs"].push_back(std::move(cfg));
            model.load_state_dict(initial);
          }
    }

  if (best) {
    const auto& [te, va] = reports[*best];
    const auto& cfg = res["configs"][*best];
    fmt::print("\nselected{}: h_r {} tau_s {} tau_g {} N_a {} N_f {}\n", val ? " on the held-out split" : "",
               cfg["h_r"].get<double>(), cfg["tau_s"].get<double>(), cfg["tau_g"].get<double>(),
               cfg["N_a"].get<index_t>(), cfg["N_f"].get<index_t>());
    if (!full_each) {
      if (va) print_report("phase II held-out", *va, dcounts);
      print_report("phase II test", te, dcounts);
    }
    res["selected"] = *best;
    model.load_state_dict(best_state);
    if (!info.out.empty()) {
      std::filesystem::create_directories(info.out);
      ltl::train::train_state s = st;
      s.extra["fsa"] = cfg;
      ltl::train::save_checkpoint(std::filesystem::path(info.out) / "fsa_checkpoint.safetensors",
                                  static_cast<const ltl::nn::module<float>&>(model), nullptr, s);
    }
  }
  res["checkpoint"] = ff.checkpoint;
  res["args"] = info.args;
  if (!info.out.empty()) {
    std::filesystem::create_directories(info.out);
    write_json_atomically(std::filesystem::path(info.out) / "fsa_results.json", res);
  }
  return 0;
}

}  // namespace example
