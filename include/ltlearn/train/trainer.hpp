#pragma once
/// \file
/// train::trainer: composes a staged model, a sampler, a loss policy, a mixing policy and a
/// learning-rate schedule with SGD into a training loop with evaluation, a progress bar, a
/// JSON-lines log, atomic checkpoints and bit-exact resume.
///
/// Bit-exact resume: everything random is a function of saved state — the sampler's order of
/// epoch e is a function of (seed, e), batch b's augmentation of (seed, e, b), and the mixing
/// generator's state is saved — and the model, momentum buffers, batch-norm statistics and the
/// schedule position (iteration) are saved exactly. A run resumed from a checkpoint at any step
/// reproduces the uninterrupted run bit for bit (same thread count).
///
/// Devices: the model, its optimizer and the loss run on the model's device D; the data loader
/// and the training transform work on host images, and each batch moves to D before the step
/// through host_upload<D> (backends/contract/upload.hpp: on a GPU, overlapping the copy with
/// the previous step's backward pass; the same values as tensor::to<D>()). Given a
/// data::standard_augment rather than an opaque transform, the loader crops and flips the
/// dataset's bytes and a device whose upload normalises bytes (normalizes_bytes<D>: the GPU)
/// receives those — a quarter of the traffic, no float work on the host — with the values of
/// the float path bit for bit (eval::delivery_for, eval::upload_images).
///
/// Data: an in-memory dataset with a batch-level training transform, or a batch source that
/// augments each sample itself (data::image_pipeline over encoded images); see
/// train/training_source.hpp for both and for how a batch source's global batches are cut
/// across data-parallel ranks. Evaluation sets are of the training data's type.

#include "ltlearn/backends/contract/upload.hpp"
#include "ltlearn/data/loader.hpp"
#include "ltlearn/data/transforms.hpp"
#include "ltlearn/eval/batched_pass.hpp"
#include "ltlearn/losses/fused_loss.hpp"
#include "ltlearn/losses/policies.hpp"
#include "ltlearn/metrics/classification.hpp"
#include "ltlearn/mixing/mixed_loss.hpp"
#include "ltlearn/mixing/policies.hpp"
#include "ltlearn/optim/schedule.hpp"
#include "ltlearn/optim/sgd.hpp"
#include "ltlearn/sampling/samplers.hpp"
#include "ltlearn/train/checkpoint.hpp"
#include "ltlearn/train/data_parallel.hpp"
#include "ltlearn/dist/evaluate.hpp"
#include "ltlearn/train/evaluate.hpp"
#include "ltlearn/train/progress.hpp"
#include "ltlearn/train/run_guard.hpp"
#include "ltlearn/train/training_source.hpp"

#include <fmt/format.h>

#include <cmath>
#include <concepts>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace ltl::train {

/// Options of the training loop (hyper-parameters of the policies live in the policies).
struct trainer_options {
  index_t epochs = 20;
  index_t batch_size = 128;
  std::uint64_t seed = 0;
  optim::sgd_options sgd{.momentum = 0.9, .weight_decay = 2e-4};
  std::filesystem::path out_dir;        ///< checkpoint.safetensors and log.jsonl; empty: none
  index_t checkpoint_every_steps = 0;   ///< also checkpoint every k steps (0: epoch ends only)
  index_t stop_after_steps = -1;        ///< stop (with a checkpoint) after this many steps — an interruption
  int loader_workers = 1;
  bool progress = true;                 ///< progress bar on stderr
  bool print_epochs = true;             ///< one summary line per epoch on stdout
  index_t eval_batch_size = 256;
  index_t test_every = 1;               ///< evaluate the test set every k epochs (and always after the last)
  index_t val_every = 1;                ///< evaluate the validation set every k epochs (and always after the last)
  /// Data parallelism (train/data_parallel.hpp): batch_size is the global batch, split across
  /// the ranks. Default: one process.
  dist::any_communicator comm{};
  dist::reducer_options reducer{};      ///< gradient bucket size and backward overlap
  bool overwrite = false;               ///< a fresh run may replace another run's checkpoint in out_dir
  nlohmann::json run_config = nlohmann::json::object();  ///< caller's entries for the run fingerprint (run_guard.hpp)
};

/// Options of trainer::resume.
struct resume_options {
  bool force = false;  ///< resume a checkpoint of another experiment, or one without optimizer state (warnings)
};

/// Summary of one epoch.
struct epoch_summary {
  index_t epoch = 0;
  double train_loss = 0, train_acc = 0, lr = 0, seconds = 0, images_per_sec = 0;
  std::optional<eval_report> val, test;
};

