#pragma once
/// \file
/// The papers' per-class analysis of a model (SPEC §11), on any checkpoint or after every
/// epoch of training: per-class training and test accuracy, shot groups, top-1/top-5, the test
/// confusion matrix, classifier norms ‖w_c‖, feature deviation dis(c) (CDT paper §3.3), the
/// feature-gradient norm ‖∇_{g(x)} ℓ‖₂ at a model point averaged per class (MFW paper Fig. 4),
/// the classification ratio (MFW App. A.1) and ECE overall and per shot group.
///
/// Everything runs in eval mode (batch-norm running statistics) on un-augmented images, and
/// leaves the model as it found it: mode, parameter gradients and requires_grad flags. With
/// eval-mode batch-norm every sample's loss depends only on its own g(x), so the gradient of
/// Σ_i ℓ_i with respect to the batch's g is each sample's own ∇_{g(x_i)} ℓ_i.
///
/// This header composes a model with datasets, so it depends on nn/ and data/; the pure
/// per-class quantities live in metrics/class_analysis.hpp and metrics/calibration.hpp.

#include "ltlearn/data/batch.hpp"
#include "ltlearn/data/dataset.hpp"
#include "ltlearn/data/transforms.hpp"
#include "ltlearn/losses/fused_loss.hpp"
#include "ltlearn/metrics/calibration.hpp"
#include "ltlearn/metrics/class_analysis.hpp"
#include "ltlearn/metrics/classification.hpp"
#include "ltlearn/nn/staged_model.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

namespace ltl::metrics {

/// What analyze() computes.
struct analysis_options {
  std::string point = "stage1";  ///< where ‖∇_{g(x)} ℓ‖ is measured (MFW's default mixing point)
  bool gradients = true;         ///< compute the feature-gradient norms
  bool deviation = true;         ///< compute dis(c)
  deviation_options dev{};
  index_t batch_size = 256;
  int ece_bins = 15;
};

/// Per-class analysis of one model state. Per-class vectors have C entries (NaN: undefined).
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

namespace detail {
/// Restores a model's mode and its parameters' requires_grad flags; enables graph recording.
template <real_scalar T>
class analysis_scope {
 public:
  explicit analysis_scope(nn::staged_model<T>& m) : m_(m), training_(m.is_training()), grad_(ltl::detail::grad_mode_flag()) {
    for (auto& [n, p] : m.named_parameters()) params_.emplace_back(p, p.requires_grad());
    m.eval();
    m.requires_grad(false);
    ltl::detail::grad_mode_flag() = true;
  }
  ~analysis_scope() {
    for (auto& [p, on] : params_) p.set_requires_grad(on);
    m_.train(training_);
    ltl::detail::grad_mode_flag() = grad_;
  }
  analysis_scope(const analysis_scope&) = delete;
  analysis_scope& operator=(const analysis_scope&) = delete;

