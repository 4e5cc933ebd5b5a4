#pragma once
/// \file
/// The papers' per-class analysis of a model (SPEC §11), on any checkpoint or after every
/// epoch of training: per-class training and test accuracy, shot groups, top-1/top-5, the test
/// confusion matrix, classifier norms ‖w_c‖, feature deviation dis(c) (CDT paper §3.3), the
/// feature-gradient norm ‖∇_{g(x)} ℓ‖₂ at a model point averaged per class (MFW paper Fig. 4),
/// the classification ratio (MFW App. A.1) and ECE overall and per shot group.
///
/// This header holds the report and its options; eval/analysis.hpp computes it from a model and
/// datasets (metrics/ depends only on core and tensor). The per-class quantities themselves live
/// in metrics/class_analysis.hpp and metrics/calibration.hpp.

#include "ltlearn/metrics/calibration.hpp"
#include "ltlearn/metrics/class_analysis.hpp"
#include "ltlearn/metrics/classification.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

namespace ltl::metrics {

/// What eval::analyze() computes.
struct analysis_options {
  std::string point = "stage1";  ///< where ‖∇_{g(x)} ℓ‖ is measured (MFW's default mixing point)
  bool gradients = true;         ///< compute the feature-gradient norms
  bool deviation = true;         ///< compute dis(c)
  deviation_options dev{};
  index_t batch_size = 256;
  int ece_bins = 15;
};

/// Per-class analysis of one model state (eval::analyze). Per-class vectors have C entries (NaN: undefined).
struct analysis_report {
  index_t epoch = -1;  ///< epoch index when recorded during training (−1: a checkpoint)
  std::vector<double> train_counts;
  std::vector<double> train_accuracy, test_accuracy;  ///< per class
  double train_mean_per_class = 0, test_top1 = 0, test_top5 = 0, test_mean_per_class = 0;
  group_accuracy test_shots;
  std::vector<index_t> test_confusion;  ///< [C·C], row = true class
  std::vector<double> classifier_norms;  ///< empty when the head has no [C, F] "weight"
  std::vector<double> feature_deviation;
  std::vector<double> grad_norms;  ///< mean over the class's training images
  std::string grad_point;
  std::vector<double> classification_ratio;
  double test_ece = 0;
  std::optional<double> test_ece_many, test_ece_medium, test_ece_few;

  [[nodiscard]] nlohmann::json to_json() const {
    auto opt = [](const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); };
    auto vec = [](const std::vector<double>& v) {
      nlohmann::json a = nlohmann::json::array();
      for (double x : v) a.push_back(std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr));
      return a;
    };
    nlohmann::json shots = nlohmann::json::array();
    for (double n : train_counts) shots.push_back(to_string(classify_shot(static_cast<index_t>(n))));
    return {{"epoch", epoch},
            {"train_counts", train_counts},
            {"shot_group", shots},
            {"train_accuracy", vec(train_accuracy)},
            {"test_accuracy", vec(test_accuracy)},
            {"train_mean_per_class", train_mean_per_class},
            {"test_top1", test_top1},
            {"test_top5", test_top5},
            {"test_mean_per_class", test_mean_per_class},
            {"test_many", opt(test_shots.many)},
            {"test_medium", opt(test_shots.medium)},
            {"test_few", opt(test_shots.few)},
            {"test_confusion", test_confusion},
            {"classifier_norms", vec(classifier_norms)},
            {"feature_deviation", vec(feature_deviation)},
            {"grad_norms", vec(grad_norms)},
            {"grad_point", grad_point},
            {"classification_ratio", vec(classification_ratio)},
            {"test_ece", test_ece},
            {"test_ece_many", opt(test_ece_many)},
            {"test_ece_medium", opt(test_ece_medium)},
            {"test_ece_few", opt(test_ece_few)}};
  }
};

/// Writes `j` to `path` (pretty-printed); io_error on failure.
inline void write_json(const std::filesystem::path& path, const nlohmann::json& j) {
  std::ofstream f(path);
  f << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';  // non-UTF-8 bytes (paths): U+FFFD
  LTL_CHECK(f.good(), io_error, "{}: cannot write", path.string());
}

}  // namespace ltl::metrics