/// The training loop. S: sampler, L: loss policy, X: mixing policy, Sch: lr schedule, D: the
/// model's device, Src: the training data (both deduced from the constructor's arguments).
template <real_scalar T, sampling::sampler S, losses::loss_policy L, class X, optim::lr_schedule Sch,
          device D = cpu::device, class Src = data::image_dataset>
  requires mixing::mixing_policy<X, T, D> && training_source<Src, T>
class trainer {
 public:
  /// Augments a host batch [B, C, H, W] in place (it moves to D afterwards).
  using transform_fn = std::function<void(tensor<T>&, rng&)>;

  /// From an in-memory dataset: batches are augmented by `train_transform` (one generator per
  /// batch), evaluation batches normalised by `eval_norm`.
  trainer(nn::staged_model<T, D>& model, const Src& train_set, trainer_options opt, S sampler, L loss, X mixer,
          Sch schedule, std::type_identity_t<transform_fn> train_transform, data::normalize eval_norm)
    requires data::dataset<Src>
      : trainer(model, train_set, std::move(opt), std::move(sampler), std::move(loss), std::move(mixer),
                std::move(schedule), std::move(train_transform), std::nullopt, std::move(eval_norm), construct{}) {}

  /// From an in-memory dataset augmented by `aug` (the CIFAR recipes' crop, flip and
  /// normalisation): the same run as with `aug` as the transform, bit for bit, but on a device
  /// that normalises uploaded bytes the batches travel as bytes (see the file comment). (A
  /// template, so that `{}` — no transform — still means the function overload.)
  template <std::same_as<data::standard_augment> A>
  trainer(nn::staged_model<T, D>& model, const Src& train_set, trainer_options opt, S sampler, L loss, X mixer,
          Sch schedule, A aug, data::normalize eval_norm)
    requires data::dataset<Src>
      : trainer(model, train_set, std::move(opt), std::move(sampler), std::move(loss), std::move(mixer),
                std::move(schedule), transform_fn{}, std::move(aug), std::move(eval_norm), construct{}) {}

  /// From a batch source that augments and normalises its own batches (e.g. data::image_pipeline
  /// with data::imagenet_train_transform()); evaluation sets are batch sources of the same type.
  trainer(nn::staged_model<T, D>& model, const Src& train_source, trainer_options opt, S sampler, L loss, X mixer,
          Sch schedule)
    requires(!data::dataset<Src>)
      : trainer(model, train_source, std::move(opt), std::move(sampler), std::move(loss), std::move(mixer),
                std::move(schedule), transform_fn{}, std::nullopt, data::normalize{}, construct{}) {}

 private:
  struct construct {};
  // What the loader reads: the dataset itself, or this rank's slices of the batch source.
  using feed_type = std::conditional_t<data::dataset<Src>, Src, rank_slices<T, Src>>;
  trainer(nn::staged_model<T, D>& model, const Src& train_set, trainer_options opt, S sampler, L loss, X mixer,
          Sch schedule, transform_fn train_transform, std::optional<data::standard_augment> aug,
          data::normalize eval_norm, construct)
      : model_(model),
        opt_(std::move(opt)),
        sampler_(std::move(sampler)),
        loss_(std::move(loss)),
        mixer_(std::move(mixer)),
        schedule_(std::move(schedule)),
        norm_(std::move(eval_norm)),
        sgd_(model.named_parameters(), opt_.sgd),
        dp_(opt_.comm, opt_.batch_size, sgd_.params(), opt_.reducer),
        slices_(train_set, opt_.comm.rank(), opt_.comm.size()),
        loader_(make_loader(train_set, std::move(train_transform), std::move(aug))),
        mix_rng_(opt_.seed, 0x6d6978ull) {
    for (index_t c : train_set.class_counts()) counts_.push_back(static_cast<double>(c));
    LTL_CHECK(opt_.epochs > 0 && opt_.batch_size > 0, value_error, "trainer: epochs {} and batch size {} must be positive",
              opt_.epochs, opt_.batch_size);
    LTL_CHECK(opt_.test_every > 0 && opt_.val_every > 0, value_error,
              "trainer: test_every ({}) and val_every ({}) must be positive", opt_.test_every, opt_.val_every);
    if (mixer_.point() != "input") (void)model_.point(mixer_.point());  // fail early on a bad point name
    image_shape_ = train_set.image_shape();
    fingerprint_ = make_fingerprint({.data_hash = train_set.content_hash(), .train_size = static_cast<index_t>(train_set.size()),
                                     .classes = static_cast<index_t>(train_set.num_classes()), .epochs = opt_.epochs,
                                     .batch_size = opt_.batch_size, .seed = opt_.seed, .sampler = sampler_.name(),
                                     .loss = loss_.name(), .mixing = mixer_.name(), .momentum = opt_.sgd.momentum,
                                     .weight_decay = opt_.sgd.weight_decay, .config = opt_.run_config});
    dp_.sync(model_, sgd_);
  }

