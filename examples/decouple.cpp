// decouple: stage 2 of decoupled training (Kang et al., ICLR 2020; SPEC §9) on a stage-1
// checkpoint of fmnist_lt. Prints Kang et al.'s Table 2 — joint, NCM (cos / L2), cRT, τ-norm,
// LWS, plus N_c^τ (CDT paper §4.1) and post-hoc logit adjustment — as many / medium / few / all
// test accuracy, with τ chosen on the held-out split (--held-out K) or else on the training
// set's mean per-class accuracy (Kang App. B.5). Pass the stage-1 run's data flags (--profile,
// --rho, --seed, --held-out, --train-limit, --depth, --loss) so that the split is rebuilt exactly.
//
//   fmnist_lt --held-out 10 --out runs/erm && decouple --held-out 10 --out runs/erm
//   decouple --out runs/erm --faithful        # cRT/LWS through the backbone with augmentation
//   decouple --out runs/erm --analysis        # also <out>/analysis.json (SPEC §11) of the checkpoint
//   decouple --config runs/erm/config.toml --no-retrain --worst 3   # the run's own flags; post-hoc rules only
//
// On a cosine classifier (LDAM) the rules that act on logits (NCM, cRT, N_c^tau, post-hoc LA) run;
// tau-norm, LWS and learned tau need a linear classifier's weight norms and are listed as not
// applicable.
#include "main_guard.hpp"
#include "common.hpp"
#include "report.hpp"

#include <ltlearn/classifier/decoupled.hpp>
#include <ltlearn/data/idx.hpp>
#include <ltlearn/eval/analysis.hpp>
#include <ltlearn/train/checkpoint.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include <omp.h>

namespace cl = ltl::classifier;
using ltl::index_t;

