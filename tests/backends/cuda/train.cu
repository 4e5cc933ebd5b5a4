// Training on the GPU (issue 17, items 1 and 8): one step of a CIFAR ResNet and of every other
// model of the zoo against the CPU, a 300-step long-tailed run that learns, checkpoints GPU → GPU
// (bit-exact resume) and GPU → CPU, and a ResNet-50 224×224 batch-32 step with its throughput
// and peak device memory.
//
// Every case is [cuda] and skips, with the reason printed, when no GPU is usable. The bodies
// are templates over the device and run only `if constexpr (compute_device<D>)`: until the
// CUDA backend provides every kernel area they compile to a visible skip naming that reason.
#include "support/cuda_skip.hpp"
#include "support/module_state.hpp"
#include "support/random_tensor.hpp"
#include "support/temp_dir.hpp"
#include "support/toy_data.hpp"

#include <ltlearn/backends/cpu/kernel_set.hpp>
#include <ltlearn/nn/models/resnet.hpp>
#include <ltlearn/nn/models/resnet12.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

using ltl::index_t;
using ltl::shape;
using gpu = ltl::cuda::device;
using cpu = ltl::cpu::device;

namespace {

template <class D>
using small_resnet = ltl::nn::resnet_cifar<float, D>;

template <class D>
small_resnet<D> make_small() {
  return small_resnet<D>({.depth = 8, .num_classes = 4, .in_channels = 1, .width = 8, .seed = 5});
}

[[maybe_unused]] bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

/// Loss and parameter gradients of one training-mode step on device D of the model that
/// `make(D{}, T{})` builds (same seed on every device: the same initial weights).
template <class D, class T, class Make>
std::pair<double, std::map<std::string, std::vector<T>>> model_step(Make make, const ltl::tensor<T>& x,
                                                                    const ltl::tensor<std::int64_t>& y) {
  auto m = make(D{}, T{});
  m.train();
  auto loss = ltl::cross_entropy(m.forward(ltl::variable<T, D>(x.template to<D>())), y.template to<D>());
  loss.backward();
  std::map<std::string, std::vector<T>> g;
  for (auto& [name, p] : m.named_parameters()) g.emplace(name, p.grad().to_vector());
  return {static_cast<double>(loss.value().item()), g};
}

/// One training step of `make`'s model on the GPU gives the CPU's loss (relative `loss_tol`) and
/// every parameter gradient within `grad_tol` of that gradient's largest magnitude.
template <class D, class T, class Make>
void check_one_step_against_cpu(Make make, const ltl::tensor<T>& x, const ltl::tensor<std::int64_t>& y,
                                double loss_tol, double grad_tol) {
  if constexpr (!ltl::compute_device<D>) {
    LTL_SKIP_INCOMPLETE_BACKEND(D);
  } else {
    const auto [l_cpu, g_cpu] = model_step<cpu>(make, x, y);
    const auto [l_gpu, g_gpu] = model_step<D>(make, x, y);
    REQUIRE(l_gpu == Approx(l_cpu).epsilon(loss_tol).margin(loss_tol));
    REQUIRE(g_gpu.size() == g_cpu.size());
    for (const auto& [name, want] : g_cpu) {
      INFO(name);
      const auto& got = g_gpu.at(name);
      REQUIRE(got.size() == want.size());
      double largest = 0, worst = 0;
      for (std::size_t i = 0; i < want.size(); ++i) {
        largest = std::max(largest, std::abs(static_cast<double>(want[i])));
        worst = std::max(worst, std::abs(static_cast<double>(got[i]) - static_cast<double>(want[i])));
      }
      REQUIRE(worst <= grad_tol * largest);
    }
  }
}

/// Labels 0, 1, …, n − 1 (mod classes).
ltl::tensor<std::int64_t> label_range(index_t n, index_t classes) {
  std::vector<std::int64_t> v(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = i % classes;
  return ltl::tensor<std::int64_t>::from({n}, v);
}

/// How fit() hands the augmentation to the trainer: as a standard_augment (bytes travel where
/// the device normalises them) or wrapped in an opaque function (normalised floats).
enum class feed { augment, function };

/// A trainer on device D over `train` (cross-entropy, no mixing, instance-balanced sampling),
/// checkpointing into `dir` when it is not empty; returns the per-epoch summaries.
template <class D>
std::vector<ltl::train::epoch_summary> fit(small_resnet<D>& m, const ltl::data::image_dataset& train, index_t epochs,
                                           const std::filesystem::path& dir = {}, index_t stop = -1,
                                           bool resume = false, feed how = feed::augment) {
  const ltl::data::normalize norm{{0.3}, {0.3}};
  const ltl::data::standard_augment aug{.crop = {.pad = 1}, .flip = {.p = 0.0}, .norm = norm};
  const auto labels = train.labels();
  const auto iters = static_cast<index_t>((train.size() + 15) / 16);
  auto run = [&](auto transform) {
    ltl::train::trainer tr(m, train,
                           {.epochs = epochs, .batch_size = 16, .seed = 4, .out_dir = dir, .stop_after_steps = stop,
                            .progress = false, .print_epochs = false},
                           ltl::sampling::instance_balanced(labels, static_cast<index_t>(train.num_classes()), 4),
                           ltl::losses::cross_entropy{}, ltl::mixing::none{},
                           ltl::optim::make_step_recipe(0.05, iters, 1, epochs, epochs + 1), transform, norm);
    REQUIRE(tr.image_delivery() == (how == feed::augment ? ltl::eval::delivery_for<D, float>
                                                         : ltl::data::image_delivery::floats));
    if (resume) tr.resume(dir / "checkpoint.safetensors");
    return tr.fit();
  };
  if (how == feed::augment) return run(aug);
  using fn = std::function<void(ltl::tensor<float>&, ltl::rng&)>;
  return run(fn([&](ltl::tensor<float>& x, ltl::rng& g) { aug(x, g); }));
}

/// Training fed bytes normalised on the device is training fed the host's normalised floats,
/// bit for bit (the same batches reach the model).
template <class D>
void check_byte_feed_matches_float_feed() {
  if constexpr (!ltl::compute_device<D>) {
    LTL_SKIP_INCOMPLETE_BACKEND(D);
  } else {
    const auto train = ltl_test::toy_dataset(24, 4, 2);
    auto a = make_small<D>(), b = make_small<D>();
    const auto sa = fit(a, train, 2, {}, -1, false, feed::augment);
    const auto sb = fit(b, train, 2, {}, -1, false, feed::function);
    REQUIRE(sa.size() == 2);
    for (std::size_t e = 0; e < sa.size(); ++e) REQUIRE(sa[e].train_loss == sb[e].train_loss);
    REQUIRE(same_bits(ltl_test::flat_state(a), ltl_test::flat_state(b)));
  }
}

template <class D>
void check_long_tailed_run_learns() {
  if constexpr (!ltl::compute_device<D>) {
    LTL_SKIP_INCOMPLETE_BACKEND(D);
  } else {
    // 4 classes of 50, 26, 18 and 14 images (toy_data.hpp): 7 steps of 16 per epoch, 43 epochs.
    const auto train = ltl_test::toy_dataset(48, 4, 3);
    REQUIRE(train.size() == 108);
    auto m = make_small<D>();
    const auto s = fit(m, train, 43);
    REQUIRE(s.size() == 43);
    std::vector<double> counts;
    for (auto c : train.class_counts()) counts.push_back(static_cast<double>(c));
    const auto r = ltl::eval::evaluate(m, train, {{0.3}, {0.3}}, counts, 64);
    INFO("training accuracy after 301 steps: " << r.top1);
    REQUIRE(r.top1 >= 0.9);
  }
}

template <class D>
void check_checkpoints() {
  if constexpr (!ltl::compute_device<D>) {
    LTL_SKIP_INCOMPLETE_BACKEND(D);
  } else {
    const auto train = ltl_test::toy_dataset(24, 4, 2);
    auto full = make_small<D>();
    fit(full, train, 3);
    const auto dir = ltl_test::scratch_dir("cuda_resume");
    auto part = make_small<D>();
    fit(part, train, 3, dir, 5);  // interrupted after 5 steps, mid-epoch
    REQUIRE_FALSE(same_bits(ltl_test::flat_state(part), ltl_test::flat_state(full)));
    // GPU checkpoint → CPU: the model state arrives bit for bit.
    auto on_cpu = make_small<cpu>();
    ltl::train::load_checkpoint(dir / "checkpoint.safetensors", on_cpu, nullptr);
    REQUIRE(same_bits(ltl_test::flat_state(on_cpu), ltl_test::flat_state(part)));
    // GPU checkpoint → GPU resume: the uninterrupted run's bits.
    auto resumed = make_small<D>();
    fit(resumed, train, 3, dir, -1, true);
    REQUIRE(same_bits(ltl_test::flat_state(resumed), ltl_test::flat_state(full)));
    std::filesystem::remove_all(dir);
  }
}

template <class D>
void report_resnet50_step() {
  if constexpr (!ltl::compute_device<D>) {
    LTL_SKIP_INCOMPLETE_BACKEND(D);
  } else {
    ltl::nn::resnet<float, D> m({.depth = 50, .num_classes = 1000, .seed = 1});
    m.train();
    auto params = m.named_parameters();
    ltl::optim::sgd<float, D> opt(params, {.momentum = 0.9, .weight_decay = 1e-4});
    const auto x = ltl_test::random_tensor<float>({32, 3, 224, 224}, 2).template to<D>();
    std::vector<std::int64_t> yv(32);
    for (std::size_t i = 0; i < yv.size(); ++i) yv[i] = static_cast<std::int64_t>(i * 31 % 1000);
    const auto y = ltl::tensor<std::int64_t>::from({32}, yv).template to<D>();
    auto step = [&] {
      opt.zero_grad();
      auto loss = ltl::cross_entropy(m.forward(ltl::variable<float, D>(x)), y);
      loss.backward();
      opt.step(0.1);
      return loss.value().item();  // synchronises: the step has finished
    };
    REQUIRE(std::isfinite(step()));  // warm-up: plans, workspaces, the allocator's cache
    auto& alloc = ltl::caching_allocator<D>::instance();
    alloc.reset_peak();
    const int steps = 3;
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < steps; ++i) REQUIRE(std::isfinite(step()));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double peak_mib = static_cast<double>(alloc.stats().peak_bytes_in_use) / (1 << 20);
    WARN("ResNet-50 224x224 batch 32 training step: " << 32.0 * steps / s << " images/s, peak device memory "
                                                       << peak_mib << " MiB (caching allocator, bytes in use)");
    REQUIRE(peak_mib > 0);
  }
}

}  // namespace