 public:
  /// Evaluate on these sets, the validation set every `val_every` epochs and the test set every
  /// `test_every` epochs (both after the last; either may be null).
  void set_eval_sets(const Src* val, const Src* test) {
    for (const Src* ds : {val, test})
      LTL_CHECK(ds == nullptr || shape(ds->image_shape()) == image_shape_, shape_error,
                "trainer: evaluation set {}has images of shape {}, the training set {}", set_name(*ds),
                shape(ds->image_shape()), image_shape_);
    val_ = val;
    test_ = test;
  }
  /// Evaluates the model on `set` (of the training data's type) as the trainer does after an
  /// epoch: sharded across the ranks, every rank must call it.
  [[nodiscard]] eval_report evaluate(const Src& set) {
    if constexpr (data::dataset<Src>)
      return dist::evaluate(model_, set, norm_, counts_, opt_.comm, opt_.eval_batch_size);
    else
      return dist::evaluate(model_, set, counts_, opt_.comm,
                            {.batch_size = opt_.eval_batch_size, .workers = opt_.loader_workers});
  }
  /// Called after every epoch with its summary (analysis, custom logging), before the epoch's
  /// checkpoint; a JSON-lines file it appends to in out_dir is one of run_logs (run_guard.hpp).
  std::function<void(const epoch_summary&)> on_epoch_end;

  /// Restores model, optimizer and position from a checkpoint written by this trainer.
  /// A checkpoint of another experiment (fingerprint), without optimizer state, or past the
  /// last epoch is refused (the first two unless `ro.force`); data parallel, one written with
  /// another global batch too. Every rank then takes rank 0's state.
  void resume(const std::filesystem::path& checkpoint, resume_options ro = {}) {
    auto st = load_checkpoint(checkpoint, static_cast<nn::module<T, D>&>(model_), &sgd_,
                              {.allow_missing_optimizer_state = ro.force});
    // The world-size rule first: its message names the batch size to use, where the fingerprint
    // would only list the global batch among the differences.
    dp_.check_resume(st, checkpoint.string());
    check_fingerprint(st.extra, fingerprint_, checkpoint.string(), ro.force);
    LTL_CHECK(st.epoch < opt_.epochs || (st.epoch == opt_.epochs && st.progress == epoch_progress{}), io_error,
              "{}: the checkpoint is at epoch {} (batch {}), past this run's {} epochs", checkpoint.string(), st.epoch,
              st.progress.batch_in_epoch, opt_.epochs);
    dp_.sync(model_, sgd_);
    resumed_ = true;
    state_ = st;
    if (auto it = st.rngs.find("mix"); it != st.rngs.end()) mix_rng_.set_state(it->second);
    if (dp_.root()) fmt::print("resumed from {} at epoch {}, step {}\n", checkpoint.string(), st.epoch, st.iteration);
  }

  /// Trains until opt.epochs (or stop_after_steps). Returns the summaries of the epochs run.
  std::vector<epoch_summary> fit() {
    std::vector<epoch_summary> out;
    if (!opt_.out_dir.empty() && dp_.root())
      prepare_run_dir(opt_.out_dir, {.resumed = resumed_, .overwrite = opt_.overwrite, .completed_epochs = state_.epoch});
    while (state_.epoch < opt_.epochs) {
      const index_t epoch = state_.epoch;
      auto summary = train_epoch(epoch);
      if (!summary) return out;  // interrupted
      const auto due = [&](index_t every) { return (epoch + 1) % every == 0 || epoch + 1 == opt_.epochs; };
      if (val_ && due(opt_.val_every)) summary->val = evaluate(*val_);
      if (test_ && due(opt_.test_every)) summary->test = evaluate(*test_);
      // The log line and the callback's output (analysis.jsonl) before the checkpoint: a kill
      // between them repeats the epoch, and the resume trims both files (run_guard.hpp).
      log(*summary);
      if (on_epoch_end) on_epoch_end(*summary);
      state_.epoch = epoch + 1;
      state_.progress = {};
      save();
      out.push_back(std::move(*summary));
    }
    return out;
  }

