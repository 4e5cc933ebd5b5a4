#pragma once
/// \file
/// Stage 2 of decoupled training on a frozen backbone (Kang et al., ICLR 2020, §4; SPEC §9):
///   - cRT: a re-initialised linear classifier trained with class-balanced sampling;
///   - LWS: z_c = f_c·(w_c·x + b_c) with only the scales f [C] learned (Kang Eq. 4 writes
///     w̃_c = f_c·w_c; the scale multiplies the whole logit, bias included, so f = 1 is the joint
///     classifier), class-balanced sampling;
///   - learned τ (Kang App. B.5): τ of w_c/‖w_c‖^τ as the only parameter, class-balanced sampling.
/// Each uses SGD with momentum and a cosine learning rate from `lr` to 0 over the stage's
/// iterations (restarted cosine).
///
/// The stage-2 budget is part of the method (SPEC §9), and the defaults are Kang et al.'s configs
/// (ImageNet-LT, Places-LT and iNaturalist 2018 alike): the class-aware sampler taking 4 samples
/// per class visit, an epoch of max_c N_c × C draws (every class drawn as often as the largest
/// has samples), 10 epochs for cRT and 5 for LWS. Their LWS configs use 5 epochs on all three
/// datasets (LWS learns only C scales, against cRT's C·(F + 1) weights), so the SPEC's "5
/// epochs LWS on ImageNet-LT" is LWS's default here whatever the data's size. Learned τ follows cRT ("following cRT", Kang App. B.5): 10 epochs. All of it is in
/// stage2_options.
///
/// Features come from a source: `cached_source` (the table of classifier/features.hpp, no
/// augmentation — fast, the default) or `backbone_source` (each batch's images augmented and
/// passed through the frozen backbone, as Kang et al. do). The backbone is never updated: it runs
/// in eval mode (batch-norm running statistics) without recording a graph.
///
/// Difference from Kang et al.: they keep the stage-1 augmentation in stage 2, so a class-
/// balanced sampler that repeats a tail image shows the classifier a new crop/flip each time.
/// On cached features a repeated tail image is the very same feature vector, so the re-trained
/// classifier can fit the few tail features more tightly (the over-fitting that feature
/// deviation, CDT paper §3.3, describes); in exchange each epoch costs a gather instead of a
/// backbone pass. `backbone_source` gives the faithful variant at the backbone's cost.
///
/// Learned τ: when the weight norms are far from 1, τ also sets the overall logit scale
/// (‖w_c‖^−τ shrinks or grows every logit), so the learned value mixes re-balancing with a
/// global temperature; the grid search on mean per-class accuracy does not have that coupling.

#include "ltlearn/classifier/posthoc.hpp"
#include "ltlearn/data/loader.hpp"
#include "ltlearn/eval/scope.hpp"
#include "ltlearn/ops/elementwise.hpp"
#include "ltlearn/optim/schedule.hpp"
#include "ltlearn/optim/sgd.hpp"
#include "ltlearn/sampling/samplers.hpp"

#include <cmath>
#include <functional>
#include <memory>
#include <span>
#include <utility>
#include <vector>

namespace ltl::classifier {

/// How stage 2 balances classes (SPEC §6).
enum class balance {
  class_aware,  ///< Kang et al.'s round-robin class-aware sampler
  two_stage,    ///< i.i.d. draws: a uniform class, then a uniform instance of it
};

/// Kang et al.'s stage-2 epochs per method (their cls_crt / cls_lws configs; learned τ as cRT).
inline constexpr index_t crt_epochs = 10, lws_epochs = 5, learn_tau_epochs = 10;

/// How many draws a stage-2 epoch has when stage2_options::epoch_size is 0.
enum class epoch_length {
  largest_class,  ///< max_c N_c × C (Kang et al.'s class-aware sampler; the default)
  dataset,        ///< N, the number of training rows (one pass's worth)
};

/// Hyper-parameters of a stage-2 run. Defaults: Kang et al.'s — batch 512, cosine from 0.2,
/// momentum 0.9, weight decay 5e-4, class-aware sampling with 4 samples per class visit, epochs
/// of max_c N_c × C draws, and the method's own number of epochs (cRT 10, LWS 5, learned τ 10).
struct stage2_options {
  index_t epochs = 0;  ///< 0: the method's own (crt_epochs, lws_epochs, learn_tau_epochs)
  index_t batch_size = 512;
  double lr = 0.2;
  double momentum = 0.9;
  double weight_decay = 5e-4;
  balance sampler = balance::class_aware;
  index_t per_class = 4;   ///< class_aware: consecutive draws per class visit
  index_t epoch_size = 0;  ///< draws per epoch; 0: by `length`
  epoch_length length = epoch_length::largest_class;  ///< the epoch when epoch_size is 0
  std::uint64_t seed = 0;  ///< sampling, augmentation and initialisation

