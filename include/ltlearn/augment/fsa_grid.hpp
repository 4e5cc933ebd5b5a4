#pragma once
/// \file
/// Phase II of feature space augmentation over a grid of hyper-parameters with held-out
/// selection (Chu et al., ECCV 2020, §4.3 and §5.4; SPEC §10): every configuration of
/// (h_r, τ_s, τ_g, N_a, N_f) is fine-tuned from the same phase-I weights on batches of one shared
/// feature bank, evaluated on the test split (and the held-out split), and the model is reset
/// before the next. The configuration of best held-out mean per-class accuracy is selected by
/// metrics::held_out_selector (first listed on ties); without a held-out split only a grid of
/// one configuration selects it.
///
/// At the last feature map only the classifier changes, so the frozen backbone's pooled features
/// of the evaluation splits are extracted once and each configuration's evaluation is the
/// classifier on those rows (classifier::evaluate_features in the evaluation's batches of 256,
/// bit for bit what eval::evaluate gives on the images). At an earlier point the whole model is
/// evaluated on the images.

#include "ltlearn/augment/confusion.hpp"
#include "ltlearn/augment/finetune.hpp"
#include "ltlearn/augment/head_tail.hpp"
#include "ltlearn/classifier/features.hpp"
#include "ltlearn/eval/evaluate.hpp"
#include "ltlearn/metrics/selection.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ltl::augment {

/// The grid and the fixed settings of a phase-II search.
struct fsa_grid {
  std::vector<double> h_r{0.9}, tau_s{0.5}, tau_g{0.5};  ///< each list: values to try
  std::vector<index_t> n_a{3}, n_f{3};
  index_t iterations = 6400;
  double lr = 0.001;
  bool head_partners = false;  ///< confusing classes only among head classes
  index_t batch = 128;         ///< phase-II batch ≈ this: N_t = max(1, batch / (2·(1 + N_a)))
  std::uint64_t seed = 0;
  double logit_scale = 1;      ///< a cosine classifier's scale s (LDAM), 1 for a linear one
  index_t eval_batch_size = 256;
  int eval_workers = 0;        ///< loader threads building evaluation batches ahead (decoding images)

  /// Number of configurations (the product of the list lengths).
  [[nodiscard]] std::size_t size() const {
    return h_r.size() * tau_s.size() * tau_g.size() * n_a.size() * n_f.size();
  }
};

/// Outcome of one configuration.
struct fsa_config_result {
  double h_r = 0, tau_s = 0, tau_g = 0;
  index_t n_a = 0, n_f = 0;
  head_tail_split split;
  index_t batch = 0;  ///< the generator's batch size 2·N_t·(1 + N_a)
  fsa_finetune_result finetune;
  double seconds = 0;
  metrics::eval_report test;
  std::optional<metrics::eval_report> val;

  /// "h_r … tau_s … tau_g … N_a … N_f …" (how logs name a configuration).
  [[nodiscard]] std::string name() const {
    return fmt::format("h_r {} tau_s {} tau_g {} N_a {} N_f {}", h_r, tau_s, tau_g, n_a, n_f);
  }
  /// The configuration with its settings and reports (an entry of fsa_results.json "configs").
  [[nodiscard]] nlohmann::json to_json(const fsa_grid& g, const std::string& point) const {
    nlohmann::json j{{"h_r", h_r},
                     {"tau_s", tau_s},
                     {"tau_g", tau_g},
                     {"N_a", n_a},
                     {"N_f", n_f},
                     {"iterations", g.iterations},
                     {"lr", g.lr},
                     {"point", point},
                     {"head_partners", g.head_partners},
                     {"head", split.head},
                     {"tail", split.tail},
                     {"batch", batch},
                     {"first_loss", finetune.first_loss},
                     {"last_loss", finetune.last_loss},
                     {"augmented_rows", finetune.augmented_rows},
                     {"empty_specific", finetune.empty_specific},
                     {"empty_generic", finetune.empty_generic},
                     {"seconds", seconds},
                     {"test", test.to_json()}};
    if (val) j["val"] = val->to_json();
    return j;
  }
};

/// Outcome of the search. The model is left with the selected configuration's weights (or the
/// phase-I weights when none is selected).
template <real_scalar T>
struct fsa_grid_result {
  metrics::eval_report phase1_test;
  std::optional<metrics::eval_report> phase1_val;
  std::vector<fsa_config_result> configs;  ///< in grid order, configurations without a tail class left out
  std::optional<std::size_t> selected;     ///< index into configs
};

/// Progress callbacks of fsa_grid_search (for logs; all optional).
struct fsa_grid_hooks {
  /// The phase-I model's reports on the test and held-out splits, before any fine-tuning.
  std::function<void(const metrics::eval_report& test, const std::optional<metrics::eval_report>& val)> on_phase1;
  /// Before the configurations of one (h_r, N_f): the split and the confusing classes [C].
  std::function<void(double h_r, index_t n_f, const head_tail_split&, const std::vector<std::vector<index_t>>&)>
      on_split;
  /// A configuration without a tail class (skipped).
  std::function<void(double h_r, double tau_s, double tau_g, index_t n_a, index_t n_f)> on_skip;
  /// After each configuration.
  std::function<void(const fsa_config_result&)> on_config;
};