  [[nodiscard]] const train_state& state() const noexcept { return state_; }
  [[nodiscard]] const std::vector<double>& class_counts() const noexcept { return counts_; }
  [[nodiscard]] optim::sgd<T, D>& optimizer() noexcept { return sgd_; }
  [[nodiscard]] const data_parallel<T, D>& parallel() const noexcept { return dp_; }
  [[nodiscard]] std::filesystem::path checkpoint_path() const { return opt_.out_dir / "checkpoint.safetensors"; }
  /// How the training batches reach the device: bytes where a standard_augment was given and
  /// the device's upload normalises bytes, else floats.
  [[nodiscard]] data::image_delivery image_delivery() const noexcept { return loader_.delivery(); }

 private:
  /// One epoch from the saved position; nullopt when stopped by stop_after_steps.
  std::optional<epoch_summary> train_epoch(index_t epoch) {
    model_.train();
    epoch_progress& pr = state_.progress;
    auto global_order = sampler_.epoch_indices(epoch);
    const index_t steps = dp_.steps(static_cast<index_t>(global_order.size()));
    // A batch source's loader walks the global order (rank_slices cuts each batch); a dataset's, the rank's order.
    auto run = loader_.run(epoch, data::dataset<Src> ? dp_.order(std::move(global_order)) : std::move(global_order),
                           pr.batch_in_epoch);
    const loss_terms terms = losses::make_terms(loss_, counts_, epoch);
    const bool mixing_on = mixer_.active(epoch);
    const int point = mixing_on && mixer_.point() != "input" ? model_.point(mixer_.point()) : -1;
    progress_bar bar(fmt::format("epoch {}/{}", epoch + 1, opt_.epochs), static_cast<long>(steps), stderr,
                     opt_.progress && dp_.root());
    // The epoch's running totals (state_.progress) travel in the checkpoint.
    const double seconds_before = pr.seconds;
    // The last step's rate, also when a resume lands after the epoch's last batch (no step here).
    double lr = state_.iteration > 0 ? schedule_(state_.iteration - 1) : 0.0;
    while (pr.batch_in_epoch < steps) {
      // Empty only on a rank whose slice of the last global batch is empty (data parallel).
      auto b = run->next();
      if (b && b->labels.numel() == 0) b.reset();  // a batch source's empty slice
      lr = schedule_(state_.iteration);
      const loss_terms step_terms = dp_.global_terms(terms, b ? upload_batch<D>(b->labels) : tensor<std::int64_t, D>{});
      variable<T, D> z, loss;
      double lv = 0;
      index_t correct = 0, B = 0;
      if (b) {
        const variable<T, D> x(eval::upload_images<D>(*b));
        const tensor<std::int64_t, D> labels = upload_batch<D>(b->labels);
        mixing::mix_result<T, D> m;  // default: not mixed
        if (mixing_on) {
          // One process: the saved generator; data parallel: a function of (seed, epoch, step, rank).
          rng step_rng(opt_.seed, dist::mixing_stream(epoch, pr.batch_in_epoch, dp_.comm().rank()));
          m = mixer_.mix(model_.run(x, -1, point), labels, counts_, dp_.active() ? step_rng : mix_rng_);
          z = model_.run(m.h, point, model_.last_point());
        } else {
          z = model_.forward(x);
        }
        loss = mixing::mixed_loss(z, labels, m, step_terms);
        lv = static_cast<double>(loss.value().item());
        B = b->labels.numel();
        correct = metrics::count_correct(z.value(), labels);  // on the device: one number comes back
      }
      const auto tot = dp_.reduce({.loss = lv, .seen = B, .correct = correct});
      lv = tot.loss;
      LTL_CHECK(std::isfinite(lv), value_error,
                "trainer: the loss is {} at epoch {}, step {} (lr {}); lower the learning rate or check the data", lv,
                epoch, state_.iteration, lr);
      sgd_.zero_grad();
      dp_.before_backward();
      if (b) loss.backward();
      dp_.after_backward();
      sgd_.step(lr);
      dp_.after_step(model_);
      ++state_.iteration;
      pr.batch_in_epoch = b ? run->position() : pr.batch_in_epoch + 1;
      pr.loss_sum += lv * static_cast<double>(tot.seen);
      pr.seen += tot.seen;
      pr.correct += tot.correct;
      pr.seconds = seconds_before + bar.elapsed();
      bar.update(static_cast<long>(pr.batch_in_epoch), static_cast<long>(pr.seen),
                 pr.loss_sum / static_cast<double>(pr.seen), lr);
      if (opt_.checkpoint_every_steps > 0 && state_.iteration % opt_.checkpoint_every_steps == 0) save();
      if (opt_.stop_after_steps >= 0 && state_.iteration >= opt_.stop_after_steps) {
        save();
        return std::nullopt;
      }
    }
    epoch_summary s;
    s.epoch = epoch;
    s.lr = lr;
    s.seconds = seconds_before + bar.elapsed();
    const auto seen = static_cast<double>(pr.seen);
    s.train_loss = pr.seen ? pr.loss_sum / seen : 0;
    s.train_acc = pr.seen ? static_cast<double>(pr.correct) / seen : 0;
    s.images_per_sec = s.seconds > 0 ? seen / s.seconds : 0;
    return s;
  }

