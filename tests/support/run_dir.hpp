#pragma once
// Test helpers for the run-directory and checkpoint tests: whole-file reads, a tiny trainer on the
// toy data (ResNet-8 of width 4, three classes, one-channel images) and checkpoint rewriting;
// with them the scratch directories of temp_dir.hpp.
#include "support/temp_dir.hpp"
#include "support/toy_data.hpp"

#include <ltlearn/losses/policies.hpp>
#include <ltlearn/mixing/policies.hpp>
#include <ltlearn/nn/models/resnet_cifar.hpp>
#include <ltlearn/optim/schedule.hpp>
#include <ltlearn/sampling/samplers.hpp>
#include <ltlearn/train/safetensors.hpp>
#include <ltlearn/train/trainer.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>

namespace ltl_test {

/// The bytes of `p` ("" when it cannot be read).
inline std::string read_whole(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

/// A tiny run: where it writes and what it changes from the defaults of with_tiny_trainer.
struct tiny_run {
  std::filesystem::path dir;  ///< the trainer's out_dir ("" writes nothing)
  std::uint64_t seed = 4;
  ltl::index_t batch = 8, epochs = 2;
  ltl::index_t stop = -1;             ///< trainer_options::stop_after_steps
  ltl::index_t checkpoint_every = 0;  ///< trainer_options::checkpoint_every_steps
  double lr = 0.05;                   ///< the step schedule's base rate
  bool overwrite = false;
};

/// Builds a trainer of `model` on `data` as `run` says (cross-entropy, instance-balanced sampling
/// of three classes seeded with run.seed, no mixing, no augmentation, mean 0.3 / std 0.3) and
/// passes it to `use`.
template <class Use>
void with_tiny_trainer(ltl::nn::resnet_cifar<float>& model, const ltl::data::image_dataset& data, const tiny_run& run,
                       Use&& use) {
  const auto y = data.labels();
  ltl::train::trainer tr(model, data,
                         {.epochs = run.epochs, .batch_size = run.batch, .seed = run.seed, .out_dir = run.dir,
                          .checkpoint_every_steps = run.checkpoint_every, .stop_after_steps = run.stop,
                          .progress = false, .print_epochs = false, .overwrite = run.overwrite},
                         ltl::sampling::instance_balanced(y, 3, run.seed), ltl::losses::cross_entropy{},
                         ltl::mixing::none{}, ltl::optim::make_step_recipe(run.lr, 4, 0, 1, 2),
                         [](ltl::tensor<float>&, ltl::rng&) {}, {{0.3}, {0.3}});
  use(tr);
}

/// Rewrites the checkpoint at `p`: its 'ltlearn.state' JSON through `edit_state` and its tensors
/// through `edit_tensors`, as a corrupted or hand-edited file would have them.
template <class EditState, class EditTensors>
void rewrite_checkpoint(const std::filesystem::path& p, EditState&& edit_state, EditTensors&& edit_tensors) {
  auto d = ltl::io::load_safetensors(p);
  auto st = nlohmann::json::parse(d.metadata.at("ltlearn.state"));
  edit_state(st);
  d.metadata["ltlearn.state"] = st.dump();
  edit_tensors(d.tensors);
  ltl::io::save_safetensors(p, d);
}
/// Rewrites only the 'ltlearn.state' JSON of the checkpoint at `p` through `edit_state`.
template <class EditState>
void rewrite_checkpoint(const std::filesystem::path& p, EditState&& edit_state) {
  rewrite_checkpoint(p, std::forward<EditState>(edit_state), [](auto&) {});
}

/// The tiny model with_tiny_trainer is meant for.
inline ltl::nn::resnet_cifar<float> tiny_resnet() {
  return ltl::nn::resnet_cifar<float>({.depth = 8, .num_classes = 3, .in_channels = 1, .width = 4, .seed = 11});
}

}  // namespace ltl_test
