#pragma once
/// \file
/// The papers' per-class analysis of a model (SPEC §11; the report is metrics::analysis_report),
/// on any checkpoint or after every epoch of training: per-class training and test accuracy,
/// shot groups, top-1/top-5, the test confusion matrix, classifier norms ‖w_c‖, feature
/// deviation dis(c) (CDT paper §3.3), the feature-gradient norm ‖∇_{g(x)} ℓ‖₂ at a model point
/// averaged per class (MFW paper Fig. 4), the classification ratio (MFW App. A.1) and ECE
/// overall and per shot group.
///
/// Everything runs in eval mode (batch-norm running statistics) on un-augmented images, and
/// leaves the model as it found it: mode, parameter gradients and requires_grad flags. With
/// eval-mode batch-norm every sample's loss depends only on its own g(x), so the gradient of
/// Σ_i ℓ_i with respect to the batch's g is each sample's own ∇_{g(x_i)} ℓ_i.

#include "ltlearn/eval/batched_pass.hpp"
#include "ltlearn/losses/fused_loss.hpp"
#include "ltlearn/metrics/analysis.hpp"
#include "ltlearn/ops/elementwise.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace ltl::eval {

namespace detail {
/// Freezes a model's parameters (requires_grad off) for a scope and restores each flag.
template <real_scalar T, device D>
class frozen_parameters {
 public:
  explicit frozen_parameters(nn::module<T, D>& m) {
    for (auto& [n, p] : m.named_parameters()) params_.emplace_back(p, p.requires_grad());
    m.requires_grad(false);
  }
  ~frozen_parameters() {
    for (auto& [p, on] : params_) p.set_requires_grad(on);
  }
  frozen_parameters(const frozen_parameters&) = delete;
  frozen_parameters& operator=(const frozen_parameters&) = delete;

 private:
  std::vector<std::pair<variable<T, D>, bool>> params_;
};

/// One pass over `ds` (the caller holds an eval_scope recording the graph and frozen
/// parameters): features f(x) [N, F] into `feats`, labels into `labels`, logits into `meter`
/// (and `cal`), and with `point` ≥ 0 the per-sample ‖∇_{g(x)} ℓ‖₂ (ℓ: cross-entropy) into
/// `grad_norm` [N].
template <real_scalar T, device D, data::dataset Ds>
void analysis_pass(nn::staged_model<T, D>& model, const Ds& ds, const data::normalize& norm, index_t batch_size,
                   int point, tensor<T>& feats, tensor<std::int64_t>& labels, metrics::classification_meter& meter,
                   metrics::calibration_meter* cal, std::vector<double>* grad_norm) {
  const auto N = static_cast<index_t>(ds.size());
  const int fp = model.feature_point();
  labels = tensor<std::int64_t>(shape{N});
  for_each_batch<T, D>(
      ds, norm,
      [&](const pass_batch<T, D>& bt) {
        const index_t B = bt.size(), b0 = bt.first;
        variable<T, D> f, z;
        if (point >= 0) {
          variable<T, D> g;
          {
            no_grad_guard ng;
            g = variable<T, D>(model.run(variable<T, D>(bt.images), -1, point).value(), true);
          }
          f = model.run(g, point, fp);
          z = model.classify(f);
          affine(cross_entropy(z, bt.labels), static_cast<T>(B), T(0)).backward();  // Σ_i ℓ_i
          const auto gr = ltl::detail::to_host(g.grad());
          const index_t per = gr.numel() / B;
          for (index_t i = 0; i < B; ++i) {
            double s = 0;
            for (index_t j = 0; j < per; ++j) s += static_cast<double>(gr.data()[i * per + j]) * gr.data()[i * per + j];
            (*grad_norm)[static_cast<std::size_t>(b0 + i)] = std::sqrt(s);
          }
        } else {
          no_grad_guard ng;
          f = model.features(variable<T, D>(bt.images));
          z = model.classify(f);
        }
        const auto fv = ltl::detail::to_host(f.value());
        if (!feats.defined()) feats = tensor<T>(shape{N, fv.size(1)});
        std::copy_n(fv.data(), fv.numel(), feats.data() + b0 * fv.size(1));
        const auto y = ltl::detail::to_host(bt.labels);
        std::copy_n(y.data(), B, labels.data() + b0);
        meter.add(z.value(), y);
        if (cal) cal->add(z.value(), y);
      },
      {.batch_size = batch_size});
}
}  // namespace detail

