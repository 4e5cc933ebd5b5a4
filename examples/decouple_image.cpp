// decouple_image: stage 2 of decoupled training (Kang et al., ICLR 2020; SPEC §9) on an
// imagenet_lt or inat_lt checkpoint — decouple's table (joint, NCM, cRT, τ-norm, LWS, N_c^τ,
// post-hoc logit adjustment, learned τ; stage2_rules.hpp) with many / medium / few / all.
// The backbone (the ResNet / ResNeXt of results.json's "arch") runs once over each set with the
// evaluation transform; every rule then works on these cached features, cRT and LWS included
// (classifier/image_features.hpp says what that forgoes against Kang et al.'s augmented stage 2)
// — or, with --faithful, cRT and LWS train on the frozen backbone's features of the training
// images augmented anew in every batch with stage 1's training transform, as Kang et al. do.
// The run's data flags are read from the results.json next to the checkpoint; flags given here
// override them. τ is chosen on the validation list (or --tune-json, or the training set's mean
// per-class accuracy), never on the reported set (image_stage2.hpp).
//
//   imagenet_lt --root /data/imagenet --train-list ImageNet_LT_train.txt --val-list ImageNet_LT_val.txt
//               --test-list ImageNet_LT_test.txt --out runs/inlt && decouple_image --out runs/inlt
//   inat_lt --root /data/inat2018 --train-json train2018.json --val-json val2018.json --out runs/inat
//   decouple_image --out runs/inat --no-retrain          # the post-hoc rules only: one pass, then seconds
//   decouple_image --out runs/inlt --faithful --device cuda   # cRT / LWS on augmented crops (GPU build)
#include "main_guard.hpp"
#include "image_stage2.hpp"
#include "report.hpp"
#include "stage2_rules.hpp"

#include <ltlearn/classifier/image_features.hpp>
#include <ltlearn/nn/models/torchvision.hpp>
#include <ltlearn/train/checkpoint.hpp>

#include <omp.h>

#include <algorithm>
#include <optional>
#include <type_traits>

