#pragma once
// Stage 2 of decoupled training on cached features (Kang et al., ICLR 2020, Table 2; SPEC §9),
// shared by decouple (fmnist_lt / cifar_lt checkpoints) and decouple_image (imagenet_lt /
// inat_lt checkpoints): the stage-2 flags, the rules — joint, NCM, cRT, τ-norm, LWS, N_c^τ
// (CDT paper §4.1), post-hoc logit adjustment, learned τ — with every τ chosen on a tuning table
// that is never the reported one, and the printed many / medium / few / all table with its JSON.
//
// On a cosine classifier (LDAM) the rules that act on logits (NCM, cRT, N_c^τ, post-hoc LA) run;
// τ-norm, LWS and learned τ need a linear classifier's weight norms and are listed as not
// applicable.

#include "flag_checks.hpp"

#include <ltlearn/classifier/decoupled.hpp>
#include <ltlearn/metrics/report.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace example {

/// The stage-2 flags: the budget of cRT / LWS / learned τ (Kang et al.'s by default, SPEC §9),
/// the τ grids, the NCM forms, the N_c^τ bias and the report's options.
struct stage2_flags {
  ltl::classifier::stage2_options s2;  // Kang et al.: batch 512, cosine from 0.2, wd 5e-4, class-aware 4 per visit
  ltl::index_t crt_epochs = ltl::classifier::crt_epochs, lws_epochs = ltl::classifier::lws_epochs,
               learn_tau_epochs = ltl::classifier::learn_tau_epochs;
  std::string sampler = "class-aware", nc_bias = "drop";
  std::vector<double> tau_grid{0, 1, 0.05}, la_grid{0, 2, 0.1};
  std::vector<std::string> ncm_forms{"cos", "l2", "cl2n"};
  std::size_t worst = 0;
  bool no_retrain = false;

  void add_to(CLI::App& app) {
    const auto nonneg = finite_at_least(0), positive = finite_at_least(0, true);
    app.add_option("--crt-epochs", crt_epochs, "cRT epochs (Kang et al.: 10)")->check(positive)->capture_default_str();
    app.add_option("--lws-epochs", lws_epochs, "LWS epochs (Kang et al.: 5)")->check(positive)->capture_default_str();
    app.add_option("--learn-tau-epochs", learn_tau_epochs, "learned-tau epochs (as cRT: 10)")->check(positive)
        ->capture_default_str();
    app.add_option("--crt-batch-size", s2.batch_size, "stage-2 (cRT, LWS, learned tau) batch size")->check(positive)
        ->capture_default_str();
    app.add_option("--crt-lr", s2.lr, "stage-2 peak learning rate (cosine to 0)")->check(nonneg)->capture_default_str();
    app.add_option("--crt-wd", s2.weight_decay, "stage-2 weight decay")->check(nonneg)->capture_default_str();
    app.add_option("--stage2-sampler", sampler,
                   "stage-2 class balancing: class-aware (Kang et al.'s round robin) | two-stage (uniform class, then "
                   "uniform instance)")
        ->check(one_of({"class-aware", "two-stage"}))->capture_default_str();
    app.add_option("--stage2-per-class", s2.per_class, "class-aware stage 2: consecutive draws per class visit")
        ->check(positive)->capture_default_str();
    app.add_option("--stage2-epoch-size", s2.epoch_size, "stage-2 draws per epoch (0: max_c N_c x C, Kang et al.)")
        ->check(nonneg)->capture_default_str();
    app.add_option("--tau-grid", tau_grid, "tau-norm and N_c^tau: tau grid lo,hi,step")->delimiter(',')->expected(3)
        ->check(nonneg)->capture_default_str();
    app.add_option("--la-tau-grid", la_grid, "post-hoc logit adjustment: tau grid lo,hi,step")->delimiter(',')
        ->expected(3)->check(nonneg)->capture_default_str();
    app.add_option("--ncm", ncm_forms,
                   "NCM forms to report: cos, l2, cl2n (Kang et al.'s code default: centred by the mean training feature)")
        ->delimiter(',')->check(one_of({"cos", "l2", "cl2n"}))->capture_default_str();
    app.add_option("--nc-tau-bias", nc_bias,
                   "N_c^tau: the classifier's bias dropped (as tau-norm) or scaled with the weights")
        ->check(one_of({"drop", "scale"}))->capture_default_str();
    app.add_option("--worst", worst, "also print each rule's K worst test classes (class:accuracy%)")->check(nonneg)
        ->capture_default_str();
    app.add_flag("--no-retrain", no_retrain, "only the post-hoc rules: no cRT, LWS or learned tau (seconds, not minutes)");
  }

  /// The grids must be lo <= hi with a positive step (value_error naming the flag).
  void check() const {
    for (const auto& [flag, g] : {std::pair{"--tau-grid", &tau_grid}, std::pair{"--la-tau-grid", &la_grid}})
      LTL_CHECK((*g)[2] > 0 && (*g)[1] >= (*g)[0], value_error, "{} {},{},{}: needs lo <= hi and a step > 0", flag,
                (*g)[0], (*g)[1], (*g)[2]);
  }