  /// `epochs`, or the method's default when it is 0.
  [[nodiscard]] index_t epochs_or(index_t method_default) const { return epochs > 0 ? epochs : method_default; }
  /// Draws per epoch on a training set with these labels.
  [[nodiscard]] index_t draws_per_epoch(std::span<const std::int64_t> labels, index_t num_classes) const {
    LTL_CHECK(epoch_size >= 0, value_error, "stage2_options: epoch_size {} must be >= 0", epoch_size);
    if (epoch_size > 0) return epoch_size;
    if (length == epoch_length::dataset) return static_cast<index_t>(labels.size());
    return sampling::class_aware_epoch_size(labels, num_classes);
  }
};

/// A source of training features for stage 2.
///
/// Represents the training set seen through the frozen backbone. Requires `labels()` (the
/// label of every row, which the sampler balances), `num_classes()`, `dim()` (F) and
/// `batch(epoch, b, indices)` returning features [B, F] and labels [B] of those rows for batch b
/// of that epoch. Ensures the batch depends only on (epoch, b, indices) and the source's seed.
template <class S, class T>
concept feature_source = requires(const S& s, index_t e, std::span<const index_t> idx) {
  { s.labels() } -> std::convertible_to<std::span<const std::int64_t>>;
  { s.num_classes() } -> std::convertible_to<index_t>;
  { s.dim() } -> std::convertible_to<index_t>;
  { s.batch(e, e, idx) } -> std::same_as<std::pair<tensor<T>, tensor<std::int64_t>>>;
};

/// Rows of a cached feature table (un-augmented features; the table must outlive the source).
template <real_scalar T>
class cached_source {
 public:
  explicit cached_source(const feature_table<T>& t) : t_(&t) {
    LTL_CHECK(t.size() > 0, value_error, "cached_source: the feature table is empty");
  }
  [[nodiscard]] std::span<const std::int64_t> labels() const {
    return {t_->labels.data(), static_cast<std::size_t>(t_->size())};
  }
  [[nodiscard]] index_t num_classes() const { return t_->num_classes; }
  [[nodiscard]] index_t dim() const { return t_->dim(); }
  [[nodiscard]] std::pair<tensor<T>, tensor<std::int64_t>> batch(index_t, index_t, std::span<const index_t> idx) const {
    return t_->rows(idx);
  }

 private:
  const feature_table<T>* t_;
};

/// Images of `ds` in [0, 1], transformed by `transform` with the generator rng(seed, stream(epoch,
/// b)) as the data loader does — augmentation *and* normalisation, like the trainer's training
/// transform — then passed through the frozen backbone `model` on its device D (eval mode, no
/// graph); the features come back to the host like a cached table's rows.
template <real_scalar T, device D = cpu::device>
class backbone_source {
 public:
  using transform_fn = std::function<void(tensor<T>&, rng&)>;
  backbone_source(nn::staged_model<T, D>& model, const data::image_dataset& ds, transform_fn transform,
                  std::uint64_t seed)
      : model_(&model), ds_(&ds), transform_(std::move(transform)), seed_(seed) {
    LTL_CHECK(ds.size() > 0, value_error, "backbone_source: the dataset is empty");
    const index_t first = 0;
    dim_ = batch(0, 0, std::span<const index_t>(&first, 1)).first.size(1);
  }
  [[nodiscard]] std::span<const std::int64_t> labels() const { return ds_->labels(); }
  [[nodiscard]] index_t num_classes() const { return static_cast<index_t>(ds_->num_classes()); }
  [[nodiscard]] index_t dim() const { return dim_; }
  [[nodiscard]] std::pair<tensor<T>, tensor<std::int64_t>> batch(index_t epoch, index_t b,
                                                                 std::span<const index_t> idx) const {
    auto bt = data::make_batch<T>(*ds_, idx);
    rng g(seed_, data::batch_stream(epoch, b));
    if (transform_) transform_(bt.images, g);
    eval::eval_scope scope(*model_);
    return {ltl::detail::to_host(model_->features(variable<T, D>(bt.images.template to<D>())).value()), bt.labels};
  }

