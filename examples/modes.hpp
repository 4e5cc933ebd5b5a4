#pragma once
// The one choice fmnist_lt and cifar_lt make: train (default), --evaluate a checkpoint, or run
// --fsa-phase2 on one — each mode in its own header.

#include "common.hpp"
#include "distributed.hpp"
#include "evaluate_mode.hpp"
#include "fsa_phase2.hpp"
#include "train_mode.hpp"

#include <fmt/format.h>

#include <limits>
#include <string>
#include <vector>

namespace example {

/// What the modes of fmnist_lt / cifar_lt and decouple write into a run directory besides the
/// training run's own files (train::run_outputs): a fresh --overwrite removes them too.
inline std::vector<std::string> mode_outputs() {
  return {"config.toml",     "eval_config.toml",           "eval.json",         "fsa_config.toml",
          "fsa_results.json", "fsa_checkpoint.safetensors", "decouple_config.toml", "decouple.json",
          "analysis.json"};
}

/// Builds the long-tailed split of `full` (head-class size `n_max`) and the model the flags
/// define, then runs the mode the flags choose.
inline int run_mode(const run_flags& f, const ltl::data::image_dataset& full, const ltl::data::image_dataset& test,
                    index_t n_max, const ltl::data::normalize& norm, const std::string& args_text) {
  auto [train, val] = make_split(f, full, n_max);
  fmt::print("train {}\ntest  {}\n{}", train.summary(), test.summary(),
             f.held_out > 0 ? "val   " + val.summary() + "\n" : std::string());
  const auto* held_out = f.held_out > 0 ? &val : nullptr;
  // Only training is data parallel: under mpirun the other modes run on rank 0 alone.
  if ((!f.evaluate.empty() || f.fsa.enabled()) && !distributed::root()) return 0;
  // The resolved flags (config_to_str: every option, defaults included), written before any work
  // so that even a killed run can be repeated with --config FILE; by rank 0 alone under mpirun.
  const char* config_name = !f.evaluate.empty() ? "eval_config.toml" : f.fsa.enabled() ? "fsa_config.toml" : "config.toml";
  // A training run that the trainer would refuse (another run's checkpoint in --out, neither
  // resumed nor --overwrite) must not touch that run, its config.toml included: the trainer's
  // directory check, made before the config is written. (Keeping every log line here; the
  // trainer trims the log once it knows the checkpoint's epoch.)
  // --overwrite removes the replaced run's files here, this program's other outputs included.
  if (f.evaluate.empty() && !f.fsa.enabled() && !f.out.empty() && distributed::root())
    ltl::train::prepare_run_dir(f.out, {.resumed = !f.resume.empty(), .overwrite = f.overwrite,
                                        .completed_epochs = std::numeric_limits<index_t>::max(),
                                        .also_replace = mode_outputs()});
  if (distributed::root()) write_config(f.out, config_name, args_text);
  return with_device(f.device, [&](auto dev) {  // the model and every step on --device
    using D = decltype(dev);
    // Training under mpirun on GPUs: this rank's GPU is made current before the model is built
    // (and NCCL set up, a collective of every rank: the other modes run on rank 0 alone).
    if (f.evaluate.empty() && !f.fsa.enabled()) (void)distributed::trainer_comm<D>();
    ltl::nn::resnet_cifar<float, D> model(model_options(f, static_cast<index_t>(full.num_classes()), test.channels()));
    if (!f.evaluate.empty()) return evaluate_checkpoint(f, model, train, held_out, test, norm);
    if (f.fsa.enabled()) return run_fsa_phase2(f, model, train, held_out, test, norm, args_text);
    return train_long_tailed(f, model, train, held_out, test, norm, args_text);
  });
}

}  // namespace example