 private:
  nn::staged_model<T>& m_;
  bool training_, grad_;
  std::vector<std::pair<variable<T>, bool>> params_;
};

/// One pass over `ds`: features f(x) [N, F] into `feats`, logits into `meter` (and `cal`),
/// and with `point` ≥ 0 the per-sample ‖∇_{g(x)} ℓ‖₂ (ℓ: cross-entropy) into `grad_norm` [N].
template <real_scalar T, data::dataset Ds>
void analysis_pass(nn::staged_model<T>& model, const Ds& ds, const data::normalize& norm, index_t batch_size, int point,
                   tensor<T>& feats, tensor<std::int64_t>& labels, classification_meter& meter,
                   calibration_meter* cal, std::vector<double>* grad_norm) {
  const auto N = static_cast<index_t>(ds.size());
  const int fp = model.feature_point();
  labels = tensor<std::int64_t>(shape{N});
  std::vector<index_t> idx;
  for (index_t b0 = 0; b0 < N; b0 += batch_size) {
    const index_t b1 = std::min(N, b0 + batch_size), B = b1 - b0;
    idx.resize(static_cast<std::size_t>(B));
    std::iota(idx.begin(), idx.end(), b0);
    auto bt = data::make_batch<T>(ds, std::span<const index_t>(idx), norm);
    variable<T> f, z;
    if (point >= 0) {
      variable<T> g;
      {
        no_grad_guard ng;
        g = variable<T>(model.run(variable<T>(bt.images), -1, point).value(), true);
      }
      f = model.run(g, point, fp);
      z = model.classify(f);
      affine(cross_entropy(z, bt.labels), static_cast<T>(B), T(0)).backward();  // Σ_i ℓ_i
      const auto gr = g.grad().contiguous();
      const index_t per = gr.numel() / B;
      for (index_t i = 0; i < B; ++i) {
        double s = 0;
        for (index_t j = 0; j < per; ++j) s += static_cast<double>(gr.data()[i * per + j]) * gr.data()[i * per + j];
        (*grad_norm)[static_cast<std::size_t>(b0 + i)] = std::sqrt(s);
      }
    } else {
      no_grad_guard ng;
      f = model.features(variable<T>(bt.images));
      z = model.classify(f);
    }
    const auto fv = f.value().contiguous();
    if (!feats.defined()) feats = tensor<T>(shape{N, fv.size(1)});
    std::copy_n(fv.data(), fv.numel(), feats.data() + b0 * fv.size(1));
    std::copy_n(bt.labels.data(), B, labels.data() + b0);
    meter.add(z.value(), bt.labels);
    if (cal) cal->add(z.value(), bt.labels);
  }
}
}  // namespace detail

/// Mean ‖∇_{g(x)} ℓ‖₂ per class over `ds` at model point `point` (MFW Fig. 4), ℓ the
/// per-sample cross-entropy of the plain logits. NaN for classes without images.
template <real_scalar T, data::dataset Ds>
std::vector<double> feature_gradient_norms(nn::staged_model<T>& model, const Ds& ds, const data::normalize& norm,
                                           const std::string& point, index_t batch_size = 256) {
  const int p = model.point(point);
  LTL_CHECK(p < model.last_point(), value_error, "feature_gradient_norms: point '{}' is the logits", point);
  detail::analysis_scope<T> scope(model);
  const auto C = static_cast<index_t>(ds.num_classes());
  classification_meter meter(C, 1);
  tensor<T> f;
  tensor<std::int64_t> y;
  std::vector<double> g(static_cast<std::size_t>(ds.size()));
  detail::analysis_pass(model, ds, norm, batch_size, p, f, y, meter, nullptr, &g);
  std::vector<double> sum(static_cast<std::size_t>(C), 0.0), n(static_cast<std::size_t>(C), 0.0);
  for (std::size_t i = 0; i < g.size(); ++i) {
    sum[static_cast<std::size_t>(y.data()[i])] += g[i];
    n[static_cast<std::size_t>(y.data()[i])] += 1;
  }
  for (std::size_t c = 0; c < sum.size(); ++c) sum[c] = n[c] > 0 ? sum[c] / n[c] : NAN;
  return sum;
}

/// Analyses `model` on its training set `train` and the balanced `test` set.
template <real_scalar T, data::dataset Ds>
analysis_report analyze(nn::staged_model<T>& model, const Ds& train, const Ds& test, const data::normalize& norm,
                        const analysis_options& o = {}) {
  const auto C = static_cast<index_t>(train.num_classes());
  LTL_CHECK(static_cast<index_t>(test.num_classes()) == C && train.size() > 0 && test.size() > 0, value_error,
            "analyze: train ({} images, {} classes) and test ({} images, {} classes) do not match", train.size(),
            train.num_classes(), test.size(), test.num_classes());
  const int p = o.gradients ? model.point(o.point) : -1;
  LTL_CHECK(p < model.last_point(), value_error, "analyze: point '{}' is the logits", o.point);
  analysis_report r;
  r.train_counts.assign(static_cast<std::size_t>(C), 0.0);
  for (index_t i = 0; i < static_cast<index_t>(train.size()); ++i) r.train_counts[static_cast<std::size_t>(train.label(i))] += 1;
  detail::analysis_scope<T> scope(model);

  classification_meter tr_meter(C, std::min<index_t>(5, C)), te_meter(C, std::min<index_t>(5, C));
  calibration_meter cal(r.train_counts, o.ece_bins);
  tensor<T> ftr, fte;
  tensor<std::int64_t> ytr, yte;
  std::vector<double> g(static_cast<std::size_t>(train.size()));
  detail::analysis_pass(model, train, norm, o.batch_size, p, ftr, ytr, tr_meter, nullptr, p >= 0 ? &g : nullptr);
  detail::analysis_pass(model, test, norm, o.batch_size, -1, fte, yte, te_meter, &cal, nullptr);

  r.train_accuracy = tr_meter.per_class();
  r.train_mean_per_class = tr_meter.mean_per_class();
  r.test_accuracy = te_meter.per_class();
  r.test_top1 = te_meter.top1();
  r.test_top5 = te_meter.topk();
  r.test_mean_per_class = te_meter.mean_per_class();
  r.test_shots = te_meter.by_shot(r.train_counts);
  r.test_confusion = te_meter.confusion();
  r.classification_ratio = classification_ratio(tr_meter.confusion(), r.train_counts);
  r.test_ece = cal.ece();
  r.test_ece_many = cal.ece(shot_group::many);
  r.test_ece_medium = cal.ece(shot_group::medium);
  r.test_ece_few = cal.ece(shot_group::few);
  for (auto& [name, t] : model.classifier().state_dict())
    if (name == "weight" && t.dim() == 2 && t.size(0) == C) r.classifier_norms = weight_norms(t);
  if (o.deviation) r.feature_deviation = feature_deviation(ftr, ytr, fte, yte, C, o.dev);
  if (p >= 0) {
    r.grad_point = o.point;
    std::vector<double> sum(static_cast<std::size_t>(C), 0.0);
    for (std::size_t i = 0; i < g.size(); ++i) sum[static_cast<std::size_t>(ytr.data()[i])] += g[i];
    for (std::size_t c = 0; c < sum.size(); ++c) sum[c] = r.train_counts[c] > 0 ? sum[c] / r.train_counts[c] : NAN;
    r.grad_norms = std::move(sum);
  }
  return r;
}

/// Writes `j` to `path` (pretty-printed); io_error on failure.
inline void write_json(const std::filesystem::path& path, const nlohmann::json& j) {
  std::ofstream f(path);
  f << j.dump(2) << '\n';
  LTL_CHECK(f.good(), io_error, "{}: cannot write", path.string());
}

/// A trainer.on_epoch_end callback: every `every` epochs, analyses the model and appends the
/// report (with its epoch) as one JSON line to `out` (e.g. run_dir/analysis.jsonl).
template <real_scalar T, data::dataset Ds>
class analysis_recorder {
 public:
  analysis_recorder(nn::staged_model<T>& model, const Ds& train, const Ds& test, data::normalize norm,
                    std::filesystem::path out, analysis_options o = {}, index_t every = 1)
      : model_(&model), train_(&train), test_(&test), norm_(std::move(norm)), out_(std::move(out)), o_(std::move(o)),
        every_(every) {
    LTL_CHECK(every > 0, value_error, "analysis_recorder: every must be positive, got {}", every);
  }
  /// Accepts any summary with an `epoch` member (train::epoch_summary).
  template <class Summary>
  void operator()(const Summary& s) const {
    if ((s.epoch + 1) % every_ != 0) return;
    auto r = analyze(*model_, *train_, *test_, norm_, o_);
    r.epoch = s.epoch;
    std::ofstream f(out_, std::ios::app);
    f << r.to_json().dump() << '\n';
    LTL_CHECK(f.good(), io_error, "{}: cannot append the analysis", out_.string());
  }

 private:
  nn::staged_model<T>* model_;
  const Ds* train_;
  const Ds* test_;
  data::normalize norm_;
  std::filesystem::path out_;
  analysis_options o_;
  index_t every_;
};

}  // namespace ltl::metrics
