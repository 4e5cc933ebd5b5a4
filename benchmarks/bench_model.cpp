// ResNet-32 training and evaluation steps at batch 128 (3×32×32 CIFAR and 1×28×28 Fashion-MNIST
// inputs) and the data pipeline (decode, augment, batch) on one thread. items_per_second is
// images per second.
#include "bench_common.hpp"

#include <benchmark/benchmark.h>
#include <ltlearn/data/loader.hpp>

#include <filesystem>
#include <memory>
#include <numeric>

namespace {

using ltl_bench::index_t;

// Args: {batch, channels, height = width}.
void BM_resnet32_train(benchmark::State& state) {
  ltl_bench::resnet_step s(state.range(0), state.range(1), state.range(2));
  s.train();  // warm the allocator cache and the momentum buffers
  for (auto _ : state) benchmark::DoNotOptimize(s.train());
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_resnet32_train)->Args({128, 3, 32})->Args({128, 1, 28})->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_resnet32_eval(benchmark::State& state) {
  ltl_bench::resnet_step s(state.range(0), state.range(1), state.range(2));
  s.eval();
  for (auto _ : state) benchmark::DoNotOptimize(s.eval());
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_resnet32_eval)->Args({128, 3, 32})->Args({128, 1, 28})->Unit(benchmark::kMillisecond)->UseRealTime();

/// A synthetic uint8 dataset of n images [c, hw, hw] (the pipeline does not care what they show).
ltl::data::image_dataset synthetic_dataset(index_t n, index_t c, index_t hw) {
  ltl::rng g(3);
  std::vector<std::uint8_t> px(static_cast<std::size_t>(n * c * hw * hw));
  for (auto& v : px) v = static_cast<std::uint8_t>(g.below(256));
  std::vector<std::int64_t> y(static_cast<std::size_t>(n));
  for (auto& v : y) v = static_cast<std::int64_t>(g.below(10));
  return ltl::data::image_dataset("synthetic", ltl::shape{c, hw, hw}, std::move(px), std::move(y), 10);
}

// The training loader's per-batch work on one thread: gather + uint8 → float (make_batch),
// pad-4 random crop, horizontal flip and normalisation. Args: {batch, channels, hw}.
void BM_data_pipeline(benchmark::State& state) {
#if LTL_HAS_OPENMP
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
#endif
  const index_t B = state.range(0), c = state.range(1), hw = state.range(2);
  const auto ds = synthetic_dataset(4096, c, hw);
  const ltl::data::normalize norm = c == 1 ? ltl::data::normalize{.mean = {0.2860}, .stddev = {0.3530}}
                                           : ltl::data::normalize{.mean = {0.4914, 0.4822, 0.4465},
                                                                  .stddev = {0.2470, 0.2435, 0.2616}};
  const ltl::data::standard_augment aug{.crop = {.pad = 4}, .flip = {.p = 0.5}, .norm = norm};
  ltl::data::loader<float, ltl::data::image_dataset> loader(
      ds, {.batch_size = B, .workers = 0, .seed = 1}, [aug](ltl::tensor<float>& x, ltl::rng& g) { aug(x, g); });
  std::vector<index_t> order(static_cast<std::size_t>(ds.size()));
  ltl::rng g(5);
  for (auto& i : order) i = static_cast<index_t>(g.below(static_cast<std::uint64_t>(ds.size())));
  const index_t batches = loader.num_batches(ds.size());
  index_t b = 0;
  for (auto _ : state) {
    auto batch = loader.make(0, order, b);
    benchmark::DoNotOptimize(batch.images.data());
    b = (b + 1) % batches;
  }
  state.SetItemsProcessed(state.iterations() * B);
#if LTL_HAS_OPENMP
  omp_set_num_threads(saved);
#endif
}
BENCHMARK(BM_data_pipeline)->Args({128, 3, 32})->Args({128, 1, 28})->Unit(benchmark::kMicrosecond)->UseRealTime();

// Decoding the gzipped Fashion-MNIST training set (60,000 images) from the Debian package,
// once per epoch-long run; skipped when the package is not installed.
void BM_decode_fashion_mnist(benchmark::State& state) {
  const auto dir = ltl::data::fashion_mnist_default_dir();
  if (!std::filesystem::exists(dir / "train-images-idx3-ubyte.gz")) {
    state.SkipWithError("dataset-fashion-mnist is not installed");
    return;
  }
  index_t n = 0;
  for (auto _ : state) {
    auto ds = ltl::data::read_fashion_mnist(ltl::data::split::train, dir);
    n = ds.size();
    benchmark::DoNotOptimize(ds.image(0).data());
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_decode_fashion_mnist)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);

}  // namespace