 private:
  nn::staged_model<T, D>* model_;
  const data::image_dataset* ds_;
  transform_fn transform_;
  std::uint64_t seed_;
  index_t dim_ = 0;
};

/// Trains `params` (on device D) so that `forward(features)` minimises the cross-entropy on
/// class-balanced batches of `src` (host rows, moved to D; SGD, cosine lr to 0) for
/// o.epochs_or(default_epochs) epochs. Returns the mean loss of each epoch.
template <real_scalar T, device D = cpu::device, class Src, class Forward>
  requires feature_source<Src, T>
std::vector<double> fit_head(Forward&& forward, std::vector<std::pair<std::string, variable<T, D>>> params,
                             const Src& src, const stage2_options& o, index_t default_epochs = crt_epochs) {
  const index_t epochs = o.epochs_or(default_epochs);
  LTL_CHECK(o.epochs >= 0 && epochs > 0 && o.batch_size > 0 && o.lr > 0, value_error,
            "fit_head: epochs {}, batch size {} and lr {} must be positive", o.epochs, o.batch_size, o.lr);
  const index_t C = src.num_classes();
  const index_t draws = o.draws_per_epoch(src.labels(), C);
  sampling::class_aware aware(src.labels(), C, o.seed, o.per_class, draws);
  sampling::power_sampler iid(src.labels(), C, 0.0, o.seed, draws);
  auto order_of = [&](index_t e) {
    return o.sampler == balance::class_aware ? aware.epoch_indices(e) : iid.epoch_indices(e);
  };
  const auto n = static_cast<index_t>(order_of(0).size());
  const index_t iters = (n + o.batch_size - 1) / o.batch_size;
  const optim::cosine_lr schedule{.lr = o.lr, .total = std::max<index_t>(1, epochs * iters), .min_lr = 0.0};
  optim::sgd<T, D> opt(std::move(params), {.momentum = o.momentum, .weight_decay = o.weight_decay});
  std::vector<double> losses;
  index_t it = 0;
  for (index_t e = 0; e < epochs; ++e) {
    const auto order = order_of(e);
    double sum = 0;
    for (index_t b = 0; b * o.batch_size < n; ++b) {
      const index_t b0 = b * o.batch_size, len = std::min(o.batch_size, n - b0);
      auto [f, y] = src.batch(e, b, std::span<const index_t>(order.data() + b0, static_cast<std::size_t>(len)));
      const variable<T, D> loss = cross_entropy(forward(variable<T, D>(f.template to<D>())), y.template to<D>());
      opt.zero_grad();
      loss.backward();
      opt.step(schedule(it++));
      sum += static_cast<double>(loss.value().item()) * static_cast<double>(len);
    }
    losses.push_back(sum / static_cast<double>(n));
  }
  return losses;
}

/// cRT: a linear classifier F → C, re-initialised (PyTorch's default init, seeded by o.seed)
/// and trained on `src` with class-balanced sampling (crt_epochs unless o.epochs is set), on
/// device D. Usable with `set_classifier`.
template <real_scalar T, device D = cpu::device, class Src>
  requires feature_source<Src, T>
std::shared_ptr<nn::linear<T, D>> crt(const Src& src, const stage2_options& o = {}, bool bias = true) {
  rng g(o.seed, 0x637274ull);
  auto fc = std::make_shared<nn::linear<T, D>>(
      nn::linear_options{.in_features = src.dim(), .out_features = src.num_classes(), .bias = bias}, g);
  fit_head<T, D>([&](const variable<T, D>& x) { return fc->forward(x); }, fc->named_parameters(), src, o, crt_epochs);
  return fc;
}

/// LWS head: z = (x·Wᵀ + b) ⊙ f with W [C, F] and b [C] frozen (buffers) and f [C] learned
/// (parameter "scale", initialised to 1).
template <real_scalar T, device D = cpu::device>
class lws_head : public nn::unary_module<T, D> {
 public:
  using typename nn::module<T, D>::var;
  explicit lws_head(const nn::linear<T, D>& fc) {
    weight_ = this->register_buffer("weight", fc.weight.value().contiguous().clone());
    if (fc.bias.defined()) bias_ = this->register_buffer("bias", fc.bias.value().contiguous().clone());
    scale = this->register_parameter("scale", tensor<T, D>::ones(shape{weight_.size(0)}));
  }
  var forward(const var& x) override {
    return ltl::mul(ltl::linear(x, var(weight_), bias_.defined() ? var(bias_) : var()), scale);
  }
  /// The equivalent plain classifier on device D: weights f_c·w_c, bias f_c·b_c (folded on the
  /// host, as classifier/posthoc.hpp scales rows, then moved to D).
  [[nodiscard]] std::shared_ptr<nn::linear<T, D>> folded() const {
    const auto f = scale.value().to_vector();
    std::vector<double> fd(f.begin(), f.end());
    tensor<T> b;
    if (bias_.defined()) {
      b = ltl::detail::to_host(bias_).clone();
      for (index_t c = 0; c < b.numel(); ++c) b.data()[c] *= static_cast<T>(fd[static_cast<std::size_t>(c)]);
    }
    const tensor<T> w = scale_rows(ltl::detail::to_host(weight_), fd);
    return make_linear_head(w.template to<D>(), b.defined() ? b.template to<D>() : tensor<T, D>());
  }

