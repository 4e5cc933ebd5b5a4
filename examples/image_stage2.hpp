#pragma once
// The data side of decouple_image (stage 2 on an imagenet_lt / inat_lt checkpoint): the stage-1
// run read back from the results.json next to its checkpoint (architecture, class count and the
// flags it ran with), the same list / JSON files and --subset selections rebuilt from those
// flags (a flag given on the command line overrides stage 1's), and the cached features of each
// set through stage 1's evaluation transform: Resize(round(resolution · 256/224)) + CenterCrop,
// normalised by the dataset's mean/std — or, for a run trained with --augment cdt, the S × S
// resize + CenterCrop with its training-set mean subtracted (results.json's train_mean).
//
// Which set does what: the table is reported on the test list (ImageNet-LT / Places-LT) or on
// the validation JSON (iNaturalist 2018's val2018.json, the set the papers report on); τ is
// chosen on the validation list (ImageNet-LT / Places-LT: 20 images per class), on --tune-json
// for iNaturalist, or else on the training set's mean per-class accuracy (Kang et al. App. B.5)
// — never on the reported set.

#include "image_lt_flags.hpp"

#include <ltlearn/classifier/image_features.hpp>
#include <ltlearn/data/image/readers.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace example {

/// A stage-1 run of imagenet_lt / inat_lt as its results.json records it.
struct image_stage1 {
  std::filesystem::path file;  ///< the results.json read ("" when there is none)
  std::string arch;            ///< "" when not recorded
  index_t classes = 0;         ///< 0 when not recorded
  std::map<std::string, std::vector<std::string>> args;  ///< the flags it ran with (its "args" TOML)
  std::vector<double> train_mean;  ///< --augment cdt: the training-set mean it subtracted (else empty)

  /// Reads `results_json`; a missing file gives an empty record, an unreadable one an io_error.
  static image_stage1 read(const std::filesystem::path& results_json) {
    image_stage1 s;
    if (!std::filesystem::exists(results_json)) return s;
    s.file = results_json;
    nlohmann::json j;
    try {
      std::ifstream in(results_json);
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw ltl::io_error(fmt::format("{}: not a results file of imagenet_lt / inat_lt ({})", results_json.string(), e.what()));
    }
    if (j.contains("arch") && j["arch"].is_string()) s.arch = j["arch"].get<std::string>();
    if (j.contains("classes") && j["classes"].is_number_integer()) s.classes = j["classes"].get<index_t>();
    if (j.contains("train_mean") && j["train_mean"].is_object() && j["train_mean"].contains("mean"))
      s.train_mean = j["train_mean"]["mean"].get<std::vector<double>>();
    if (j.contains("args") && j["args"].is_string()) {
      std::istringstream text(j["args"].get<std::string>());
      for (auto& item : CLI::ConfigTOML().from_config(text))
        if (item.parents.empty()) s.args[item.name] = item.inputs;
    }
    return s;
  }
};

/// decouple_image's data flags: the stage-1 trainer's, defaulting to the values it ran with.
struct image_stage2_flags {
  std::string dataset = "imagenet", root, train_list, val_list, test_list, train_json, val_json, tune_json, arch,
              loss = "ce", augment = "rrc";
  std::vector<double> train_mean;  // stage 1's training-set mean (--augment cdt)
  index_t num_classes = 0, subset = 0, subset_images = 0, resolution = 224, eval_batch = 256;
  double scale = 30;
  int workers = 4;
  bool skip_bad_images = false;