namespace {

/// A stage-2 rule the checkpoint's classifier cannot take, and why (printed and in decouple.json).
struct not_applicable {
  std::string rule, reason;
};

/// The K worst classes of a report as "class accuracy%" pairs, worst first.
std::string worst_classes(const ltl::metrics::eval_report& e, std::size_t k) {
  std::vector<std::size_t> order(e.per_class.size());
  for (std::size_t c = 0; c < order.size(); ++c) order[c] = c;
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return e.per_class[a] < e.per_class[b]; });
  std::string s;
  for (std::size_t i = 0; i < std::min(k, order.size()); ++i)
    s += fmt::format("{}{}:{:.1f}", i ? " " : "", order[i], 100 * e.per_class[order[i]]);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Decoupled classifiers on a stage-1 checkpoint of fmnist_lt (Kang et al. Table 2)"};
  std::string data_dir = ltl::data::fashion_mnist_default_dir().string(), checkpoint, stage2_sampler = "class-aware",
              nc_bias = "drop";
  example::run_flags f;
  f.out = "runs/fmnist_lt";
  cl::stage2_options s2;  // Kang et al.: batch 512, cosine from 0.2, wd 5e-4, class-aware 4 per visit
  index_t crt_epochs = cl::crt_epochs, lws_epochs = cl::lws_epochs, learn_tau_epochs = cl::learn_tau_epochs;
  std::vector<double> tau_grid{0, 1, 0.05}, la_grid{0, 2, 0.1};
  std::vector<std::string> ncm_forms{"cos", "l2", "cl2n"};
  std::size_t worst = 0;
  bool faithful = false, analysis = false, no_retrain = false;
  const auto nonneg = example::finite_at_least(0), positive = example::finite_at_least(0, true);
  app.add_option("--data-dir", data_dir, "directory of the Fashion-MNIST IDX files")->capture_default_str();
  app.add_option("--checkpoint", checkpoint, "stage-1 checkpoint (default: <out>/checkpoint.safetensors)");
  app.add_option("--crt-epochs", crt_epochs, "cRT epochs (Kang et al.: 10)")->check(positive)->capture_default_str();
  app.add_option("--lws-epochs", lws_epochs, "LWS epochs (Kang et al.: 5)")->check(positive)->capture_default_str();
  app.add_option("--learn-tau-epochs", learn_tau_epochs, "learned-tau epochs (as cRT: 10)")->check(positive)
      ->capture_default_str();
  app.add_option("--crt-batch-size", s2.batch_size, "stage-2 (cRT, LWS, learned tau) batch size")->check(positive)
      ->capture_default_str();
  app.add_option("--crt-lr", s2.lr, "stage-2 peak learning rate (cosine to 0)")->check(nonneg)->capture_default_str();
  app.add_option("--crt-wd", s2.weight_decay, "stage-2 weight decay")->check(nonneg)->capture_default_str();
  app.add_option("--stage2-sampler", stage2_sampler,
                 "stage-2 class balancing: class-aware (Kang et al.'s round robin) | two-stage (uniform class, then "
                 "uniform instance)")
      ->check(example::one_of({"class-aware", "two-stage"}))->capture_default_str();
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
      ->delimiter(',')->check(example::one_of({"cos", "l2", "cl2n"}))->capture_default_str();
  app.add_option("--nc-tau-bias", nc_bias, "N_c^tau: the classifier's bias dropped (as tau-norm) or scaled with the weights")
      ->check(example::one_of({"drop", "scale"}))->capture_default_str();
  app.add_option("--worst", worst, "also print each rule's K worst test classes (class:accuracy%)")->check(nonneg)
      ->capture_default_str();
  app.add_flag("--no-retrain", no_retrain, "only the post-hoc rules: no cRT, LWS or learned tau (seconds, not minutes)");
  app.add_flag("--faithful", faithful, "cRT/LWS on augmented images through the frozen backbone (Kang et al.)");
  app.add_flag("--analysis", analysis, "also write the per-class analysis of the checkpoint to <out>/analysis.json");
  f.add_to(app);
  CLI11_PARSE(app, argc, argv);
  return example::guarded_main("decouple", [&]() -> int {
    namespace fs = std::filesystem;
    f.check();
    for (const auto& [flag, g] : {std::pair{"--tau-grid", &tau_grid}, std::pair{"--la-tau-grid", &la_grid}})
      LTL_CHECK((*g)[2] > 0 && (*g)[1] >= (*g)[0], value_error, "{} {},{},{}: needs lo <= hi and a step > 0", flag,
                (*g)[0], (*g)[1], (*g)[2]);
    const cl::tau_grid norm_grid{tau_grid[0], tau_grid[1], tau_grid[2]}, la_tau_grid{la_grid[0], la_grid[1], la_grid[2]};
    omp_set_num_threads(f.threads);
    s2.seed = f.seed;
    s2.sampler = stage2_sampler == "two-stage" ? cl::balance::two_stage : cl::balance::class_aware;
    auto with_epochs = [&](index_t e) {
      auto o = s2;
      o.epochs = e;
      return o;
    };
    const auto full = ltl::data::read_fashion_mnist(ltl::data::split::train, data_dir);
    const auto test = ltl::data::read_fashion_mnist(ltl::data::split::test, data_dir);
    const ltl::data::normalize norm{{0.2860}, {0.3530}};
    auto [train, val] = example::make_split(f, full, 6000);
    const auto C = static_cast<index_t>(full.num_classes());
    ltl::nn::resnet_cifar<float> model(example::model_options(f, C, test.channels()));
    const fs::path ckpt = checkpoint.empty() ? fs::path(f.out) / "checkpoint.safetensors" : fs::path(checkpoint);
    const auto state = ltl::train::load_checkpoint(ckpt, static_cast<ltl::nn::module<float>&>(model), nullptr);
    fmt::print("stage 1: {} (epoch {})\ntrain {}\n", ckpt.string(), state.epoch, train.summary());
    example::write_config(f.out, "decouple_config.toml", app.config_to_str(true, false));

    // Features once (eval mode, no augmentation); every post-hoc variant reuses them. With
    // --device cuda the backbone pass runs on the GPU (the checkpoint loaded into a model there);
    // the heads below are fitted and evaluated on the host from the cached features.
    cl::feature_table<float> ftr, fte, fval;
    const ltl::data::image_dataset &train_set = train, &val_set = val;
    example::with_device(f.device, [&](auto dev) {
      using D = decltype(dev);
      auto extract = [&](auto& m) {
        ftr = cl::extract_features(m, train_set, norm);
        fte = cl::extract_features(m, test, norm);
        if (f.held_out > 0) fval = cl::extract_features(m, val_set, norm);
      };
      if constexpr (std::is_same_v<D, ltl::cpu::device>) {
        extract(model);
      } else {
        ltl::nn::resnet_cifar<float, D> on_device(example::model_options(f, C, test.channels()));
        ltl::train::load_checkpoint(ckpt, static_cast<ltl::nn::module<float, D>&>(on_device), nullptr);
        extract(on_device);
      }
      return 0;
    });
    const auto& tune = f.held_out > 0 ? fval : ftr;
    const std::string tuned_on = f.held_out > 0 ? "held-out split" : "training mean per-class accuracy";
    const auto counts = ftr.class_counts_double();
    // A cosine classifier (LDAM's) has unit-norm rows and no bias: the rules that rescale or
    // learn its weight norms do not apply; the ones acting on its logits do, as class-wise
    // affine maps of them.
    auto* fc = dynamic_cast<ltl::nn::linear<float>*>(&model.classifier());
    const auto base = model.classifier_ptr();
    const cl::cached_source<float> cached(ftr);
    const ltl::data::standard_augment aug{.crop = {.pad = 4}, .flip = {.p = 0.5}, .norm = norm};
    // --faithful: the frozen backbone on the chosen device (examples/device.hpp).
    const auto through = example::backbone_on_device(
        f.device, model, [&](auto dev) { return ltl::nn::resnet_cifar<float, decltype(dev)>(example::model_options(f, C, test.channels())); },
        [&]<class D>(ltl::nn::resnet_cifar<float, D>& m) {
          ltl::train::load_checkpoint(ckpt, static_cast<ltl::nn::module<float, D>&>(m), nullptr);
        },
        train,
        [aug](ltl::tensor<float>& x, ltl::rng& g) { aug(x, g); }, f.seed);

    struct row {
      std::string name;
      std::shared_ptr<ltl::nn::unary_module<float>> head;
      std::optional<double> tau;
    };
    std::vector<row> rows;
    std::vector<not_applicable> skipped;
    nlohmann::json curves;
    // Grid-searches τ, records the selection curve with the test accuracy of every τ (for plots).
    auto tuned = [&](const std::string& name, auto make, cl::tau_grid grid) {
      const auto r = cl::search_tau<float>(make, tune, grid);
      auto j = r.to_json();
      for (double t : r.taus) j["test"].push_back(cl::evaluate_features(cl::as_head<float>(*make(t)), fte, counts).top1);
      j["tuned_on"] = tuned_on;
      curves[name] = j;
      rows.push_back({name, make(r.tau), r.tau});
    };
    auto affine = [&](std::vector<double> scale, std::vector<double> offset) -> std::shared_ptr<ltl::nn::unary_module<float>> {
      return std::make_shared<cl::class_affine_head<float>>(base, scale, offset);
    };
    const std::vector<double> zeros(counts.size(), 0.0);
    const auto bias = nc_bias == "scale" ? cl::nc_tau_bias::scale : cl::nc_tau_bias::drop;
    const std::string cosine = "the checkpoint's classifier is a cosine classifier (--loss ldam)";
    rows.push_back({"joint", base, std::nullopt});
    for (const auto& form : ncm_forms) {
      const auto m = form == "cos" ? cl::ncm_metric::cosine : form == "l2" ? cl::ncm_metric::euclidean : cl::ncm_metric::cl2n;
      rows.push_back({form == "cos" ? "NCM (cos)" : form == "l2" ? "NCM (L2)" : "NCM (cl2n)", cl::make_ncm(ftr, m),
                      std::nullopt});
    }
    if (!no_retrain)
      rows.push_back({"cRT", faithful ? cl::crt<float>(through, with_epochs(crt_epochs)) : cl::crt<float>(cached, with_epochs(crt_epochs)),
                      std::nullopt});
    if (fc) {
      tuned("tau-norm", [&](double t) { return cl::tau_normalized(*fc, t); }, norm_grid);
      if (!no_retrain)
        rows.push_back({"LWS", faithful ? cl::lws<float>(*fc, through, with_epochs(lws_epochs))
                                        : cl::lws<float>(*fc, cached, with_epochs(lws_epochs)),
                        std::nullopt});
      tuned("N_c^tau", [&](double t) { return cl::nc_tau_normalized(*fc, counts, t, bias); }, norm_grid);
      tuned("post-hoc LA", [&](double t) { return cl::logit_adjusted(*fc, counts, t); }, la_tau_grid);
      if (!no_retrain) {
        const double learned = cl::learn_tau<float>(*fc, cached, with_epochs(learn_tau_epochs));
        rows.push_back({"tau-norm (learned tau)", cl::tau_normalized(*fc, learned), learned});
      }
    } else {
      skipped.push_back({"tau-norm", cosine + ": its rows have unit norm, so w_c/||w_c||^tau leaves it unchanged"});
      if (!no_retrain) skipped.push_back({"LWS", cosine + ": ltlearn's LWS scales a linear classifier's logits"});
      // z_c/N_c^τ and s·z_c − τ·log π_c on the cosine logits z_c (s: LDAM's --scale, the scale
      // the model was trained with; without it the offsets would dwarf logits in [−1, 1]).
      tuned("N_c^tau", [&](double t) {
        std::vector<double> sc(counts.size());
        for (std::size_t c = 0; c < sc.size(); ++c) sc[c] = std::pow(counts[c], -t);
        return affine(sc, zeros);
      }, norm_grid);
      tuned("post-hoc LA", [&](double t) {
        return affine(std::vector<double>(counts.size(), f.policy.scale), cl::logit_adjustment_offsets(counts, t));
      }, la_tau_grid);
      if (!no_retrain) skipped.push_back({"tau-norm (learned tau)", cosine + ": there are no weight norms to learn tau on"});
    }

    auto pct = [](const std::optional<double>& a) { return a ? fmt::format("{:.2f}", 100 * *a) : std::string("—"); };
    auto opt = [](const std::optional<double>& a) { return a ? nlohmann::json(*a) : nlohmann::json(nullptr); };
    fmt::print("\ntest accuracy (%), tau chosen on the {}{}\n", tuned_on, faithful ? ", cRT/LWS with augmentation" : "");
    fmt::print("{:<24} {:>8} {:>8} {:>8} {:>8} {:>7} {:>8}{}\n", "classifier", "many", "medium", "few", "all", "vs joint",
               "tau", worst > 0 ? fmt::format("  worst {} classes (class:acc)", worst) : std::string());
    nlohmann::json table = nlohmann::json::array();
    double joint_all = 0;
    for (auto& r : rows) {
      const auto e = cl::evaluate_features(cl::as_head<float>(*r.head), fte, counts);
      if (r.name == "joint") joint_all = e.top1;
      fmt::print("{:<24} {:>8} {:>8} {:>8} {:>8.2f} {:>+7.2f}  {:>8}{}\n", r.name, pct(e.shots.many), pct(e.shots.medium),
                 pct(e.shots.few), 100 * e.top1, 100 * (e.top1 - joint_all),
                 r.tau ? fmt::format("{:.2f}", *r.tau) : std::string(), worst > 0 ? "  " + worst_classes(e, worst) : "");
      table.push_back({{"classifier", r.name}, {"many", opt(e.shots.many)}, {"medium", opt(e.shots.medium)},
                       {"few", opt(e.shots.few)}, {"all", e.top1}, {"tau", opt(r.tau)}, {"test", e.to_json()}});
    }
    nlohmann::json na = nlohmann::json::array();
    for (const auto& s : skipped) {
      fmt::print("{:<24} not applicable: {}\n", s.rule, s.reason);
      na.push_back({{"classifier", s.rule}, {"reason", s.reason}});
    }
    const nlohmann::json out{{"checkpoint", ckpt.string()}, {"epoch", state.epoch},  {"tuned_on", tuned_on},
                             {"faithful", faithful},        {"train_counts", counts}, {"table", table},
                             {"not_applicable", na},        {"tau_curves", curves},
                             {"args", app.config_to_str(true, false)}};
    ltl::io::create_output_dir(f.out);
    ltl::metrics::write_json(fs::path(f.out) / "decouple.json", out);
    fmt::print("wrote {}\n", (fs::path(f.out) / "decouple.json").string());
    if (analysis) {
      const auto r = ltl::eval::analyze(model, train, test, norm, {.point = f.policy.analysis_point()});
      ltl::metrics::write_json(fs::path(f.out) / "analysis.json", r.to_json());
      fmt::print("wrote {}\n", (fs::path(f.out) / "analysis.json").string());
    }
    return 0;
  });
}