  var scale;  ///< f [C]

 private:
  tensor<T, D> weight_, bias_;
};

/// LWS: learns the per-class scales of `fc` (copied; `fc` is untouched) on `src` with
/// class-balanced sampling (lws_epochs unless o.epochs is set).
template <real_scalar T, device D = cpu::device, class Src>
  requires feature_source<Src, T>
std::shared_ptr<lws_head<T, D>> lws(const nn::linear<T, D>& fc, const Src& src, const stage2_options& o = {}) {
  LTL_CHECK(fc.weight.size(1) == src.dim() && fc.weight.size(0) == src.num_classes(), shape_error,
            "lws: classifier {} does not match {} classes of dimension {}", fc.weight.sizes(), src.num_classes(),
            src.dim());
  auto head = std::make_shared<lws_head<T, D>>(fc);
  fit_head<T, D>([&](const variable<T, D>& x) { return head->forward(x); }, head->named_parameters(), src, o,
                 lws_epochs);
  return head;
}

/// Learns τ of the τ-normalised classifier z_c = (w_c·x)/‖w_c‖^τ (bias dropped) on `src` with
/// class-balanced sampling, everything else fixed (Kang App. B.5; learn_tau_epochs unless
/// o.epochs is set). Returns τ.
template <real_scalar T, device D = cpu::device, class Src>
  requires feature_source<Src, T>
double learn_tau(const nn::linear<T, D>& fc, const Src& src, const stage2_options& o = {}, double tau0 = 0.0) {
  const auto w = ltl::detail::to_host(fc.weight.value());
  LTL_CHECK(w.size(1) == src.dim() && w.size(0) == src.num_classes(), shape_error,
            "learn_tau: classifier {} does not match {} classes of dimension {}", w.sizes(), src.num_classes(), src.dim());
  const auto norms = metrics::weight_norms(w);
  tensor<T> log_norm(shape{w.size(0)});
  for (index_t c = 0; c < w.size(0); ++c) {
    LTL_CHECK(norms[static_cast<std::size_t>(c)] > 0, value_error, "learn_tau: class {} has a zero weight row", c);
    log_norm.data()[c] = static_cast<T>(std::log(norms[static_cast<std::size_t>(c)]));
  }
  variable<T, D> tau(tensor<T, D>::full(shape{1}, static_cast<T>(tau0)), true);
  const variable<T, D> wv(fc.weight.value().contiguous().clone()), ln(log_norm.template to<D>());
  fit_head<T, D>(
      [&](const variable<T, D>& x) { return ltl::mul(ltl::linear(x, wv), ltl::exp(ltl::neg(ltl::mul(tau, ln)))); },
      {{"tau", tau}}, src, o, learn_tau_epochs);
  return static_cast<double>(tau.value().item());
}

}  // namespace ltl::classifier