  void add_to(CLI::App& app) {
    app.add_option("--dataset", dataset, "list files: imagenet (1000 classes) | places (365)");
    app.add_option("--root", root, "directory the lists' / JSON's paths are relative to");
    app.add_option("--train-list", train_list, "ImageNet-LT / Places-LT training list");
    app.add_option("--val-list", val_list, "validation list: tau is chosen on it");
    app.add_option("--test-list", test_list, "test list: the table is reported on it");
    app.add_option("--num-classes", num_classes, "class count of the lists (0: the dataset's, 1000 or 365)");
    app.add_option("--train-json", train_json, "iNaturalist training annotations");
    app.add_option("--val-json", val_json, "iNaturalist validation annotations: the table is reported on them");
    app.add_option("--tune-json", tune_json,
                   "iNaturalist: annotations of a held-out split to choose tau on (default: the training set's mean "
                   "per-class accuracy)");
    app.add_option("--subset", subset, "the first N classes, as stage 1");
    app.add_option("--subset-images", subset_images, "N evenly spaced training images, as stage 1");
    app.add_option("--arch", arch, "backbone (default: results.json's arch)");
    app.add_option("--loss", loss, "stage 1's loss (ldam: a cosine classifier)");
    app.add_option("--scale", scale, "stage 1's LDAM logit scale");
    app.add_option("--resolution", resolution, "stage 1's crop side (evaluation: Resize round(r*256/224) + CenterCrop r)");
    app.add_option("--augment", augment,
                   "stage 1's --augment: rrc (Resize short side + CenterCrop, dataset mean/std) | cdt (S x S resize + "
                   "CenterCrop, stage 1's training-set mean from its results.json subtracted)")
        ->check(one_of({"rrc", "cdt"}));
    app.add_option("--eval-batch-size", eval_batch, "images per backbone pass");
    app.add_option("--workers", workers, "loader threads (batches decoded ahead)");
    app.add_flag("--skip-bad-images", skip_bad_images, "log and skip unreadable images (a skipped item's row repeats the next image)");
  }

  /// Every flag not given on the command line takes stage 1's value (from its results.json).
  void inherit(const CLI::App& app, const image_stage1& s1) {
    auto from = [&](const std::string& name, auto& value) {
      const auto it = s1.args.find(name);
      if (app.count("--" + name) > 0 || it == s1.args.end() || it->second.size() != 1) return;
      const std::string& v = it->second.front();
      using V = std::decay_t<decltype(value)>;
      if constexpr (std::is_same_v<V, std::string>) value = v;
      else if constexpr (std::is_same_v<V, bool>) value = v == "true" || v == "1";
      else if constexpr (std::is_same_v<V, double>) value = std::stod(v);
      else value = static_cast<V>(std::stoll(v));
    };
    for (auto [name, s] : {std::pair{"dataset", &dataset}, std::pair{"root", &root}, std::pair{"train-list", &train_list},
                           std::pair{"val-list", &val_list}, std::pair{"test-list", &test_list},
                           std::pair{"train-json", &train_json}, std::pair{"val-json", &val_json},
                           std::pair{"arch", &arch}, std::pair{"loss", &loss}, std::pair{"augment", &augment}})
      from(name, *s);
    for (auto [name, n] : {std::pair{"num-classes", &num_classes}, std::pair{"subset", &subset},
                           std::pair{"subset-images", &subset_images}, std::pair{"resolution", &resolution},
                           std::pair{"eval-batch-size", &eval_batch}})
      from(name, *n);
    from("scale", scale);
    from("workers", workers);
    from("skip-bad-images", skip_bad_images);
    if (arch.empty()) arch = s1.arch;
    train_mean = s1.train_mean;
  }
};

/// The encoded sets of a stage-2 run, as stage 1 selected them.
struct image_sets {
  ltl::data::encoded_dataset train, report, tune;  // tune: empty when τ is chosen on the training set
  std::string report_name, tune_name;              // the files they come from
  std::vector<double> mean, stddev;
};

