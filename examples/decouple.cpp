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
// applicable. The rules, their flags and the table are stage2_rules.hpp's, which decouple_image
// shares for imagenet_lt / inat_lt checkpoints.
#include "main_guard.hpp"
#include "common.hpp"
#include "report.hpp"
#include "stage2_rules.hpp"

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

int main(int argc, char** argv) {
  CLI::App app{"Decoupled classifiers on a stage-1 checkpoint of fmnist_lt (Kang et al. Table 2)"};
  std::string data_dir = ltl::data::fashion_mnist_default_dir().string(), checkpoint;
  example::run_flags f;
  f.out = "runs/fmnist_lt";
  example::stage2_flags sf;
  bool faithful = false, analysis = false;
  app.add_option("--data-dir", data_dir, "directory of the Fashion-MNIST IDX files")->capture_default_str();
  app.add_option("--checkpoint", checkpoint, "stage-1 checkpoint (default: <out>/checkpoint.safetensors)");
  sf.add_to(app);
  app.add_flag("--faithful", faithful, "cRT/LWS on augmented images through the frozen backbone (Kang et al.)");
  app.add_flag("--analysis", analysis, "also write the per-class analysis of the checkpoint to <out>/analysis.json");
  f.add_to(app);
  CLI11_PARSE(app, argc, argv);
  return example::guarded_main("decouple", [&]() -> int {
    namespace fs = std::filesystem;
    f.check();
    sf.check();
    omp_set_num_threads(f.threads);
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
    const ltl::data::standard_augment aug{.crop = {.pad = 4}, .flip = {.p = 0.5}, .norm = norm};
    // --faithful: the frozen backbone on the chosen device (examples/device.hpp), built only then.
    std::optional<cl::any_feature_source<float>> through;
    if (faithful)
      through = example::backbone_on_device(
          f.device, model,
          [&](auto dev) { return ltl::nn::resnet_cifar<float, decltype(dev)>(example::model_options(f, C, test.channels())); },
          [&]<class D>(ltl::nn::resnet_cifar<float, D>& m) {
            ltl::train::load_checkpoint(ckpt, static_cast<ltl::nn::module<float, D>&>(m), nullptr);
          },
          train, [aug](ltl::tensor<float>& x, ltl::rng& g) { aug(x, g); }, f.seed);
    const example::stage2_inputs in{.train = ftr, .report = fte, .tune = tune, .tuned_on = tuned_on,
                                    .classifier = model.classifier_ptr(), .counts = counts,
                                    .cosine_scale = f.policy.scale};
    const auto res = example::run_stage2(in, sf, f.seed, through ? &*through : nullptr);
    fmt::print("\ntest accuracy (%), tau chosen on the {}{}\n", tuned_on, faithful ? ", cRT/LWS with augmentation" : "");
    const auto table = example::print_stage2_table(res, in, sf.worst);
    const nlohmann::json out{{"checkpoint", ckpt.string()}, {"epoch", state.epoch},  {"tuned_on", tuned_on},
                             {"faithful", faithful},        {"train_counts", counts}, {"table", table["table"]},
                             {"not_applicable", table["not_applicable"]}, {"tau_curves", res.curves},
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
