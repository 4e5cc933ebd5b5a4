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
#include "main_guard.hpp"
#include "common.hpp"

#include <ltlearn/classifier/decoupled.hpp>
#include <ltlearn/data/idx.hpp>
#include <ltlearn/eval/analysis.hpp>
#include <ltlearn/train/checkpoint.hpp>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <memory>
#include <optional>

#include <omp.h>

namespace cl = ltl::classifier;
using ltl::index_t;

int main(int argc, char** argv) {
  CLI::App app{"Decoupled classifiers on a stage-1 checkpoint of fmnist_lt (Kang et al. Table 2)"};
  std::string data_dir = ltl::data::fashion_mnist_default_dir().string(), checkpoint;
  example::run_flags f;
  f.out = "runs/fmnist_lt";
  cl::stage2_options s2;  // Kang et al.: 10 epochs, batch 512, cosine from 0.2, wd 5e-4
  bool faithful = false, analysis = false;
  app.add_option("--data-dir", data_dir, "directory of the Fashion-MNIST IDX files")->capture_default_str();
  app.add_option("--checkpoint", checkpoint, "stage-1 checkpoint (default: <out>/checkpoint.safetensors)");
  app.add_option("--crt-epochs", s2.epochs, "cRT/LWS epochs")->capture_default_str();
  app.add_option("--crt-batch-size", s2.batch_size, "cRT/LWS batch size")->capture_default_str();
  app.add_option("--crt-lr", s2.lr, "cRT/LWS peak learning rate (cosine to 0)")->capture_default_str();
  app.add_option("--crt-wd", s2.weight_decay, "cRT/LWS weight decay")->capture_default_str();
  app.add_flag("--faithful", faithful, "cRT/LWS on augmented images through the frozen backbone (Kang et al.)");
  app.add_flag("--analysis", analysis, "also write the per-class analysis of the checkpoint to <out>/analysis.json");
  f.add_to(app);
  CLI11_PARSE(app, argc, argv);
  return example::guarded_main("decouple", [&]() -> int {
    namespace fs = std::filesystem;
    omp_set_num_threads(f.threads);
    s2.seed = f.seed;
    const auto full = ltl::data::read_fashion_mnist(ltl::data::split::train, data_dir);
    const auto test = ltl::data::read_fashion_mnist(ltl::data::split::test, data_dir);
    const ltl::data::normalize norm{{0.2860}, {0.3530}};
    auto [train, val] = example::make_split(f, full, 6000);
    const auto C = static_cast<index_t>(full.num_classes());
    ltl::nn::resnet_cifar<float> model(example::model_options(f, C, test.channels()));
    const fs::path ckpt = checkpoint.empty() ? fs::path(f.out) / "checkpoint.safetensors" : fs::path(checkpoint);
    const auto state = ltl::train::load_checkpoint(ckpt, static_cast<ltl::nn::module<float>&>(model), nullptr);
    fmt::print("stage 1: {} (epoch {})\ntrain {}\n", ckpt.string(), state.epoch, train.summary());

    // Features once (eval mode, no augmentation); every post-hoc variant reuses them.
    const auto ftr = cl::extract_features(model, train, norm), fte = cl::extract_features(model, test, norm);
    const auto fval = f.held_out > 0 ? cl::extract_features(model, val, norm) : cl::feature_table<float>{};
    const auto& tune = f.held_out > 0 ? fval : ftr;
    const std::string tuned_on = f.held_out > 0 ? "held-out split" : "training mean per-class accuracy";
    const auto counts = ftr.class_counts_double();
    auto& fc = cl::linear_classifier(model);
    const cl::cached_source<float> cached(ftr);
    const ltl::data::standard_augment aug{.crop = {.pad = 4}, .flip = {.p = 0.5}, .norm = norm};
    const cl::backbone_source<float> through(
        model, train, [aug](ltl::tensor<float>& x, ltl::rng& g) { aug(x, g); }, f.seed);

    struct row {
      std::string name;
      std::shared_ptr<ltl::nn::unary_module<float>> head;
      std::optional<double> tau;
    };
    std::vector<row> rows;
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
    rows.push_back({"joint", model.classifier_ptr(), std::nullopt});
    rows.push_back({"NCM (cos)", cl::make_ncm(ftr, cl::ncm_metric::cosine), std::nullopt});
    rows.push_back({"NCM (L2)", cl::make_ncm(ftr, cl::ncm_metric::euclidean), std::nullopt});
    rows.push_back({"cRT", faithful ? cl::crt<float>(through, s2) : cl::crt<float>(cached, s2), std::nullopt});
    tuned("tau-norm", [&](double t) { return cl::tau_normalized(fc, t); }, {0, 1, 0.05});
    rows.push_back({"LWS", faithful ? cl::lws<float>(fc, through, s2) : cl::lws<float>(fc, cached, s2), std::nullopt});
    tuned("N_c^tau", [&](double t) { return cl::nc_tau_normalized(fc, counts, t); }, {0, 1, 0.05});
    tuned("post-hoc LA", [&](double t) { return cl::logit_adjusted(fc, counts, t); }, {0, 2, 0.1});
    const double learned = cl::learn_tau<float>(fc, cached, s2);
    rows.push_back({"tau-norm (learned tau)", cl::tau_normalized(fc, learned), learned});

    auto pct = [](const std::optional<double>& a) { return a ? fmt::format("{:.2f}", 100 * *a) : std::string("—"); };
    auto opt = [](const std::optional<double>& a) { return a ? nlohmann::json(*a) : nlohmann::json(nullptr); };
    fmt::print("\ntest accuracy (%), tau chosen on the {}{}\n", tuned_on, faithful ? ", cRT/LWS with augmentation" : "");
    fmt::print("{:<24} {:>8} {:>8} {:>8} {:>8} {:>8}\n", "classifier", "many", "medium", "few", "all", "tau");
    nlohmann::json table = nlohmann::json::array();
    for (auto& r : rows) {
      const auto e = cl::evaluate_features(cl::as_head<float>(*r.head), fte, counts);
      fmt::print("{:<24} {:>8} {:>8} {:>8} {:>8.2f} {:>8}\n", r.name, pct(e.shots.many), pct(e.shots.medium),
                 pct(e.shots.few), 100 * e.top1, r.tau ? fmt::format("{:.2f}", *r.tau) : std::string());
      table.push_back({{"classifier", r.name}, {"many", opt(e.shots.many)}, {"medium", opt(e.shots.medium)},
                       {"few", opt(e.shots.few)}, {"all", e.top1}, {"tau", opt(r.tau)}, {"test", e.to_json()}});
    }
    const nlohmann::json out{{"checkpoint", ckpt.string()}, {"epoch", state.epoch},  {"tuned_on", tuned_on},
                             {"faithful", faithful},        {"train_counts", counts}, {"table", table},
                             {"tau_curves", curves},        {"args", app.config_to_str(true, false)}};
    ltl::io::create_output_dir(f.out);
    ltl::metrics::write_json(fs::path(f.out) / "decouple.json", out);
    fmt::print("wrote {}\n", (fs::path(f.out) / "decouple.json").string());
    if (analysis) {
      const auto r = ltl::eval::analyze(model, train, test, norm, {.point = f.policy.mix_point});
      ltl::metrics::write_json(fs::path(f.out) / "analysis.json", r.to_json());
      fmt::print("wrote {}\n", (fs::path(f.out) / "analysis.json").string());
    }
    return 0;
  });
}
