// The layers above the model — trainer, evaluation, feature extraction and stage-2 decoupling —
// are generic over the device: they run on ltl::testing::device (a device type that is not the
// CPU's but forwards to its kernels) and give the CPU device's results bit for bit. Anything in
// those paths still hard-wired to `cpu::device` or to `cpu::` kernels fails to compile here.
#include <catch2/catch.hpp>

#include "support/test_device.hpp"
#include "support/toy_data.hpp"

#include <ltlearn/classifier/decoupled.hpp>
#include <ltlearn/classifier/features.hpp>
#include <ltlearn/data/transforms.hpp>
#include <ltlearn/eval/evaluate.hpp>
#include <ltlearn/losses/policies.hpp>
#include <ltlearn/mixing/policies.hpp>
#include <ltlearn/nn/models/resnet_cifar.hpp>
#include <ltlearn/optim/schedule.hpp>
#include <ltlearn/sampling/samplers.hpp>
#include <ltlearn/train/trainer.hpp>

#include <cstring>
#include <string>
#include <vector>

namespace {

using cpu_dev = ltl::cpu::device;
using test_dev = ltl::testing::device;

template <class D>
using model_t = ltl::nn::resnet_cifar<float, D>;

template <class D>
model_t<D> make_model() {
  return model_t<D>({.depth = 8, .num_classes = 3, .in_channels = 1, .width = 4, .seed = 5});
}

/// Every entry of the model's state (parameters and batch-norm buffers), in order, on the host.
template <class D>
std::vector<float> flat_state(const model_t<D>& m) {
  std::vector<float> v;
  for (auto& [name, t] : m.state_dict()) {
    const auto x = t.to_vector();
    v.insert(v.end(), x.begin(), x.end());
  }
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

/// Two epochs of LDAM-DRW with MFW at stage 1 and square-root sampling on the toy set, then the
/// per-epoch summaries (loss, accuracy, the held-out and test reports).
template <class D>
std::vector<ltl::train::epoch_summary> train_two_epochs(model_t<D>& m, const ltl::data::image_dataset& train,
                                                        const ltl::data::image_dataset& test) {
  const ltl::data::normalize norm{{0.3}, {0.3}};
  const ltl::data::standard_augment aug{.crop = {.pad = 1}, .flip = {.p = 0.5}, .norm = norm};
  ltl::train::trainer tr(m, train,
                         {.epochs = 2, .batch_size = 8, .seed = 4, .loader_workers = 1, .progress = false,
                          .print_epochs = false},
                         ltl::sampling::power_sampler(train.labels(), 3, 0.5, 4),
                         ltl::losses::compose(ltl::losses::ldam{}, ltl::losses::drw(1)),
                         ltl::mixing::mfw{.alpha = 1.0, .at = "stage1"}, ltl::optim::make_step_recipe(0.05, 6, 1, 1, 2),
                         [&](ltl::tensor<float>& x, ltl::rng& g) { aug(x, g); }, norm);
  tr.set_eval_sets(&test, &test);
  return tr.fit();
}

void require_same_report(const ltl::metrics::eval_report& a, const ltl::metrics::eval_report& b) {
  REQUIRE(a.loss == b.loss);
  REQUIRE(a.top1 == b.top1);
  REQUIRE(a.mean_per_class == b.mean_per_class);
  REQUIRE(a.per_class == b.per_class);
  REQUIRE(a.to_json(true).dump() == b.to_json(true).dump());
}

}  // namespace

TEST_CASE("a trainer run, evaluation, feature extraction and stage 2 on the test device give the CPU's bits",
          "[device][train]") {
  const auto train = ltl_test::toy_dataset(24, 3, 2), test = ltl_test::toy_dataset(9, 3, 7);
  const ltl::data::normalize norm{{0.3}, {0.3}};
  auto on_cpu = make_model<cpu_dev>();
  auto on_test = make_model<test_dev>();
  REQUIRE(same_bits(flat_state(on_cpu), flat_state(on_test)));

  // Trainer: two epochs (sampling, augmentation, MFW mixing, LDAM-DRW loss, SGD, the held-out
  // and test evaluations after each epoch).
  const auto s_cpu = train_two_epochs(on_cpu, train, test);
  const auto s_test = train_two_epochs(on_test, train, test);
  REQUIRE(s_cpu.size() == 2);
  REQUIRE(s_test.size() == 2);
  for (std::size_t e = 0; e < 2; ++e) {
    INFO("epoch " << e);
    REQUIRE(s_cpu[e].train_loss == s_test[e].train_loss);
    REQUIRE(s_cpu[e].train_acc == s_test[e].train_acc);
    require_same_report(*s_cpu[e].test, *s_test[e].test);
    require_same_report(*s_cpu[e].val, *s_test[e].val);
  }
  const auto trained = flat_state(on_cpu);
  REQUIRE(same_bits(trained, flat_state(on_test)));
  REQUIRE_FALSE(same_bits(trained, flat_state(make_model<cpu_dev>())));  // the run did train

  // Evaluation in eval mode (batch-norm running statistics).
  std::vector<double> counts;
  for (auto c : train.class_counts()) counts.push_back(static_cast<double>(c));
  require_same_report(ltl::eval::evaluate(on_cpu, test, norm, counts, 5),
                      ltl::eval::evaluate(on_test, test, norm, counts, 5));

  // Feature extraction (the "pool" point, batches of 7 with a partial last batch).
  const auto f_cpu = ltl::classifier::extract_features(on_cpu, train, norm, 7);
  const auto f_test = ltl::classifier::extract_features(on_test, train, norm, 7);
  REQUIRE(same_bits(f_cpu.features.to_vector(), f_test.features.to_vector()));
  REQUIRE(f_cpu.labels.to_vector() == f_test.labels.to_vector());

  // Stage 2 on the cached features: cRT (classifier re-trained with Kang et al.'s class-aware
  // budget) and LWS on it, each trained on the device, then evaluated there.
  const ltl::classifier::stage2_options o{.epochs = 2, .batch_size = 16, .seed = 3};
  const ltl::classifier::cached_source<float> src(f_cpu);
  const auto crt_cpu = ltl::classifier::crt<float, cpu_dev>(src, o);
  const auto crt_test = ltl::classifier::crt<float, test_dev>(src, o);
  REQUIRE(same_bits(crt_cpu->weight.value().to_vector(), crt_test->weight.value().to_vector()));
  REQUIRE(same_bits(crt_cpu->bias.value().to_vector(), crt_test->bias.value().to_vector()));
  const auto lws_cpu = ltl::classifier::lws<float, cpu_dev>(*crt_cpu, src, o);
  const auto lws_test = ltl::classifier::lws<float, test_dev>(*crt_test, src, o);
  for (const auto& [name, p] : lws_cpu->named_parameters()) {
    INFO(name);
    bool found = false;
    for (const auto& [name2, q] : lws_test->named_parameters())
      if (name2 == name) {
        found = true;
        REQUIRE(same_bits(p.value().to_vector(), q.value().to_vector()));
      }
    REQUIRE(found);
  }
  require_same_report(ltl::classifier::evaluate_features<float, cpu_dev>(ltl::classifier::as_head(*crt_cpu), f_cpu, counts),
                      ltl::classifier::evaluate_features<float, test_dev>(ltl::classifier::as_head(*crt_test), f_cpu, counts));
}