  /// The loader over the training data (see the file comment of training_source.hpp).
  [[nodiscard]] data::loader<T, feed_type> make_loader(const Src& train_set, transform_fn train_transform,
                                                       std::optional<data::standard_augment> aug) const {
    if constexpr (data::dataset<Src>) {
      const data::loader_options lo{
          .batch_size = dp_.local_batch(), .workers = opt_.loader_workers, .seed = dp_.loader_seed(opt_.seed)};
      if (aug) return data::loader<T, Src>(train_set, lo, std::move(*aug), eval::delivery_for<D, T>);
      return data::loader<T, Src>(train_set, lo, std::move(train_transform));
    } else
      return data::loader<T, rank_slices<T, Src>>(
          slices_, {.batch_size = opt_.batch_size, .workers = opt_.loader_workers, .seed = opt_.seed});
  }
  static std::string set_name(const Src& s) {
    if constexpr (requires { s.name(); }) return fmt::format("'{}' ", s.name());
    else return {};
  }

  void save() {
    if (opt_.out_dir.empty()) return;
    state_.rngs["mix"] = mix_rng_.state();
    if (!state_.extra.is_object()) state_.extra = nlohmann::json::object();
    state_.extra["fingerprint"] = fingerprint_;
    if (dp_.root()) {
      train_state st = state_;
      dp_.stamp(st);
      save_checkpoint(checkpoint_path(), static_cast<const nn::module<T, D>&>(model_), &sgd_, st);
    }
    if (dp_.active()) dp_.comm().barrier();  // the checkpoint exists when any rank goes on
  }

  void log(const epoch_summary& s) {
    if (!dp_.root()) return;
    nlohmann::json j{{"epoch", s.epoch},           {"lr", s.lr},         {"train_loss", s.train_loss},
                     {"train_acc", s.train_acc},   {"seconds", s.seconds}, {"images_per_sec", s.images_per_sec},
                     {"sampler", sampler_.name()}, {"loss", loss_.name()}, {"mixing", mixer_.name()}};
    if (s.val) j["val"] = s.val->to_json();
    if (s.test) j["test"] = s.test->to_json();
    if (!opt_.out_dir.empty()) append_log_line(log_path(opt_.out_dir), j);
    if (opt_.print_epochs) {
      std::string line = fmt::format("epoch {:>3}/{}  loss {:.4f}  train acc {:.2f}%  lr {:.4g}  {:.1f}s ({:.0f} img/s)",
                                     s.epoch + 1, opt_.epochs, s.train_loss, 100 * s.train_acc, s.lr, s.seconds,
                                     s.images_per_sec);
      if (s.val) line += fmt::format("  val {:.2f}%", 100 * s.val->mean_per_class);
      if (s.test) line += fmt::format("  test {:.2f}%", 100 * s.test->top1);
      fmt::print("{}\n", line);
      std::fflush(stdout);
    }
  }

  nn::staged_model<T, D>& model_;
  trainer_options opt_;
  S sampler_;
  L loss_;
  X mixer_;
  Sch schedule_;
  data::normalize norm_;
  optim::sgd<T, D> sgd_;
  data_parallel<T, D> dp_;
  rank_slices<T, Src> slices_;  // this rank's part of a batch source's global batches
  data::loader<T, feed_type> loader_;
  rng mix_rng_;
  std::vector<double> counts_;
  train_state state_;
  bool resumed_ = false;
  shape image_shape_;
  nlohmann::json fingerprint_;
  const Src* val_ = nullptr;
  const Src* test_ = nullptr;
};

}  // namespace ltl::train
