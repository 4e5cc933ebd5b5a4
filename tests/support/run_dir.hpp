#pragma once
// Test helpers for the run-directory tests: a scratch directory, whole-file reads, and a tiny
// trainer on the toy data (ResNet-8 of width 4, three classes, one-channel images).
#include "support/toy_data.hpp"

#include <ltlearn/losses/policies.hpp>
#include <ltlearn/mixing/policies.hpp>
#include <ltlearn/nn/models/resnet_cifar.hpp>
#include <ltlearn/optim/schedule.hpp>
#include <ltlearn/sampling/samplers.hpp>
#include <ltlearn/train/trainer.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <unistd.h>

namespace ltl_test {

/// An empty directory `<tmp>/ltl_<name>_<pid>` (emptied if it exists).
inline std::filesystem::path scratch_dir(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() / ("ltl_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

/// The bytes of `p` ("" when it cannot be read).
inline std::string read_whole(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

/// Builds a trainer of `model` on `data` writing to `dir` (`epochs` epochs of batch 8, seed 4,
/// cross-entropy, instance-balanced sampling, no mixing) and passes it to `use`.
template <class Use>
void with_tiny_trainer(ltl::nn::resnet_cifar<float>& model, const ltl::data::image_dataset& data,
                       const std::filesystem::path& dir, ltl::index_t epochs, Use&& use) {
  const auto y = data.labels();
  ltl::train::trainer tr(model, data,
                         {.epochs = epochs, .batch_size = 8, .seed = 4, .out_dir = dir, .progress = false,
                          .print_epochs = false},
                         ltl::sampling::instance_balanced(y, 3, 4), ltl::losses::cross_entropy{}, ltl::mixing::none{},
                         ltl::optim::make_step_recipe(0.05, 4, 0, 1, 2), [](ltl::tensor<float>&, ltl::rng&) {},
                         {{0.3}, {0.3}});
  use(tr);
}

/// The tiny model with_tiny_trainer is meant for.
inline ltl::nn::resnet_cifar<float> tiny_resnet() {
  return ltl::nn::resnet_cifar<float>({.depth = 8, .num_classes = 3, .in_channels = 1, .width = 4, .seed = 11});
}

}  // namespace ltl_test
