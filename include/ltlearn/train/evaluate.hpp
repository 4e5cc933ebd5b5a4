#pragma once
/// \file
/// Evaluation of a staged model on a dataset: loss, top-1/top-5, per-class and shot-group
/// accuracy, ECE and the confusion matrix, in eval mode without recording a graph.

#include "ltlearn/data/batch.hpp"
#include "ltlearn/data/dataset.hpp"
#include "ltlearn/data/transforms.hpp"
#include "ltlearn/losses/fused_loss.hpp"
#include "ltlearn/metrics/classification.hpp"
#include "ltlearn/nn/staged_model.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <numeric>
#include <vector>

namespace ltl::train {

/// What evaluate() measures.
struct eval_report {
  index_t n = 0;
  double loss = 0;            ///< mean cross-entropy of the plain logits
  double top1 = 0;            ///< plain accuracy
  double top5 = 0;
  double mean_per_class = 0;  ///< equals top1 on a balanced set
  std::vector<double> per_class;
  metrics::group_accuracy shots;
  double ece = 0;
  std::vector<index_t> confusion;  ///< [C·C], row = true class

  /// The report of everything `meter` saw; `loss_sum` is the summed per-sample loss.
  static eval_report from(const metrics::classification_meter& meter, double loss_sum,
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

/// Runs `logits_of(batch_images)` over `ds` in batches and measures the predictions.
/// `train_counts` (per class) define the shot groups.
template <real_scalar T, data::dataset Ds, class Logits>
eval_report evaluate_with(Logits&& logits_of, const Ds& ds, const data::normalize& norm,
                          const std::vector<double>& train_counts, index_t batch_size = 256) {
  LTL_CHECK(ds.size() > 0, value_error, "evaluate: the dataset is empty");
  const auto C = static_cast<index_t>(ds.num_classes());
  metrics::classification_meter meter(C, std::min<index_t>(5, C));
  no_grad_guard ng;
  double loss_sum = 0;
  std::vector<index_t> idx;
  for (index_t b0 = 0; b0 < static_cast<index_t>(ds.size()); b0 += batch_size) {
    const index_t b1 = std::min<index_t>(static_cast<index_t>(ds.size()), b0 + batch_size);
    idx.resize(static_cast<std::size_t>(b1 - b0));
    std::iota(idx.begin(), idx.end(), b0);
    auto bt = data::make_batch<T>(ds, std::span<const index_t>(idx), norm);
    const variable<T> z = logits_of(variable<T>(bt.images));
    loss_sum += static_cast<double>(cross_entropy(z, bt.labels).value().item()) * static_cast<double>(b1 - b0);
    meter.add(z.value(), bt.labels);
  }
  return eval_report::from(meter, loss_sum, train_counts);
}

/// Evaluates `model` (switched to eval mode for the duration) on `ds`.
template <real_scalar T, data::dataset Ds>
eval_report evaluate(nn::staged_model<T>& model, const Ds& ds, const data::normalize& norm,
                     const std::vector<double>& train_counts, index_t batch_size = 256) {
  const bool was_training = model.is_training();
  model.eval();
  struct restore {
    nn::staged_model<T>& m;
    bool on;
    ~restore() { m.train(on); }
  } guard{model, was_training};
  return evaluate_with<T>([&](const variable<T>& x) { return model.forward(x); }, ds, norm, train_counts, batch_size);
}

}  // namespace ltl::train