int main(int argc, char** argv) {
  CLI::App app{"Decoupled classifiers on an imagenet_lt / inat_lt checkpoint (Kang et al. Table 2)"};
  std::string out = "runs/imagenet_lt", checkpoint, device = "cpu";
  std::uint64_t seed = 0;
  int threads = 2;
  bool faithful = false;
  example::image_stage2_flags d;
  example::stage2_flags sf;
  app.add_option("--out", out,
                 "the stage-1 run's directory: its checkpoint.safetensors and results.json are read, decouple.json "
                 "and decouple_config.toml written")->capture_default_str();
  app.add_option("--checkpoint", checkpoint,
                 "stage-1 checkpoint (default: <out>/checkpoint.safetensors; its directory's results.json gives the "
                 "defaults of the data flags)");
  d.add_to(app);
  sf.add_to(app);
  app.add_option("--seed", seed, "stage-2 sampling, initialisation and (--faithful) augmentation")->capture_default_str();
  app.add_flag("--faithful", faithful,
               "cRT / LWS on the training images augmented with stage 1's training transform in every batch, "
               "through the frozen backbone (Kang et al.; a backbone pass per batch) instead of cached centre crops");
  app.add_option("--threads", threads, "OpenMP threads")->capture_default_str();
  example::add_device_option(app, device);  // the backbone pass; the heads are fitted on the host
  CLI11_PARSE(app, argc, argv);
  return example::guarded_main("decouple_image", [&]() -> int {
    namespace fs = std::filesystem;
    namespace cl = ltl::classifier;
    sf.check();
    omp_set_num_threads(threads);
    const fs::path ckpt = checkpoint.empty() ? fs::path(out) / "checkpoint.safetensors" : fs::path(checkpoint);
    const auto s1 = example::image_stage1::read(ckpt.parent_path() / "results.json");
    d.inherit(app, s1);
    const auto sets = example::load_image_sets(d);
    const ltl::index_t C = sets.train.num_classes();
    LTL_CHECK(s1.classes == 0 || s1.classes == C, value_error,
              "{} was trained on {} classes ({}), the training set here has {}: pass stage 1's lists, --num-classes "
              "and --subset", ckpt.string(), s1.classes, s1.file.string(), C);
    LTL_CHECK(!d.arch.empty(), value_error, "no architecture: {}; pass --arch",
              s1.file.empty() ? "there is no results.json next to the checkpoint" : s1.file.string() + " records none");
    auto mo = ltl::nn::torchvision_resnet_options(d.arch, C, seed);
    mo.normed_classifier = d.loss == "ldam";
    ltl::nn::resnet<float> model(mo);
    const auto state = ltl::train::load_checkpoint(ckpt, static_cast<ltl::nn::module<float>&>(model), nullptr);
    // The trainer's run fingerprint names the training subset (train/run_guard.hpp); checkpoints
    // of earlier versions carried it as extra["train_hash"].
    nlohmann::json hash;
    if (auto fp = state.extra.find("fingerprint"); fp != state.extra.end() && fp->is_object() && fp->contains("train_data"))
      hash = (*fp)["train_data"];
    else if (auto h = state.extra.find("train_hash"); h != state.extra.end())
      hash = *h;
    LTL_CHECK(hash.is_null() || hash == sets.train.hash_hex(), value_error,
              "{} was trained on another training set (hash {}, here {}): pass stage 1's lists, --subset and "
              "--subset-images", ckpt.string(), hash.dump(), sets.train.hash_hex());
    fmt::print("stage 1: {} ({}, epoch {})\ntrain {}\n", ckpt.string(), d.arch, state.epoch, sets.train.summary());
    example::write_config(out, "decouple_config.toml", app.config_to_str(true, false));

    // Features once per set (eval mode, evaluation transform); every rule reuses them. With
    // --device cuda the backbone pass runs on the GPU (the checkpoint loaded into a model there);
    // the heads are fitted and evaluated on the host from the cached features.
    std::vector<std::string> bad;
    const bool held_out = !sets.tune.empty();
    cl::feature_table<float> ftr, frep, ftune;
    const std::string tuned_on = held_out ? "held-out split (" + sets.tune_name + ")" : "training mean per-class accuracy";
    std::vector<double> counts;  // the training set's, as stage 1 reported its shot groups
    for (auto n : sets.train.class_counts()) counts.push_back(static_cast<double>(n));
    // --faithful: stage 1's training transform (its --augment; colour jitter except on iNaturalist).
    example::image_run_flags r;
    r.resolution = d.resolution;
    r.augment = d.augment;
    r.jitter = d.train_json.empty();
    const ltl::data::image_pipeline<float> augmented(
        sets.train, {.transform = r.transforms(sets.mean, sets.stddev).first,
                     .on_bad_image = d.skip_bad_images ? ltl::data::bad_image_policy::replace
                                                       : ltl::data::bad_image_policy::stop,
                     .log = [](const std::string& line) { fmt::print(stderr, "{}\n", line); }});
    // The tables are filled by the backbone pass below; the rules read them through these references.
    const example::stage2_inputs in{.train = ftr, .report = frep, .tune = held_out ? ftune : ftr, .tuned_on = tuned_on,
                                    .classifier = model.classifier_ptr(), .counts = counts, .cosine_scale = d.scale};
    std::optional<example::stage2_results> res;
    example::with_device(device, [&](auto dev) {
      using D = decltype(dev);
      // The cached features of each set; then the rules, cRT / LWS on the backbone when --faithful.
      auto run = [&](auto& m) {
        ftr = example::image_features(m, sets.train, d, sets, bad);
        frep = example::image_features(m, sets.report, d, sets, bad);
        if (held_out) ftune = example::image_features(m, sets.tune, d, sets, bad);
        if (!faithful) {
          res = example::run_stage2(in, sf, seed);
          return;
        }
        const cl::image_backbone_source<float, D> src(m, augmented, sf.s2.batch_size, seed);
        res = example::run_stage2(in, sf, seed, &src);
      };
      if constexpr (std::is_same_v<D, ltl::cpu::device>) {
        run(model);
      } else {
        ltl::nn::resnet<float, D> on_device(mo);
        ltl::train::load_checkpoint(ckpt, static_cast<ltl::nn::module<float, D>&>(on_device), nullptr);
        run(on_device);
      }
      return 0;
    });
    for (auto& b : augmented.bad_images()) bad.push_back(b);
    std::sort(bad.begin(), bad.end());  // --faithful meets the training set's bad files twice
    bad.erase(std::unique(bad.begin(), bad.end()), bad.end());
    if (d.skip_bad_images) fmt::print("bad images skipped: {}\n", bad.size());
    fmt::print("\naccuracy (%) on {}, tau chosen on the {}, cRT/LWS on {}\n", sets.report_name, tuned_on,
               faithful ? "augmented crops through the backbone" : "cached features");
    const auto table = example::print_stage2_table(*res, in, sf.worst);
    const nlohmann::json report{{"checkpoint", ckpt.string()},
                                {"epoch", state.epoch},
                                {"arch", d.arch},
                                {"classes", C},
                                {"reported_on", sets.report_name},
                                {"tuned_on", tuned_on},
                                {"cached_features", !faithful},
                                {"train_counts", counts},
                                {"table", table["table"]},
                                {"not_applicable", table["not_applicable"]},
                                {"tau_curves", res->curves},
                                {"bad_images", {{"count", bad.size()}, {"files", bad}}},
                                {"args", app.config_to_str(true, false)}};
    ltl::io::create_output_dir(out);
    example::write_json_atomically(fs::path(out) / "decouple.json", report);
    fmt::print("wrote {}\n", (fs::path(out) / "decouple.json").string());
    return 0;
  });
}