/// Reads the lists (ImageNet-LT / Places-LT) or the JSON (iNaturalist) that `d` names.
inline image_sets load_image_sets(const image_stage2_flags& d) {
  namespace ld = ltl::data;
  const bool lists = !d.train_list.empty(), json = !d.train_json.empty();
  LTL_CHECK(lists != json, value_error,
            "give one training set, --train-list (ImageNet-LT / Places-LT) or --train-json "
            "(iNaturalist) — or --out of an imagenet_lt / inat_lt run, whose results.json names it{}",
            lists ? " (both were given)" : "");
  image_sets s;
  if (lists) {
    LTL_CHECK(!d.test_list.empty(), value_error,
              "--test-list is needed: the table is reported on the test set (tau is chosen on "
              "--val-list, never on it)");
    const index_t C = d.num_classes > 0 ? d.num_classes : d.dataset == "places" ? 365 : 1000;
    s.train = evenly_spaced(first_classes(ld::read_image_list(d.train_list, d.root, C, "train"), d.subset),
                            d.subset_images);
    s.report = first_classes(ld::read_image_list(d.test_list, d.root, C, "test"), d.subset);
    s.report_name = d.test_list;
    if (!d.val_list.empty()) {
      LTL_CHECK(d.val_list != d.test_list, value_error,
                "--val-list and --test-list are both {}: tau would be chosen on the reported set",
                d.val_list);
      s.tune = first_classes(ld::read_image_list(d.val_list, d.root, C, "val"), d.subset);
      s.tune_name = d.val_list;
    }
    s.mean = ld::imagenet_mean, s.stddev = ld::imagenet_std;
  } else {
    LTL_CHECK(!d.val_json.empty(), value_error, "--val-json is needed: the table is reported on it");
    ld::category_map categories;
    s.train = evenly_spaced(first_classes(ld::read_inat(d.train_json, d.root, nullptr, &categories, "train"), d.subset),
                            d.subset_images);
    s.report = first_classes(ld::read_inat(d.val_json, d.root, &categories, nullptr, "val"), d.subset);
    s.report_name = d.val_json;
    if (!d.tune_json.empty()) {
      LTL_CHECK(d.tune_json != d.val_json, value_error,
                "--tune-json and --val-json are both {}: tau would be chosen on the reported set",
                d.val_json);
      s.tune = first_classes(ld::read_inat(d.tune_json, d.root, &categories, nullptr, "tune"), d.subset);
      s.tune_name = d.tune_json;
    }
    s.mean = ld::inat_mean, s.stddev = ld::inat_std;
  }
  if (d.augment == "cdt") {
    LTL_CHECK(d.train_mean.size() == 3, value_error,
              "--augment cdt evaluates with stage 1's training-set mean, and no results.json with a train_mean was "
              "found next to the checkpoint");
    s.mean = d.train_mean, s.stddev = {1.0, 1.0, 1.0};
    fmt::print("evaluation transform of --augment cdt: resize to S x S, centre crop, stage 1's training-set mean "
               "[{:.6f}, {:.6f}, {:.6f}] subtracted\n", s.mean[0], s.mean[1], s.mean[2]);
  }
  return s;
}

/// Features of every image of `ds` through the evaluation transform; unreadable images are
/// stopped at, or (--skip-bad-images) logged and added to `bad`.
template <class D>
ltl::classifier::feature_table<float> image_features(ltl::nn::staged_model<float, D>& model,
                                                    const ltl::data::encoded_dataset& ds, const image_stage2_flags& d,
                                                    const image_sets& s, std::vector<std::string>& bad) {
  namespace ld = ltl::data;
  image_run_flags r;
  r.resolution = d.resolution;
  r.augment = d.augment;
  const ld::image_pipeline<float> src(
      ds, {.transform = r.transforms(s.mean, s.stddev).second,
           .on_bad_image = d.skip_bad_images ? ld::bad_image_policy::replace : ld::bad_image_policy::stop,
           .log = [](const std::string& line) { fmt::print(stderr, "{}\n", line); }});
  auto t = ltl::classifier::extract_image_features(model, src, {.batch_size = d.eval_batch, .workers = d.workers});
  for (auto& b : src.bad_images()) bad.push_back(b);
  return t;
}

}  // namespace example
