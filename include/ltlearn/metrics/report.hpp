#pragma once
/// \file
/// metrics::eval_report: the summary of one evaluation — loss, top-1/top-5, per-class and
/// shot-group accuracy, ECE and the confusion matrix — built from a classification_meter, and
/// its JSON form (the "test"/"val" objects of results.json, eval.json and log.jsonl).

#include "ltlearn/metrics/classification.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <optional>
#include <vector>

namespace ltl::metrics {

/// What an evaluation measures (eval::evaluate on images, classifier::evaluate_features on
/// cached features).
struct eval_report {
  index_t n = 0;
  double loss = 0;            ///< mean cross-entropy of the plain logits
  double top1 = 0;            ///< plain accuracy
  double top5 = 0;
  double mean_per_class = 0;  ///< equals top1 on a balanced set
  std::vector<double> per_class;
  group_accuracy shots;
  double ece = 0;
  std::vector<index_t> confusion;  ///< [C·C], row = true class

  /// The report of everything `meter` saw; `loss_sum` is the summed per-sample loss.
  static eval_report from(const classification_meter& meter, double loss_sum,
                          const std::vector<double>& train_counts) {
    eval_report r;
    r.n = meter.count();
    r.loss = r.n ? loss_sum / static_cast<double>(r.n) : 0.0;
    r.top1 = meter.top1();
    r.top5 = meter.topk();
    r.mean_per_class = meter.mean_per_class();
    r.per_class = meter.per_class();
    r.shots = meter.by_shot(train_counts);
    r.ece = meter.ece();
    r.confusion = meter.confusion();
    return r;
  }

  /// The report as JSON; with `with_confusion`, also "confusion": C rows (true class) of C counts
  /// (predicted class) — C² numbers, so left out of per-epoch logs.
  [[nodiscard]] nlohmann::json to_json(bool with_confusion = false) const {
    auto opt = [](const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); };
    nlohmann::json pc = nlohmann::json::array();
    for (double a : per_class) pc.push_back(std::isnan(a) ? nlohmann::json(nullptr) : nlohmann::json(a));
    nlohmann::json j{{"n", n},          {"loss", loss},   {"top1", top1},           {"top5", top5},
                     {"mean_per_class", mean_per_class}, {"per_class", pc},       {"many", opt(shots.many)},
                     {"medium", opt(shots.medium)},      {"few", opt(shots.few)}, {"ece", ece}};
    if (with_confusion) {
      const auto C = per_class.size();
      LTL_CHECK(confusion.size() == C * C, value_error, "eval_report: the confusion matrix has {} entries, not {}²",
                confusion.size(), C);
      nlohmann::json rows = nlohmann::json::array();
      for (std::size_t t = 0; t < C; ++t)
        rows.push_back(std::vector<index_t>(confusion.begin() + static_cast<std::ptrdiff_t>(t * C),
                                            confusion.begin() + static_cast<std::ptrdiff_t>((t + 1) * C)));
      j["confusion"] = std::move(rows);
    }
    return j;
  }
};

}  // namespace ltl::metrics