/// Mean ‖∇_{g(x)} ℓ‖₂ per class over `ds` at model point `point` (MFW Fig. 4), ℓ the
/// per-sample cross-entropy of the plain logits. NaN for classes without images.
template <real_scalar T, device D, data::dataset Ds>
std::vector<double> feature_gradient_norms(nn::staged_model<T, D>& model, const Ds& ds, const data::normalize& norm,
                                           const std::string& point, index_t batch_size = 256) {
  const int p = model.point(point);
  LTL_CHECK(p < model.last_point(), value_error, "feature_gradient_norms: point '{}' is the logits", point);
  eval_scope scope(model, {.record_graph = true});
  detail::frozen_parameters frozen(model);
  const auto C = static_cast<index_t>(ds.num_classes());
  metrics::classification_meter meter(C, 1);
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
template <real_scalar T, device D, data::dataset Ds>
metrics::analysis_report analyze(nn::staged_model<T, D>& model, const Ds& train, const Ds& test,
                                 const data::normalize& norm, const metrics::analysis_options& o = {}) {
  const auto C = static_cast<index_t>(train.num_classes());
  LTL_CHECK(static_cast<index_t>(test.num_classes()) == C && train.size() > 0 && test.size() > 0, value_error,
            "analyze: train ({} images, {} classes) and test ({} images, {} classes) do not match", train.size(),
            train.num_classes(), test.size(), test.num_classes());
  const int p = o.gradients ? model.point(o.point) : -1;
  LTL_CHECK(p < model.last_point(), value_error, "analyze: point '{}' is the logits", o.point);
  metrics::analysis_report r;
  r.train_counts.assign(static_cast<std::size_t>(C), 0.0);
  for (index_t i = 0; i < static_cast<index_t>(train.size()); ++i) r.train_counts[static_cast<std::size_t>(train.label(i))] += 1;
  eval_scope scope(model, {.record_graph = true});
  detail::frozen_parameters frozen(model);

  metrics::classification_meter tr_meter(C, std::min<index_t>(5, C)), te_meter(C, std::min<index_t>(5, C));
  metrics::calibration_meter cal(r.train_counts, o.ece_bins);
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
  r.classification_ratio = metrics::classification_ratio(tr_meter.confusion(), r.train_counts);
  r.test_ece = cal.ece();
  r.test_ece_many = cal.ece(ltl::shot_group::many);
  r.test_ece_medium = cal.ece(ltl::shot_group::medium);
  r.test_ece_few = cal.ece(ltl::shot_group::few);
  for (auto& [name, t] : model.classifier().state_dict())
    if (name == "weight" && t.dim() == 2 && t.size(0) == C) r.classifier_norms = metrics::weight_norms(ltl::detail::to_host(t));
  if (o.deviation) r.feature_deviation = metrics::feature_deviation(ftr, ytr, fte, yte, C, o.dev);
  if (p >= 0) {
    r.grad_point = o.point;
    std::vector<double> sum(static_cast<std::size_t>(C), 0.0);
    for (std::size_t i = 0; i < g.size(); ++i) sum[static_cast<std::size_t>(ytr.data()[i])] += g[i];
    for (std::size_t c = 0; c < sum.size(); ++c) sum[c] = r.train_counts[c] > 0 ? sum[c] / r.train_counts[c] : NAN;
    r.grad_norms = std::move(sum);
  }
  return r;
}

/// A trainer.on_epoch_end callback: every `every` epochs, analyses the model and appends the
/// report (with its epoch) as one JSON line to `out` (e.g. run_dir/analysis.jsonl).
template <real_scalar T, data::dataset Ds, device D = cpu::device>
class analysis_recorder {
 public:
  analysis_recorder(nn::staged_model<T, D>& model, const Ds& train, const Ds& test, data::normalize norm,
                    std::filesystem::path out, metrics::analysis_options o = {}, index_t every = 1)
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
  nn::staged_model<T, D>* model_;
  const Ds* train_;
  const Ds* test_;
  data::normalize norm_;
  std::filesystem::path out_;
  metrics::analysis_options o_;
  index_t every_;
};

}  // namespace ltl::eval
