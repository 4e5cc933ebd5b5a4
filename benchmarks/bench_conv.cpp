// conv2d forward and backward (input and weight gradients) for each 3×3 layer shape of
// ResNet-32 at batch 128: CIFAR 32×32 (3→16 stem, 16→16, 16→32/s2, 32→32, 32→64/s2, 64→64) and
// the Fashion-MNIST 28×28 equivalents with a 1-channel stem. The GFLOPS counter counts 2 flops
// per multiply-add of the direct convolution (backward: both products). Also batch norm in
// training (forward + backward) at each activation shape, in GB/s.
//
// LTL_CONV_ALGORITHM=<name> (a conv2d_algorithm as ltl::to_string writes it, e.g.
// winograd_f2_planar) forces that kernel for every pass, to compare the kernels on one layer;
// layers and passes the kernel cannot compute are skipped with the reason.
#include "bench_common.hpp"

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>

namespace {

using ltl_bench::index_t;

struct conv_case {
  index_t n, cin, cout, hw, stride;
  [[nodiscard]] index_t out_hw() const { return (hw + 2 - 3) / stride + 1; }
  [[nodiscard]] double macs() const {
    return static_cast<double>(n * cout * out_hw() * out_hw() * cin * 9);
  }
};

conv_case from(const benchmark::State& s) {
  return {s.range(0), s.range(1), s.range(2), s.range(3), s.range(4)};
}

/// The layer's options, with the algorithm LTL_CONV_ALGORITHM forces (automatic if unset).
ltl::conv2d_options options_for(const conv_case& c) {
  const char* forced = std::getenv("LTL_CONV_ALGORITHM");
  return {.stride = c.stride,
          .padding = 1,
          .algorithm = forced ? ltl::parse_conv2d_algorithm(forced) : ltl::conv2d_algorithm::automatic};
}

/// With a forced algorithm, runs f once outside the timing: false (and the benchmark skipped
/// with the reason) if the algorithm cannot compute the layer. Without, nothing runs.
template <class F>
bool runs(benchmark::State& state, F&& f) {
  if (!std::getenv("LTL_CONV_ALGORITHM")) return true;
  try {
    f();
    return true;
  } catch (const ltl::value_error& e) {
    state.SkipWithError(e.what());
    return false;
  }
}

void register_layers(benchmark::internal::Benchmark* b) {
  b->ArgNames({"N", "Cin", "Cout", "HW", "stride"});
  for (index_t hw : {32, 28}) {
    const index_t h2 = (hw + 1) / 2, h4 = (h2 + 1) / 2;
    b->Args({128, hw == 32 ? 3 : 1, 16, hw, 1});
    b->Args({128, 16, 16, hw, 1});
    b->Args({128, 16, 32, hw, 2});
    b->Args({128, 32, 32, h2, 1});
    b->Args({128, 32, 64, h2, 2});
    b->Args({128, 64, 64, h4, 1});
  }
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

void BM_conv_forward(benchmark::State& state) {
  const conv_case c = from(state);
  const auto x = ltl_bench::randn(ltl::shape{c.n, c.cin, c.hw, c.hw}, 1);
  const auto w = ltl_bench::randn(ltl::shape{c.cout, c.cin, 3, 3}, 2, 0.1);
  const ltl::conv2d_options opt = options_for(c);
  const auto forward = [&] { return ltl::cpu::conv2d_forward(x, w, ltl::tensor<float>(), opt); };
  if (!runs(state, forward)) return;
  for (auto _ : state) {
    auto y = forward();
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOPS"] =
      benchmark::Counter(2 * c.macs() * static_cast<double>(state.iterations()) * 1e-9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_conv_forward)->Apply(register_layers);

// Input and weight gradients, as a training step needs them (the stem's input gradient is not
// needed there, but is computed here as PyTorch's convolution_backward with both masks does).
void BM_conv_backward(benchmark::State& state) {
  const conv_case c = from(state);
  const auto x = ltl_bench::randn(ltl::shape{c.n, c.cin, c.hw, c.hw}, 1);
  const auto w = ltl_bench::randn(ltl::shape{c.cout, c.cin, 3, 3}, 2, 0.1);
  const auto dy = ltl_bench::randn(ltl::shape{c.n, c.cout, c.out_hw(), c.out_hw()}, 3);
  const ltl::conv2d_options opt = options_for(c);
  if (!runs(state, [&] {
        (void)ltl::cpu::conv2d_backward_input(dy, w, x.sizes(), opt);
        (void)ltl::cpu::conv2d_backward_weight(dy, x, w.sizes(), opt);
      }))
    return;
  for (auto _ : state) {
    auto dx = ltl::cpu::conv2d_backward_input(dy, w, x.sizes(), opt);
    auto dw = ltl::cpu::conv2d_backward_weight(dy, x, w.sizes(), opt);
    benchmark::DoNotOptimize(dx.data());
    benchmark::DoNotOptimize(dw.data());
  }
  state.counters["GFLOPS"] =
      benchmark::Counter(4 * c.macs() * static_cast<double>(state.iterations()) * 1e-9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_conv_backward)->Apply(register_layers);

}  // namespace

namespace {

// Batch norm in training, forward then backward, as a ResNet block's second batch norm runs it
// (residual added and ReLU fused; backward also returns the residual's gradient), at each
// activation shape of ResNet-32 at batch 128. GB/s counts one read of x per pass it needs
// (forward: x twice, residual, y written; backward: dy, x and y in the sums' pass, the masked
// gradient written; dx's pass: masked gradient and x read, dx written): 11 tensor passes.
void BM_batch_norm_train(benchmark::State& state) {
  const index_t n = state.range(0), c = state.range(1), hw = state.range(2);
  const ltl::shape sz{n, c, hw, hw};
  const auto x = ltl_bench::randn(sz, 1), r = ltl_bench::randn(sz, 2), dy = ltl_bench::randn(sz, 3);
  const auto w = ltl_bench::randn(ltl::shape{c}, 4), b = ltl_bench::randn(ltl::shape{c}, 5);
  ltl::tensor<float> rm = ltl_bench::randn(ltl::shape{c}, 6), rv = ltl_bench::randn(ltl::shape{c}, 7, 0.0);
  const ltl::batch_norm_options opt{.training = true, .relu = true};
  for (auto _ : state) {
    auto f = ltl::cpu::batch_norm2d_forward(x, w, b, rm, rv, opt, r);
    auto g = ltl::cpu::batch_norm2d_backward(dy, x, w, f.mean, f.invstd, true, {true, true, true}, f.y, true);
    benchmark::DoNotOptimize(g.dx.data());
    benchmark::DoNotOptimize(g.dmasked.data());
  }
  const double bytes = 11.0 * static_cast<double>(sz.numel()) * sizeof(float);
  state.counters["GB/s"] =
      benchmark::Counter(bytes * static_cast<double>(state.iterations()) * 1e-9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_batch_norm_train)
    ->ArgNames({"N", "C", "HW"})
    ->Args({128, 16, 32})
    ->Args({128, 32, 16})
    ->Args({128, 64, 8})
    ->Args({128, 16, 28})
    ->Args({128, 32, 14})
    ->Args({128, 64, 7})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace
