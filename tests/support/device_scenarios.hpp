#pragma once
// The layers above the backend run end to end on a device D, as scenarios shared by the tests
// that compare devices: tests/device_generic/train_eval.cpp (the test devices against the CPU,
// bit for bit) and tests/backends/cuda/paths.cu (the GPU against the CPU, within tolerances).
// Each scenario returns what it computed as host values, so that the two files differ only in
// how they compare.
#include "support/module_state.hpp"
#include "support/toy_data.hpp"

#include <catch2/catch.hpp>

#include <ltlearn/augment/confusion.hpp>
#include <ltlearn/augment/feature_bank.hpp>
#include <ltlearn/augment/finetune.hpp>
#include <ltlearn/augment/fsa.hpp>
#include <ltlearn/augment/head_tail.hpp>
#include <ltlearn/classifier/decoupled.hpp>
#include <ltlearn/classifier/features.hpp>
#include <ltlearn/data/transforms.hpp>
#include <ltlearn/losses/policies.hpp>
#include <ltlearn/mixing/policies.hpp>
#include <ltlearn/nn/models/resnet_cifar.hpp>
#include <ltlearn/optim/schedule.hpp>
#include <ltlearn/sampling/samplers.hpp>
#include <ltlearn/train/trainer.hpp>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace ltl_test::scenarios {

template <class D>
using toy_model = ltl::nn::resnet_cifar<float, D>;

/// ResNet-8 of width 4 for the 1-channel, 3-class toy images (toy_data.hpp).
template <class D>
toy_model<D> make_toy_model() {
  return toy_model<D>({.depth = 8, .num_classes = 3, .in_channels = 1, .width = 4, .seed = 5});
}

/// The normalisation of the toy images.
inline ltl::data::normalize toy_norm() { return {{0.3}, {0.3}}; }

/// MFW at stage 1, the mixing of the papers' CIFAR recipe.
inline ltl::mixing::mfw stage1_mfw() { return {.alpha = 1.0, .at = "stage1"}; }

/// Two epochs of LDAM-DRW with `mix` and square-root sampling on the toy set, with the held-out
/// and test evaluations after each epoch, then the per-epoch summaries.
/// With `out_dir`, the trainer checkpoints there, stops after `stop` steps (-1: never) and,
/// with `resume`, first resumes from the checkpoint there.
template <class D, class Mix = ltl::mixing::mfw>
std::vector<ltl::train::epoch_summary> train_two_epochs(toy_model<D>& m, const ltl::data::image_dataset& train,
                                                        const ltl::data::image_dataset& test, Mix mix = stage1_mfw(),
                                                        const std::filesystem::path& out_dir = {},
                                                        ltl::index_t stop = -1, bool resume = false) {
  const auto norm = toy_norm();
  const ltl::data::standard_augment aug{.crop = {.pad = 1}, .flip = {.p = 0.5}, .norm = norm};
  ltl::train::trainer tr(m, train,
                         {.epochs = 2, .batch_size = 8, .seed = 4, .out_dir = out_dir, .stop_after_steps = stop,
                          .loader_workers = 1, .progress = false, .print_epochs = false},
                         ltl::sampling::power_sampler(train.labels(), 3, 0.5, 4),
                         ltl::losses::compose(ltl::losses::ldam{}, ltl::losses::drw(1)), std::move(mix),
                         ltl::optim::make_step_recipe(0.05, 6, 1, 1, 2), aug, norm);
  // A device whose upload normalises bytes (the remote test device, a GPU) gets the augmented bytes.
  REQUIRE(tr.image_delivery() == (ltl::normalizes_bytes<D> ? ltl::data::image_delivery::bytes
                                                           : ltl::data::image_delivery::floats));
  tr.set_eval_sets(&test, &test);
  if (resume) tr.resume(out_dir / "checkpoint.safetensors");
  return tr.fit();
}

/// FSA phase II on a fresh toy model: the feature bank at stage 3, the confusing classes of the
/// tail, four fine-tuning iterations; the model's state afterwards and the first and last loss.
struct fsa_outcome {
  std::vector<float> state;
  std::vector<double> losses;
};

template <class D>
fsa_outcome fsa_phase2(const ltl::data::image_dataset& train) {
  namespace la = ltl::augment;
  auto m = make_toy_model<D>();
  auto bank = la::build_feature_bank(m, train, toy_norm(), "stage3", 7);
  const auto split = la::split_head_tail(train.class_counts(), 0.6);
  const auto conf = la::confusing_classes(la::mean_class_scores(bank.logits, bank.labels), split.tail, 1);
  la::fsa_generator<float> gen(bank, split, conf, {.tail_per_batch = 2, .augment_per_tail = 2, .seed = 1});
  const auto res = la::fsa_finetune(m, gen, {.iterations = 4, .lr = 0.05});
  REQUIRE(res.iterations == 4);
  return {flat_state(m), {res.first_loss, res.last_loss}};
}

/// Stage 2 on device D from cached features: cRT (Kang et al.'s class-aware budget), LWS on it,
/// and LWS folded into a plain classifier; every learned tensor by name ("crt.weight",
/// "lws.<parameter>", "folded.weight", …), and the cRT head's report on the features.
struct stage2_outcome {
  std::map<std::string, std::vector<float>> weights;
  ltl::metrics::eval_report crt_report;
};

template <class D>
stage2_outcome stage2(const ltl::classifier::feature_table<float>& features, const std::vector<double>& counts) {
  const ltl::classifier::stage2_options o{.epochs = 2, .batch_size = 16, .seed = 3};
  const ltl::classifier::cached_source<float> src(features);
  stage2_outcome out;
  const auto crt = ltl::classifier::crt<float, D>(src, o);
  out.weights["crt.weight"] = crt->weight.value().to_vector();
  out.weights["crt.bias"] = crt->bias.value().to_vector();
  const auto lws = ltl::classifier::lws<float, D>(*crt, src, o);
  for (const auto& [name, p] : lws->named_parameters()) out.weights["lws." + name] = p.value().to_vector();
  const auto folded = lws->folded();
  STATIC_REQUIRE(std::is_same_v<typename std::decay_t<decltype(*folded)>::device_type, D>);
  out.weights["folded.weight"] = folded->weight.value().to_vector();
  out.weights["folded.bias"] = folded->bias.value().to_vector();
  out.crt_report = ltl::classifier::evaluate_features<float, D>(ltl::classifier::as_head(*crt), features, counts);
  return out;
}

/// The training set's class counts as the doubles the metrics take.
inline std::vector<double> class_counts(const ltl::data::image_dataset& train) {
  std::vector<double> counts;
  for (auto c : train.class_counts()) counts.push_back(static_cast<double>(c));
  return counts;
}

}  // namespace ltl_test::scenarios