TEST_CASE("one ResNet-20 training step on the GPU matches the CPU's loss and gradients", "[cuda][train]") {
  LTL_REQUIRE_GPU();
  check_one_step_against_cpu<gpu>(
      [](auto d, auto t) {
        return ltl::nn::resnet_cifar<decltype(t), decltype(d)>({.depth = 20, .num_classes = 10, .seed = 3});
      },
      ltl_test::random_tensor<float>({8, 3, 32, 32}, 1), label_range(8, 10), 1e-5, 1e-3);
}

// The rest of the zoo (nn/models): ImageNet ResNets with basic blocks (10, 18) and bottlenecks
// (50, 152), ResNeXt-50 32x4d (grouped 3x3 convolutions), ResNet-12 (LeakyReLU, max pooling), at
// 64x64 (the ImageNet stem and four stages leave 2x2 planes) and batch 2, so every layer runs at
// a cost the emulated device can afford. In double: at this size the bottleneck networks are
// badly conditioned at initialisation (batch norm over 8 values per channel at the last stage,
// some of them nearly constant), so much that the CPU's own float step differs from its double
// step by up to 27 % in some gradients (ResNet-50; ResNet-18: 1e-5). Float says little there;
// in double the GPU and the CPU agree to 1e-8 of each gradient's largest value, and every kernel
// the zoo uses is compared in float on its own (kernels.cu, conv.cu).
TEST_CASE("one training step of every model of the zoo on the GPU matches the CPU's loss and gradients",
          "[cuda][train][zoo]") {
  LTL_REQUIRE_GPU();
  const auto x = ltl_test::random_tensor<double>({2, 3, 64, 64}, 7);
  const auto y = label_range(2, 10);
  for (const int depth : {10, 18, 50, 152}) {
    INFO("ResNet-" << depth);
    check_one_step_against_cpu<gpu>(
        [depth](auto d, auto t) {
          return ltl::nn::resnet<decltype(t), decltype(d)>({.depth = depth, .num_classes = 10, .seed = 11});
        },
        x, y, 1e-10, 1e-8);
  }
  {
    INFO("ResNeXt-50 32x4d");
    check_one_step_against_cpu<gpu>(
        [](auto d, auto t) {
          return ltl::nn::resnet<decltype(t), decltype(d)>(ltl::nn::resnext50_32x4d_options(10, 12));
        },
        x, y, 1e-10, 1e-8);
  }
  {
    INFO("ResNet-12");
    check_one_step_against_cpu<gpu>(
        [](auto d, auto t) {
          return ltl::nn::resnet12<decltype(t), decltype(d)>({.num_classes = 10, .seed = 13});
        },
        x, y, 1e-10, 1e-8);
  }
}

TEST_CASE("a 300-step long-tailed run on the GPU reaches 90 % training accuracy", "[cuda][train]") {
  LTL_REQUIRE_GPU();
  check_long_tailed_run_learns<gpu>();
}

TEST_CASE("GPU training fed bytes normalised on the device equals training fed normalised floats",
          "[cuda][train][upload]") {
  LTL_REQUIRE_GPU();
  check_byte_feed_matches_float_feed<gpu>();
}

TEST_CASE("a GPU checkpoint resumes on the GPU bit for bit and loads on the CPU", "[cuda][train][checkpoint]") {
  LTL_REQUIRE_GPU();
  check_checkpoints<gpu>();
}

TEST_CASE("a ResNet-50 224x224 batch-32 training step: images/s and peak device memory", "[cuda][train][perf]") {
  LTL_REQUIRE_GPU();
#if defined(LTL_CUDA_EMULATION)
  WARN("SKIPPED: throughput on the emulated device (tests/support/cuda_emu) measures nothing; a GPU runs this case");
#else
  report_resnet50_step<gpu>();
#endif
}
