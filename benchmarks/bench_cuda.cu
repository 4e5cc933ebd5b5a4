// GPU benchmarks (issue 17, item 9): the ResNet-32 CIFAR training step at batch 128 and the
// ResNet-50 224×224 step at batch 64 (items_per_second = images/s), the fused loss at
// (512, 8142) and (1024, 8142) for every loss variant, and device copy bandwidth at the loss's
// working-set size. bytes_per_second counts the logits read plus the gradient written
// (2·B·C·4 bytes), as bench_loss.cpp does; the loss kernel's `copy_share` counter is its
// bytes/s as a fraction of the copy bandwidth measured in the same run at the same size.
// compare_pytorch.py --device cuda runs PyTorch's versions on the same GPU beside these.
//
// GPU time is measured with CUDA events around each iteration (manual time), so the host's
// launch overhead counts only as far as it delays the GPU. Without a GPU, or while the CUDA
// backend lacks the kernels a workload needs, each benchmark is skipped with the reason.
#include <ltlearn/cuda.hpp>

#include "bench_common.hpp"

#include <benchmark/benchmark.h>

#include <string>

namespace {

using ltl_bench::index_t;
using gpu = ltl::cuda::device;

/// Reason to skip a GPU benchmark, or empty when one can run.
std::string gpu_unusable() {
  return ltl::cuda::available() ? std::string() : "no GPU: " + ltl::cuda::unavailable_reason();
}

/// Times `fn` on the current device's stream with events; returns seconds.
class event_timer {
 public:
  event_timer() {
    LTL_CUDA_CHECK(cudaEventCreate(&start_));
    LTL_CUDA_CHECK(cudaEventCreate(&stop_));
  }
  ~event_timer() {
    (void)cudaEventDestroy(start_);
    (void)cudaEventDestroy(stop_);
  }
  event_timer(const event_timer&) = delete;
  event_timer& operator=(const event_timer&) = delete;
  template <class F>
  double seconds(F&& fn) {
    const cudaStream_t s = ltl::cuda::context::current().stream();
    LTL_CUDA_CHECK(cudaEventRecord(start_, s));
    fn();
    LTL_CUDA_CHECK(cudaEventRecord(stop_, s));
    LTL_CUDA_CHECK(cudaEventSynchronize(stop_));
    float ms = 0;
    LTL_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
    return static_cast<double>(ms) * 1e-3;
  }

 private:
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

/// Device-to-device copy bandwidth (bytes read + written per second) of `floats` floats.
[[maybe_unused]] double copy_bandwidth(index_t floats, int reps = 20) {
  ltl::tensor<float, gpu> a(ltl::shape{floats}), b(ltl::shape{floats});
  a.zero_();
  event_timer t;
  b.copy_(a);  // warm-up
  const double s = t.seconds([&] {
    for (int i = 0; i < reps; ++i) b.copy_(a);
  });
  return 2.0 * static_cast<double>(floats) * sizeof(float) * reps / s;
}

// ---- training steps ----------------------------------------------------------------------------

/// Forward, cross-entropy, backward and SGD of `Model` on device D at a fixed batch.
template <class D, class Model, class Options>
void train_step_benchmark(benchmark::State& state, const Options& opt, index_t batch, index_t hw, index_t classes) {
  if constexpr (!ltl::compute_device<D>) {
    state.SkipWithError("the CUDA backend is not a complete compute_device yet (backends/cuda/kernel_set.hpp)");
  } else {
    Model model(opt);
    model.train();
    ltl::optim::sgd<float, D> sgd(model.named_parameters(), {.momentum = 0.9, .weight_decay = 2e-4});
    const auto x = ltl_bench::randn(ltl::shape{batch, 3, hw, hw}, 7).template to<D>();
    const auto y = ltl_bench::labels(batch, classes, 8).template to<D>();
    auto step = [&] {
      sgd.zero_grad();
      auto loss = ltl::cross_entropy(model.forward(ltl::variable<float, D>(x)), y);
      loss.backward();
      sgd.step(0.01);
    };
    step();  // plans, workspaces, the allocator's cache, momentum buffers
    event_timer t;
    for (auto _ : state) state.SetIterationTime(t.seconds(step));
    state.SetItemsProcessed(state.iterations() * batch);
    state.counters["peak_MiB"] =
        static_cast<double>(ltl::caching_allocator<D>::instance().stats().peak_bytes_in_use) / (1 << 20);
  }
}

void BM_cuda_resnet32_train(benchmark::State& state) {
  if (const auto why = gpu_unusable(); !why.empty()) return state.SkipWithError(why.c_str());
  train_step_benchmark<gpu, ltl::nn::resnet_cifar<float, gpu>>(
      state, ltl::nn::resnet_cifar_options{.depth = 32, .num_classes = 10, .seed = 1}, state.range(0), 32, 10);
}
BENCHMARK(BM_cuda_resnet32_train)->Arg(128)->Unit(benchmark::kMillisecond)->UseManualTime();

void BM_cuda_resnet50_train(benchmark::State& state) {
  if (const auto why = gpu_unusable(); !why.empty()) return state.SkipWithError(why.c_str());
  train_step_benchmark<gpu, ltl::nn::resnet<float, gpu>>(
      state, ltl::nn::resnet_options{.depth = 50, .num_classes = 1000, .seed = 1}, state.range(0), 224, 1000);
}
BENCHMARK(BM_cuda_resnet50_train)->Arg(64)->Unit(benchmark::kMillisecond)->UseManualTime();

// ---- fused loss and copy bandwidth -------------------------------------------------------------

void loss_sizes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"variant", "B", "C"});
  for (int v = 0; v < 6; ++v)
    for (index_t B : {512, 1024}) b->Args({v, B, 8142});
  b->UseManualTime();
}