  /// The stage-2 options of a method run for `epochs` epochs with `seed`.
  [[nodiscard]] ltl::classifier::stage2_options options(ltl::index_t epochs, std::uint64_t seed) const {
    auto o = s2;
    o.seed = seed;
    o.sampler = sampler == "two-stage" ? ltl::classifier::balance::two_stage : ltl::classifier::balance::class_aware;
    o.epochs = epochs;
    return o;
  }
};

/// One classifier of the table: a head over the cached features, and its τ when one was chosen.
struct stage2_row {
  std::string name;
  std::shared_ptr<ltl::nn::unary_module<float>> head;
  std::optional<double> tau;
};

/// A stage-2 rule the checkpoint's classifier cannot take, and why (printed and in the JSON).
struct stage2_skip {
  std::string rule, reason;
};

/// What the rules work on. `tune` picks every τ and must not be `report`.
struct stage2_inputs {
  const ltl::classifier::feature_table<float>& train;   ///< cRT / LWS / NCM fit on it
  const ltl::classifier::feature_table<float>& report;  ///< the table printed (test)
  const ltl::classifier::feature_table<float>& tune;    ///< τ chosen on it (held-out split or the training table)
  std::string tuned_on;                                 ///< its description, e.g. "held-out split"
  std::shared_ptr<ltl::nn::unary_module<float>> classifier;  ///< the checkpoint's (linear or cosine)
  std::vector<double> counts;  ///< training class counts: shot groups, N_c^τ, logit-adjustment priors
  double cosine_scale = 30;    ///< a cosine classifier's trained logit scale (LDAM's --scale)
};

/// The rows of the table, the rules not applicable and the τ-selection curves.
struct stage2_results {
  std::vector<stage2_row> rows;
  std::vector<stage2_skip> skipped;
  nlohmann::json curves;
};

/// Runs every rule the flags ask for. cRT and LWS train on `faithful`'s features when it is
/// given (e.g. classifier::backbone_source: augmented images through the frozen backbone), else
/// on the cached training table; learned τ always on the cached table.
template <class Faithful = ltl::classifier::cached_source<float>>
stage2_results run_stage2(const stage2_inputs& in, const stage2_flags& sf, std::uint64_t seed,
                          const Faithful* faithful = nullptr) {
  namespace cl = ltl::classifier;
  stage2_results out;
  const auto& counts = in.counts;
  const cl::cached_source<float> cached(in.train);
  // Grid-searches τ on the tuning table, records the selection curve with the reported table's
  // accuracy of every τ (for plots).
  auto tuned = [&](const std::string& name, auto make, cl::tau_grid grid) {
    const auto r = cl::search_tau<float>(make, in.tune, grid);
    auto j = r.to_json();
    for (double t : r.taus)
      j["test"].push_back(cl::evaluate_features(cl::as_head<float>(*make(t)), in.report, counts).top1);
    j["tuned_on"] = in.tuned_on;
    out.curves[name] = j;
    out.rows.push_back({name, make(r.tau), r.tau});
  };
  auto affine = [&](std::vector<double> scale, std::vector<double> offset) -> std::shared_ptr<ltl::nn::unary_module<float>> {
    return std::make_shared<cl::class_affine_head<float>>(in.classifier, scale, offset);
  };
  auto retrain = [&](auto fit) {
    if (faithful) return fit(*faithful);
    return fit(cached);
  };
  const cl::tau_grid norm_grid{sf.tau_grid[0], sf.tau_grid[1], sf.tau_grid[2]},
      la_grid{sf.la_grid[0], sf.la_grid[1], sf.la_grid[2]};
  const std::vector<double> zeros(counts.size(), 0.0);
  const auto bias = sf.nc_bias == "scale" ? cl::nc_tau_bias::scale : cl::nc_tau_bias::drop;
  const std::string cosine = "the checkpoint's classifier is a cosine classifier (--loss ldam)";
  auto* fc = dynamic_cast<ltl::nn::linear<float>*>(in.classifier.get());

  out.rows.push_back({"joint", in.classifier, std::nullopt});
  for (const auto& form : sf.ncm_forms) {
    const auto m = form == "cos" ? cl::ncm_metric::cosine : form == "l2" ? cl::ncm_metric::euclidean : cl::ncm_metric::cl2n;
    out.rows.push_back({form == "cos" ? "NCM (cos)" : form == "l2" ? "NCM (L2)" : "NCM (cl2n)", cl::make_ncm(in.train, m),
                        std::nullopt});
  }
  if (!sf.no_retrain) {
    auto head = retrain([&](const auto& src) -> std::shared_ptr<ltl::nn::unary_module<float>> {
      return cl::crt<float>(src, sf.options(sf.crt_epochs, seed));
    });
    out.rows.push_back({"cRT", head, std::nullopt});
  }
  if (fc) {
    tuned("tau-norm", [&](double t) { return cl::tau_normalized(*fc, t); }, norm_grid);
    if (!sf.no_retrain) {
      auto head = retrain([&](const auto& src) -> std::shared_ptr<ltl::nn::unary_module<float>> {
        return cl::lws<float>(*fc, src, sf.options(sf.lws_epochs, seed));
      });
      out.rows.push_back({"LWS", head, std::nullopt});
    }
    tuned("N_c^tau", [&](double t) { return cl::nc_tau_normalized(*fc, counts, t, bias); }, norm_grid);
    tuned("post-hoc LA", [&](double t) { return cl::logit_adjusted(*fc, counts, t); }, la_grid);
    if (!sf.no_retrain) {
      const double learned = cl::learn_tau<float>(*fc, cached, sf.options(sf.learn_tau_epochs, seed));
      out.rows.push_back({"tau-norm (learned tau)", cl::tau_normalized(*fc, learned), learned});
    }
  } else {
    out.skipped.push_back({"tau-norm", cosine + ": its rows have unit norm, so w_c/||w_c||^tau leaves it unchanged"});
    if (!sf.no_retrain) out.skipped.push_back({"LWS", cosine + ": ltlearn's LWS scales a linear classifier's logits"});
    // z_c/N_c^τ and s·z_c − τ·log π_c on the cosine logits z_c (s: the scale the model was
    // trained with; without it the offsets would dwarf logits in [−1, 1]).
    tuned("N_c^tau", [&](double t) {
      std::vector<double> sc(counts.size());
      for (std::size_t c = 0; c < sc.size(); ++c) sc[c] = std::pow(counts[c], -t);
      return affine(sc, zeros);
    }, norm_grid);
    tuned("post-hoc LA", [&](double t) {
      return affine(std::vector<double>(counts.size(), in.cosine_scale), cl::logit_adjustment_offsets(counts, t));
    }, la_grid);
    if (!sf.no_retrain)
      out.skipped.push_back({"tau-norm (learned tau)", cosine + ": there are no weight norms to learn tau on"});
  }
  return out;
}