/// Runs the grid `g` from the phase-I `model` (the one `bank` was built from: a feature_bank, or
/// a streamed_bank built with g.logit_scale), evaluating on
/// the pass_source `test` and, when given, the held-out split `val` (evaluation batches, e.g.
/// data::image_pipeline with an evaluation transform, built g.eval_workers loader threads
/// ahead); shot groups and head/tail by `train_counts`.
template <real_scalar T, device D, fsa_bank<T> Bank, class Src>
  requires eval::pass_source<Src, T>
fsa_grid_result<T> fsa_grid_search(nn::staged_model<T, D>& model, const Bank& bank,
                                   const std::vector<index_t>& train_counts, const Src* val, const Src& test,
                                   const fsa_grid& g, const fsa_grid_hooks& hooks = {}) {
  using clock = std::chrono::steady_clock;
  LTL_CHECK(g.size() > 0, value_error, "fsa_grid_search: an empty grid (every hyper-parameter needs a value)");
  const std::vector<double> counts(train_counts.begin(), train_counts.end());
  // At the last map the backbone is frozen: its pooled features of the evaluation splits once.
  std::optional<classifier::feature_table<T>> val_f, test_f;
  if (bank.last_map) {
    if (val) val_f = classifier::extract_features(model, *val, g.eval_batch_size, g.eval_workers);
    test_f = classifier::extract_features(model, test, g.eval_batch_size, g.eval_workers);
  }
  auto evaluate = [&](const Src& src, const std::optional<classifier::feature_table<T>>& cached) {
    if (!cached)
      return eval::evaluate(model, src, counts, {.batch_size = g.eval_batch_size, .workers = g.eval_workers});
    eval::eval_scope scope(model);
    return classifier::evaluate_features<T, D>([&](const variable<T, D>& f) { return model.classify(f); }, *cached,
                                               counts, g.eval_batch_size);
  };

  fsa_grid_result<T> res;
  res.phase1_test = evaluate(test, test_f);
  if (val) res.phase1_val = evaluate(*val, val_f);
  if (hooks.on_phase1) hooks.on_phase1(res.phase1_test, res.phase1_val);

  const auto scores = bank.class_scores(g.logit_scale);
  std::map<std::string, tensor<T, D>> initial, best_state;
  for (auto& [n, t] : model.state_dict()) initial.emplace(n, t.clone());
  metrics::held_out_selector select;
  for (double hr : g.h_r)
    for (index_t nf : g.n_f) {
      const auto split = split_head_tail(train_counts, hr);
      std::vector<bool> candidate(train_counts.size());
      for (std::size_t c = 0; c < train_counts.size(); ++c)
        candidate[c] = train_counts[c] > 0 && (!g.head_partners || split.is_head[c]);
      const auto conf = confusing_classes(scores, split.tail, nf, candidate);
      if (hooks.on_split) hooks.on_split(hr, nf, split, conf);
      for (double ts : g.tau_s)
        for (double tg : g.tau_g)
          for (index_t na : g.n_a) {
            if (split.tail.empty()) {
              if (hooks.on_skip) hooks.on_skip(hr, ts, tg, na, nf);
              continue;
            }
            const auto t0 = clock::now();
            fsa_config_result r{.h_r = hr, .tau_s = ts, .tau_g = tg, .n_a = na, .n_f = nf, .split = split};
            fsa_generator<T, Bank> gen(bank, split, conf,
                                 {.tau_s = ts, .tau_g = tg,
                                  .tail_per_batch = std::max<index_t>(1, g.batch / (2 * (1 + na))),
                                  .augment_per_tail = na, .seed = g.seed});
            r.finetune = fsa_finetune(model, gen, {.iterations = g.iterations, .lr = g.lr,
                                                   .logit_scale = g.logit_scale});
            r.batch = gen.batch_size();
            r.test = evaluate(test, test_f);
            if (val) r.val = evaluate(*val, val_f);
            r.seconds = std::chrono::duration<double>(clock::now() - t0).count();
            const bool chosen = val ? select.offer(r.val->mean_per_class) : g.size() == 1;
            if (chosen) {
              res.selected = res.configs.size();
              best_state.clear();
              for (auto& [n, t] : model.state_dict()) best_state.emplace(n, t.clone());
            }
            if (hooks.on_config) hooks.on_config(r);
            res.configs.push_back(std::move(r));
            model.load_state_dict(initial);
          }
    }
  if (res.selected) model.load_state_dict(best_state);
  return res;
}

/// fsa_grid_search over in-memory test (and held-out) datasets, normalised by `norm`.
template <real_scalar T, device D, data::dataset Ds, fsa_bank<T> Bank>
fsa_grid_result<T> fsa_grid_search(nn::staged_model<T, D>& model, const Bank& bank,
                                   const std::vector<index_t>& train_counts, const Ds* val, const Ds& test,
                                   const data::normalize& norm, const fsa_grid& g, const fsa_grid_hooks& hooks = {}) {
  using source = eval::normalized_dataset<T, Ds>;
  const source test_src(test, norm, eval::delivery_for<D, T>);
  const std::optional<source> val_src =
      val ? std::optional<source>(std::in_place, *val, norm, eval::delivery_for<D, T>) : std::nullopt;
  return fsa_grid_search(model, bank, train_counts, val_src ? &*val_src : nullptr, test_src, g, hooks);
}

}  // namespace ltl::augment
