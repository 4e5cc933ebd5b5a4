// The fused logit-adjusted loss, forward + backward, for each variant (CE, CDT, LDAM, logit
// adjustment, CB-focal, DRW) at (B, C) = (128, 10), (128, 100), (256, 1000), (512, 8142), and
// its baseline: copy bandwidth at the same working-set size. bytes_per_second counts the
// logits read plus the gradient written (2·B·C·4 bytes), the least traffic a loss can cause.
#include "bench_common.hpp"

#include <benchmark/benchmark.h>

#include <cstring>

namespace {

using ltl_bench::index_t;

void register_sizes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"variant", "B", "C"});
  for (int v = 0; v < 6; ++v)
    for (auto [B, C] : {std::pair<index_t, index_t>{128, 10}, {128, 100}, {256, 1000}, {512, 8142}}) b->Args({v, B, C});
  b->UseRealTime();
}

// Through the public API as a training step uses it: logit_adjusted_loss on a variable, then
// backward into the leaf's gradient (what PyTorch's loss(...).backward() does).
void BM_loss_autograd(benchmark::State& state) {
  const int v = static_cast<int>(state.range(0));
  const index_t B = state.range(1), C = state.range(2);
  const auto terms = ltl_bench::loss_variant_terms(v, C);
  ltl::variable<float> z(ltl_bench::randn(ltl::shape{B, C}, 11, 2.0), true);
  const auto y = ltl_bench::labels(B, C, 12);
  for (auto _ : state) {
    z.zero_grad();
    auto loss = ltl::logit_adjusted_loss(z, y, terms);
    loss.backward();
    benchmark::DoNotOptimize(z.grad().data());
  }
  state.SetBytesProcessed(state.iterations() * 2 * B * C * static_cast<index_t>(sizeof(float)));
  state.SetLabel(ltl_bench::loss_variant_name(v));
}
BENCHMARK(BM_loss_autograd)->Apply(register_sizes);

// The backend kernel alone, writing into a preallocated gradient: the number to compare with
// copy bandwidth.
void BM_loss_kernel(benchmark::State& state) {
  const int v = static_cast<int>(state.range(0));
  const index_t B = state.range(1), C = state.range(2);
  const auto terms = ltl_bench::loss_variant_terms(v, C);
  const auto z = ltl_bench::randn(ltl::shape{B, C}, 11, 2.0);
  const auto y = ltl_bench::labels(B, C, 12);
  ltl::tensor<float> dz(ltl::shape{B, C});
  for (auto _ : state) {
    benchmark::DoNotOptimize(ltl::cpu::fused_loss(z, y, terms, &dz));
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 2 * B * C * static_cast<index_t>(sizeof(float)));
  state.SetLabel(ltl_bench::loss_variant_name(v));
}
BENCHMARK(BM_loss_kernel)->Apply(register_sizes);

// Copy bandwidth at the loss kernel's working-set size (B·C floats in, B·C floats out), with
// the same OpenMP team the kernel uses: each thread copies its contiguous share.
void BM_copy_bandwidth(benchmark::State& state) {
  const index_t n = state.range(0) * state.range(1);
  const auto src = ltl_bench::randn(ltl::shape{n}, 3);
  ltl::tensor<float> dst(ltl::shape{n});
  const float* ps = src.data();
  float* pd = dst.data();
  for (auto _ : state) {
    ltl::cpu::parallel_for(
        n, [&](index_t b, index_t e) { std::memcpy(pd + b, ps + b, static_cast<std::size_t>(e - b) * sizeof(float)); },
        ltl::cpu::parallel_grain);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 2 * n * static_cast<index_t>(sizeof(float)));
}
BENCHMARK(BM_copy_bandwidth)
    ->ArgNames({"B", "C"})
    ->Args({128, 10})
    ->Args({128, 100})
    ->Args({256, 1000})
    ->Args({512, 8142})
    ->UseRealTime();

}  // namespace
