#pragma once
/// \file
/// Training checkpoints in safetensors: model parameters and buffers ("model.<name>"),
/// optimizer state ("optim.<name>") and the trainer's position as JSON metadata
/// ("ltlearn.state": epoch, iteration, RNG states, sampler position, anything the caller adds).
///
/// Loading validates the file against the model before touching it: every model entry must be
/// present with the model's shape, and unknown entries are rejected, so a checkpoint of
/// another architecture fails with a message naming the first offending tensor.

#include "ltlearn/core/rng.hpp"
#include "ltlearn/detail/host.hpp"
#include "ltlearn/nn/module.hpp"
#include "ltlearn/optim/sgd.hpp"
#include "ltlearn/train/safetensors.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <type_traits>

namespace ltl::train {

/// The running totals of the epoch in progress, saved with every checkpoint so that an epoch
/// split by a resume reports the same loss and accuracy as an uninterrupted one, and its time as
/// the sum of its parts. All zero at an epoch boundary.
struct epoch_progress {
  index_t batch_in_epoch = 0;  ///< batches of the epoch already trained (where the loader resumes)
  double loss_sum = 0;         ///< Σ over those batches of (mean batch loss × batch size)
  index_t seen = 0;            ///< images trained on
  index_t correct = 0;         ///< of which predicted correctly (top-1 of the training logits)
  double seconds = 0;          ///< training time spent in the epoch so far

  friend bool operator==(const epoch_progress&, const epoch_progress&) = default;

  /// Writes the totals into `j` under the keys the checkpoint format has always used
  /// ("batch_in_epoch", "epoch_loss_sum", "epoch_seen", "epoch_correct", "epoch_seconds").
  void write(nlohmann::json& j) const {
    j["batch_in_epoch"] = batch_in_epoch;
    j["epoch_loss_sum"] = loss_sum;
    j["epoch_seen"] = seen;
    j["epoch_correct"] = correct;
    j["epoch_seconds"] = seconds;
  }
  /// Reads the totals from `j` (missing keys: zero) and removes their keys from it.
  static epoch_progress take(nlohmann::json& j) {
    epoch_progress p;
    if (!j.is_object()) return p;
    auto get = [&j](const char* key, auto& field) {
      if (auto it = j.find(key); it != j.end()) {
        field = it->template get<std::remove_reference_t<decltype(field)>>();
        j.erase(it);
      }
    };
    get("batch_in_epoch", p.batch_in_epoch);
    get("epoch_loss_sum", p.loss_sum);
    get("epoch_seen", p.seen);
    get("epoch_correct", p.correct);
    get("epoch_seconds", p.seconds);
    return p;
  }
};

/// Where training stands, saved with every checkpoint. `extra` carries the caller's own state
/// (e.g. the FSA configuration of a phase-II checkpoint) as JSON.
///
/// Format: {"epoch", "iteration", "rngs": {name: state}, "extra": {...}} with the epoch's
/// progress stored in "extra" under its historical keys, so checkpoints written before
/// `progress` was a typed member load (and resume) unchanged.
struct train_state {
  index_t epoch = 0;      ///< epochs completed
  index_t iteration = 0;  ///< optimizer steps completed (the schedule's position)
  epoch_progress progress;  ///< the epoch in progress
  std::map<std::string, rng::state_type> rngs;
  nlohmann::json extra = nlohmann::json::object();