/// The backend's fused loss kernel alone, writing into a preallocated gradient.
template <class D>
void loss_kernel_benchmark(benchmark::State& state) {
  if constexpr (!ltl::loss_kernels<D, float>) {
    state.SkipWithError("the CUDA backend has no fused loss kernel yet (backends/cuda/kernel_set.hpp)");
  } else {
    const int v = static_cast<int>(state.range(0));
    const index_t B = state.range(1), C = state.range(2);
    const auto terms = ltl_bench::loss_variant_terms(v, C);
    const auto z = ltl_bench::randn(ltl::shape{B, C}, 11, 2.0).template to<D>();
    const auto y = ltl_bench::labels(B, C, 12).template to<D>();
    ltl::tensor<float, D> dz(ltl::shape{B, C});
    (void)fused_loss(z, y, terms, &dz);
    event_timer t;
    double total = 0;
    for (auto _ : state) {
      const double s = t.seconds([&] { benchmark::DoNotOptimize(fused_loss(z, y, terms, &dz)); });
      total += s;
      state.SetIterationTime(s);
    }
    const double bytes = 2.0 * static_cast<double>(B * C) * sizeof(float);
    state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes));
    state.counters["copy_share"] = bytes * static_cast<double>(state.iterations()) / total / copy_bandwidth(B * C);
    state.SetLabel(ltl_bench::loss_variant_name(v));
  }
}

void BM_cuda_loss_kernel(benchmark::State& state) {
  if (const auto why = gpu_unusable(); !why.empty()) return state.SkipWithError(why.c_str());
  loss_kernel_benchmark<gpu>(state);
}
BENCHMARK(BM_cuda_loss_kernel)->Apply(loss_sizes);

/// Through the public API as a training step uses it (logit_adjusted_loss, then backward).
template <class D>
void loss_autograd_benchmark(benchmark::State& state) {
  if constexpr (!ltl::compute_device<D>) {
    state.SkipWithError("the CUDA backend is not a complete compute_device yet (backends/cuda/kernel_set.hpp)");
  } else {
    const int v = static_cast<int>(state.range(0));
    const index_t B = state.range(1), C = state.range(2);
    const auto terms = ltl_bench::loss_variant_terms(v, C);
    ltl::variable<float, D> z(ltl_bench::randn(ltl::shape{B, C}, 11, 2.0).template to<D>(), true);
    const auto y = ltl_bench::labels(B, C, 12).template to<D>();
    auto step = [&] {
      z.zero_grad();
      auto loss = ltl::logit_adjusted_loss(z, y, terms);
      loss.backward();
    };
    step();
    event_timer t;
    for (auto _ : state) state.SetIterationTime(t.seconds(step));
    state.SetBytesProcessed(state.iterations() * 2 * B * C * static_cast<index_t>(sizeof(float)));
    state.SetLabel(ltl_bench::loss_variant_name(v));
  }
}

void BM_cuda_loss_autograd(benchmark::State& state) {
  if (const auto why = gpu_unusable(); !why.empty()) return state.SkipWithError(why.c_str());
  loss_autograd_benchmark<gpu>(state);
}
BENCHMARK(BM_cuda_loss_autograd)->Apply(loss_sizes);

/// Device copy bandwidth at the loss's working-set size (B·C floats read, B·C written).
void BM_cuda_copy_bandwidth(benchmark::State& state) {
  if (const auto why = gpu_unusable(); !why.empty()) return state.SkipWithError(why.c_str());
  const index_t B = state.range(0), C = state.range(1);
  ltl::tensor<float, gpu> a(ltl::shape{B, C}), b(ltl::shape{B, C});
  a.zero_();
  b.copy_(a);
  event_timer t;
  for (auto _ : state) state.SetIterationTime(t.seconds([&] { b.copy_(a); }));
  state.SetBytesProcessed(state.iterations() * 2 * B * C * static_cast<index_t>(sizeof(float)));
}
BENCHMARK(BM_cuda_copy_bandwidth)->ArgNames({"B", "C"})->Args({512, 8142})->Args({1024, 8142})->UseManualTime();

}  // namespace

BENCHMARK_MAIN();