/// The K worst classes of a report as "class:accuracy%" pairs, worst first.
inline std::string worst_classes(const ltl::metrics::eval_report& e, std::size_t k) {
  std::vector<std::size_t> order(e.per_class.size());
  for (std::size_t c = 0; c < order.size(); ++c) order[c] = c;
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return e.per_class[a] < e.per_class[b]; });
  std::string s;
  for (std::size_t i = 0; i < std::min(k, order.size()); ++i)
    s += fmt::format("{}{}:{:.1f}", i ? " " : "", order[i], 100 * e.per_class[order[i]]);
  return s;
}

/// Prints the table — many / medium / few / all accuracy (%) on the reported table, the change
/// against joint, τ, and with `worst` > 0 each rule's worst classes — then the rules not
/// applicable. Returns {"table": [...], "not_applicable": [...]} for the JSON report.
inline nlohmann::json print_stage2_table(const stage2_results& r, const stage2_inputs& in, std::size_t worst) {
  namespace cl = ltl::classifier;
  auto pct = [](const std::optional<double>& a) { return a ? fmt::format("{:.2f}", 100 * *a) : std::string("—"); };
  auto opt = [](const std::optional<double>& a) { return a ? nlohmann::json(*a) : nlohmann::json(nullptr); };
  fmt::print("{:<24} {:>8} {:>8} {:>8} {:>8} {:>7} {:>8}{}\n", "classifier", "many", "medium", "few", "all", "vs joint",
             "tau", worst > 0 ? fmt::format("  worst {} classes (class:acc)", worst) : std::string());
  nlohmann::json table = nlohmann::json::array(), na = nlohmann::json::array();
  double joint_all = 0;
  for (const auto& row : r.rows) {
    const auto e = cl::evaluate_features(cl::as_head<float>(*row.head), in.report, in.counts);
    if (row.name == "joint") joint_all = e.top1;
    fmt::print("{:<24} {:>8} {:>8} {:>8} {:>8.2f} {:>+7.2f}  {:>8}{}\n", row.name, pct(e.shots.many),
               pct(e.shots.medium), pct(e.shots.few), 100 * e.top1, 100 * (e.top1 - joint_all),
               row.tau ? fmt::format("{:.2f}", *row.tau) : std::string(), worst > 0 ? "  " + worst_classes(e, worst) : "");
    table.push_back({{"classifier", row.name}, {"many", opt(e.shots.many)}, {"medium", opt(e.shots.medium)},
                     {"few", opt(e.shots.few)}, {"all", e.top1}, {"tau", opt(row.tau)}, {"test", e.to_json()}});
  }
  for (const auto& s : r.skipped) {
    fmt::print("{:<24} not applicable: {}\n", s.rule, s.reason);
    na.push_back({{"classifier", s.rule}, {"reason", s.reason}});
  }
  return {{"table", table}, {"not_applicable", na}};
}

}  // namespace example