  [[nodiscard]] nlohmann::json to_json() const {
    nlohmann::json ex = extra.is_object() ? extra : nlohmann::json::object();
    progress.write(ex);
    nlohmann::json j{{"epoch", epoch}, {"iteration", iteration}, {"extra", std::move(ex)}};
    for (auto& [k, s] : rngs) j["rngs"][k] = s;
    return j;
  }
  static train_state from_json(const nlohmann::json& j, const std::string& file) {
    train_state st;
    try {
      st.epoch = j.at("epoch").get<index_t>();
      st.iteration = j.at("iteration").get<index_t>();
      if (j.contains("rngs"))
        for (auto it = j["rngs"].begin(); it != j["rngs"].end(); ++it) st.rngs[it.key()] = it->get<rng::state_type>();
      if (j.contains("extra")) st.extra = j["extra"];
      // Readers of `extra` (fingerprint, data-parallel stamp, progress) look keys up in it.
      LTL_CHECK(st.extra.is_object(), io_error, "{}: 'ltlearn.state' field 'extra' is not a JSON object", file);
      st.progress = epoch_progress::take(st.extra);
    } catch (const nlohmann::json::exception& e) {
      throw io_error(fmt::format("{}: malformed 'ltlearn.state' metadata: {}", file, e.what()));
    }
    // Positions a writer cannot produce (a hand-edited or corrupt file) would resume in the
    // middle of nowhere: negative counts, or more epochs than steps (every epoch takes one).
    const auto& p = st.progress;
    LTL_CHECK(st.epoch >= 0 && st.iteration >= 0 && st.epoch <= max_saved_epoch, io_error,
              "{}: 'ltlearn.state' has an impossible position: epoch {}, iteration {}", file, st.epoch, st.iteration);
    LTL_CHECK(p.batch_in_epoch >= 0 && p.seen >= 0 && p.correct >= 0 && p.correct <= p.seen &&
                  p.batch_in_epoch <= p.seen && std::isfinite(p.loss_sum) && std::isfinite(p.seconds) &&
                  p.seconds >= 0,
              io_error,
              "{}: 'ltlearn.state' has impossible epoch totals: batch {}, {} images seen, {} correct, loss sum {}, "
              "{} s",
              file, p.batch_in_epoch, p.seen, p.correct, p.loss_sum, p.seconds);
    return st;
  }
  /// Largest epoch a checkpoint may record (far beyond any run; 2^62 is a corrupt file).
  static constexpr index_t max_saved_epoch = index_t{1} << 30;
};

namespace detail {
/// Name of the first tensor of `tensors` ({name, tensor}) holding a NaN or an infinity, or "".
template <class Map>
std::string first_non_finite(const Map& tensors) {
  for (const auto& [name, t] : tensors) {
    const auto h = ltl::detail::to_host(t).contiguous();
    const auto* v = h.data();
    for (index_t i = 0; i < h.numel(); ++i)
      if (!std::isfinite(static_cast<double>(v[i]))) return name;
  }
  return {};
}
}  // namespace detail

/// Saves model, optimizer and state to `path` atomically.
template <real_scalar T, device D>
void save_checkpoint(const std::filesystem::path& path, const nn::module<T, D>& model,
                     const std::type_identity_t<optim::sgd<T, D>>* opt,
                     const train_state& state) {
  // A diverged run must not replace the last good checkpoint with a poisoned one: refuse before
  // the atomic write starts, so the file on disk stays the previous one.
  const auto model_state = model.state_dict();
  std::string bad = detail::first_non_finite(model_state);
  if (bad.empty() && opt) bad = detail::first_non_finite(opt->state_dict());
  LTL_CHECK(bad.empty(), value_error,
            "{}: not written: tensor '{}' holds NaN or infinite values (the run diverged; lower the learning "
            "rate). The previous checkpoint, if any, is kept.",
            path.string(), bad);
  io::safetensors_data data;
  for (auto& [name, t] : model_state) data.tensors.emplace("model." + name, ltl::detail::to_host(t));
  if (opt)
    for (auto& [name, t] : opt->state_dict()) data.tensors.emplace("optim." + name, ltl::detail::to_host(t));
  data.metadata["format"] = "ltlearn-checkpoint-1";
  data.metadata["ltlearn.state"] = state.to_json().dump();
  io::save_safetensors(path, data);
}

/// Options of load_checkpoint.
struct checkpoint_load_options {
  /// Accept a checkpoint past step 0 without optimizer state (momentum restarts at zero, which
  /// changes the run): only for a deliberate change of experiment.
  bool allow_missing_optimizer_state = false;
};

/// Loads a checkpoint written by save_checkpoint into `model` (and `opt`), returning the state.
/// Nothing is modified unless the whole file validates against the model: shapes and names, a
/// plausible position, finite values, non-negative batch-norm running variances and (with
/// `opt`, past step 0) the optimizer state.
template <real_scalar T, device D>
train_state load_checkpoint(const std::filesystem::path& path, nn::module<T, D>& model,
                            std::type_identity_t<optim::sgd<T, D>>* opt, checkpoint_load_options lo = {}) {
  const std::string file = path.string();
  const auto data = io::load_safetensors(path);
  auto fmt_it = data.metadata.find("format");
  LTL_CHECK(fmt_it != data.metadata.end() && fmt_it->second == "ltlearn-checkpoint-1", io_error,
            "{}: not an ltlearn checkpoint (metadata 'format' missing or unknown)", file);
  auto st_it = data.metadata.find("ltlearn.state");
  LTL_CHECK(st_it != data.metadata.end(), io_error, "{}: metadata 'ltlearn.state' is missing", file);
  // Depth-limited, duplicate-free, and every nlohmann error an io_error (safetensors.hpp).
  const nlohmann::json sj = io::parse_json_untrusted(st_it->second, file, "'ltlearn.state'");
  train_state state = train_state::from_json(sj, file);

  std::map<std::string, tensor<T>> model_state, optim_state;
  for (auto& [name, any] : data.tensors) {
    const auto* t = std::get_if<tensor<T>>(&any);
    LTL_CHECK(t != nullptr, io_error, "{}: tensor '{}' has another dtype than the model", file, name);
    if (name.rfind("model.", 0) == 0) model_state.emplace(name.substr(6), *t);
    else if (name.rfind("optim.", 0) == 0) optim_state.emplace(name.substr(6), *t);
    else throw io_error(fmt::format("{}: unexpected tensor '{}'", file, name));
  }
  const auto expected = model.state_dict();
  for (auto& [name, t] : expected) {
    auto it = model_state.find(name);
    LTL_CHECK(it != model_state.end(), io_error,
              "{}: tensor 'model.{}' is missing (a checkpoint of another architecture?)", file, name);
    LTL_CHECK(it->second.sizes() == t.sizes(), io_error, "{}: tensor 'model.{}' has shape {}, the model expects {}",
              file, name, it->second.sizes(), t.sizes());
  }
  for (auto& [name, t] : model_state)
    LTL_CHECK(expected.count(name), io_error,
              "{}: tensor 'model.{}' does not exist in the model (a checkpoint of another architecture?)", file, name);

  const std::string bad = detail::first_non_finite(model_state);
  LTL_CHECK(bad.empty(), io_error, "{}: tensor 'model.{}' holds NaN or infinite values (written by a diverged run?)",
            file, bad);
  const std::string bad_optim = detail::first_non_finite(optim_state);
  LTL_CHECK(bad_optim.empty(), io_error, "{}: tensor 'optim.{}' holds NaN or infinite values", file, bad_optim);
  for (auto& [name, t] : model_state) {
    if (!name.ends_with("running_var")) continue;
    const auto* v = t.data();
    for (index_t i = 0; i < t.numel(); ++i)
      LTL_CHECK(v[i] >= 0, io_error, "{}: batch-norm running variance 'model.{}' has the negative entry {} at {}",
                file, name, static_cast<double>(v[i]), i);
  }
  if (opt && !lo.allow_missing_optimizer_state)
    LTL_CHECK(!optim_state.empty() || state.iteration == 0 || opt->options().momentum == 0, io_error,
              "{}: the checkpoint has no optimizer state (momentum) at step {}: resuming would restart the momentum "
              "at zero and change the run (allow it deliberately with a forced resume)",
              file, state.iteration);

  std::map<std::string, tensor<T, D>> dev_model, dev_optim;
  for (auto& [n, t] : model_state) dev_model.emplace(n, t.template to<D>());
  for (auto& [n, t] : optim_state) dev_optim.emplace(n, t.template to<D>());
  if (opt) {
    try {
      opt->load_state_dict(dev_optim);
    } catch (const error& e) {
      throw io_error(fmt::format("{}: optimizer state does not fit: {}", file, e.what()));
    }
  }
  model.load_state_dict(dev_model, true);
  return state;
}

}  // namespace ltl::train
