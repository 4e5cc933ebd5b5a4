// Tests of 2-D convolution (ops/conv.hpp and the CPU backend's kernels, backends/cpu/conv/):
// hand-computed forwards, double-precision gradient checks, shape errors, each kernel forced
// through the public entry points against the naive reference (tests/reference/), and the
// algorithm table against the choices recorded before it replaced the old if-chains.
#include <catch2/catch.hpp>
#include <ltlearn/autograd/gradcheck.hpp>
#include <ltlearn/ops/activation.hpp>
#include <ltlearn/ops/conv.hpp>
#include <ltlearn/ops/elementwise.hpp>
#include <ltlearn/ops/norm.hpp>

#include "conv_selection_table.hpp"
#include "reference/conv_reference.hpp"
#include "support.hpp"
#include "support/test_aliases.hpp"

#include <cmath>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

using namespace ltl_test;  // support.hpp, test_aliases.hpp
using algo = ltl::conv2d_algorithm;

namespace {

/// `o` with its algorithm forced to `a`.
ltl::conv2d_options forced(ltl::conv2d_options o, algo a) {
  o.algorithm = a;
  return o;
}

/// Runs the kernels on `threads` OpenMP threads while alive (restoring the previous count), so
/// that a reduction is split into that many partial sums whatever the machine.
class omp_threads_guard {
 public:
  explicit omp_threads_guard([[maybe_unused]] int threads) {
#if defined(_OPENMP)
    previous_ = omp_get_max_threads();
    omp_set_num_threads(threads);
#endif
  }
  ~omp_threads_guard() {
#if defined(_OPENMP)
    omp_set_num_threads(previous_);
#endif
  }
  omp_threads_guard(const omp_threads_guard&) = delete;
  omp_threads_guard& operator=(const omp_threads_guard&) = delete;

 private:
  [[maybe_unused]] int previous_ = 1;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// conv2d

TEST_CASE("conv2d forward on hand-computed values", "[ops][conv]") {
  const VD x(iota({1, 1, 3, 3}));  // 1..9
  const VD w(TD::from({1, 1, 2, 2}, {1, 2, 3, 4}));
  const VD b(TD::from({1}, {1}));
  // Valid 2×2 windows: 1·1+2·2+4·3+5·4 = 37, 47, 67, 77.
  auto y = ltl::conv2d(x, w);
  REQUIRE(y.sizes() == shape{1, 1, 2, 2});
  require_values(y.value(), {37, 47, 67, 77});
  require_values(ltl::conv2d(x, w, b).value(), {38, 48, 68, 78});
  // Stride 2, padding 1: each window sees the corner taps that land inside the image.
  require_values(ltl::conv2d(x, w, {}, {.stride = 2, .padding = 1}).value(), {4, 18, 36, 77});
  // Non-square stride/padding: stride (1, 2), padding (0, 1) → output [1, 1, 2, 2].
  require_values(ltl::conv2d(x, w, {}, {.stride = {1, 2}, .padding = {0, 1}}).value(),
                 {1 * 2 + 4 * 4, 2 * 1 + 3 * 2 + 5 * 3 + 6 * 4, 4 * 2 + 7 * 4, 5 * 1 + 6 * 2 + 8 * 3 + 9 * 4});
  // Dilation 2 on a 3×3 input with a 2×2 kernel: the one window reads the four corners.
  require_values(ltl::conv2d(x, w, {}, {.dilation = 2}).value(), {1 * 1 + 2 * 3 + 3 * 7 + 4 * 9});
  // Depthwise (groups = 2) 1×1: each channel scaled by its own weight.
  const VD x2(iota({1, 2, 1, 2}));  // channel 0: 1 2, channel 1: 3 4
  const VD w2(TD::from({2, 1, 1, 1}, {2, -1}));
  require_values(ltl::conv2d(x2, w2, {}, {.groups = 2}).value(), {2, 4, -3, -4});
  // groups = 1 with a 1×1 kernel mixes channels: out = 2·c0 − c1.
  const VD w3(TD::from({1, 2, 1, 1}, {2, -1}));
  require_values(ltl::conv2d(x2, w3).value(), {2 - 3, 4 - 4});
}

TEST_CASE("conv2d gradients in double", "[ops][conv][grad]") {
  using O = ltl::conv2d_options;
  auto conv = [](O o) {
    return [o](const std::vector<VD>& v) { return ltl::conv2d(v[0], v[1], v.size() > 2 ? v[2] : VD(), o); };
  };
  SECTION("3x3, stride 1, padding 1, with bias") {
    require_gradcheck(conv({.padding = 1}), {leaf({2, 3, 5, 5}, 1), leaf({4, 3, 3, 3}, 2), leaf({4}, 3)});
  }
  SECTION("3x3, stride 2, padding 1, without bias") {
    require_gradcheck(conv({.stride = 2, .padding = 1}), {leaf({2, 3, 6, 6}, 4), leaf({4, 3, 3, 3}, 5)});
  }
  SECTION("1x1, stride 2, padding 0 (downsampling shortcut)") {
    require_gradcheck(conv({.stride = 2}), {leaf({2, 4, 5, 5}, 6), leaf({6, 4, 1, 1}, 7), leaf({6}, 8)});
  }
  SECTION("1x1, stride 1 (pointwise path without im2col)") {
    require_gradcheck(conv({}), {leaf({3, 4, 3, 3}, 9), leaf({5, 4, 1, 1}, 10), leaf({5}, 11)});
  }
  SECTION("groups = 2") {
    require_gradcheck(conv({.padding = 1, .groups = 2}),
                      {leaf({2, 4, 4, 4}, 12), leaf({6, 2, 3, 3}, 13), leaf({6}, 14)});
  }
  SECTION("depthwise (groups = Cin), stride 2") {
    require_gradcheck(conv({.stride = 2, .padding = 1, .groups = 4}), {leaf({2, 4, 5, 5}, 15), leaf({4, 1, 3, 3}, 16)});
  }
  SECTION("grouped pointwise (1x1, groups = 2)") {
    require_gradcheck(conv({.groups = 2}), {leaf({2, 4, 3, 3}, 17), leaf({4, 2, 1, 1}, 18)});
  }
  SECTION("non-square input, kernel, stride, padding and dilation") {
    require_gradcheck(conv({.stride = {2, 1}, .padding = {1, 0}, .dilation = {1, 2}}),
                      {leaf({2, 2, 5, 7}, 19), leaf({3, 2, 3, 2}, 20), leaf({3}, 21)});
  }
  SECTION("3x3, padding 1, each kernel that computes double forced") {
    for (algo a : {algo::im2col_gemm, algo::direct3x3, algo::channel_vectorised3x3}) {
      INFO(ltl::to_string(a));
      require_gradcheck(conv({.padding = 1, .algorithm = a}),
                        {leaf({2, 3, 5, 5}, 24), leaf({4, 3, 3, 3}, 25), leaf({4}, 26)});
    }
  }
  SECTION("only the weight requires grad (input gradient skipped)") {
    auto x = VD(random_tensor({2, 3, 4, 4}, 22), false);
    require_gradcheck([x](const std::vector<VD>& v) { return ltl::conv2d(x, v[0], {}, {.padding = 1}); },
                      {leaf({2, 3, 3, 3}, 23)});
  }
}

TEST_CASE("conv2d matches a naive direct convolution on a ResNet-32 layer, float and double", "[ops][conv]") {
  const ltl::conv2d_options o{.padding = 1};
  const TF xf = random_tensor<float>({4, 16, 32, 32}, 31);
  const TF wf = random_tensor<float>({16, 16, 3, 3}, 32, -0.25, 0.25);
  const TF bf = random_tensor<float>({16}, 33);
  // The double run sees exactly the float inputs, so both compare against one reference.
  const TD xd = to_double(xf), wd = to_double(wf), bd = to_double(bf);
  const TD want = ltl_ref::conv2d(xf, wf, bf, o);

  const auto yf = ltl::cpu::conv2d_forward(xf, wf, bf, o);
  const auto yd = ltl::cpu::conv2d_forward(xd, wd, bd, o);
  require_close(yd, want, 1e-12);
  require_close(yf, want, 2e-5, 1e-5);  // 144-term float dot products of O(1) values

  const TF dyf = random_tensor<float>(yf.sizes(), 34);
  const TD dyd = to_double(dyf);
  const TD want_dx = ltl_ref::conv2d_grad_input(dyf, wf, xf.sizes(), o);
  const TD want_dw = ltl_ref::conv2d_grad_weight(dyf, xf, wf.sizes(), o);
  require_close(ltl::cpu::conv2d_backward_input(dyd, wd, xd.sizes(), o), want_dx, 1e-12);
  require_close(ltl::cpu::conv2d_backward_weight(dyd, xd, wd.sizes(), o), want_dw, 1e-9, 1e-12);
  require_close(ltl::cpu::conv2d_backward_input(dyf, wf, xf.sizes(), o), want_dx, 2e-5, 1e-5);
  // 4·32·32 = 4096-term float sums: allow float32 round-off growth.
  require_close(ltl::cpu::conv2d_backward_weight(dyf, xf, wf.sizes(), o), want_dw, 2e-3, 1e-4);
}

/// conv2d's forward (with bias), input and weight gradients in double against the reference,
/// and the weight gradient's run-to-run determinism (per-thread sums added in thread order).
static void check_conv_double(const TD& x, const TD& w, const TD& b, const ltl::conv2d_options& o, const TD& dy) {
  require_close(ltl::cpu::conv2d_forward(x, w, b, o), ltl_ref::conv2d(x, w, b, o), 1e-12);
  require_close(ltl::cpu::conv2d_backward_input(dy, w, x.sizes(), o), ltl_ref::conv2d_grad_input(dy, w, x.sizes(), o),
                1e-12);
  const TD dw = ltl::cpu::conv2d_backward_weight(dy, x, w.sizes(), o);
  require_close(dw, ltl_ref::conv2d_grad_weight(dy, x, w.sizes(), o), 1e-11);
  REQUIRE(ltl::cpu::conv2d_backward_weight(dy, x, w.sizes(), o).to_vector() == dw.to_vector());
}

TEST_CASE("conv2d kernels match the reference for strided, grouped and odd batches", "[ops][conv]") {
  struct config {
    shape x, w;
    ltl::conv2d_options o;
  };
  const std::vector<config> configs{
      {{3, 8, 9, 9}, {12, 8, 3, 3}, {.stride = 2, .padding = 1}},
      {{5, 8, 8, 8}, {8, 2, 3, 3}, {.padding = 1, .groups = 4}},
      {{3, 6, 7, 5}, {6, 1, 3, 3}, {.stride = {1, 2}, .padding = 1, .dilation = 2, .groups = 6}},
      {{3, 8, 6, 6}, {16, 8, 1, 1}, {.stride = 2}},
      {{1, 8, 6, 6}, {4, 4, 1, 1}, {.groups = 2}},
  };
  std::uint64_t seed = 40;
  for (const auto& c : configs) {
    INFO("x " << fmt::format("{}", c.x) << " w " << fmt::format("{}", c.w));
    const TD x = random_tensor(c.x, ++seed), w = random_tensor(c.w, ++seed), b = random_tensor({c.w[0]}, ++seed);
    check_conv_double(x, w, b, c.o, random_tensor(ltl::make_conv2d_geometry(c.x, c.w, c.o).output_shape(), ++seed));
  }
}

TEST_CASE("direct 3x3 kernels match the reference for every tile width and channel remainder", "[ops][conv]") {
  // Plane widths select 1-, 2- and 3-vector tiles; channel counts leave partial 8-row blocks and
  // an odd last row for the weight gradient; batches of 1 and 5 give unequal thread chunks, and
  // 7 samples of 32×32 several weight-gradient sample groups (~1,100 grid positions a sample:
  // 3 samples per group of 4,096).
  struct config {
    shape x;
    ltl::index_t cout;
  };
  const std::vector<config> configs{{{2, 3, 32, 32}, 16}, {{5, 16, 7, 7}, 8},  {{1, 5, 8, 8}, 11},
                                    {{3, 9, 14, 14}, 3},  {{2, 1, 28, 28}, 4}, {{3, 2, 5, 11}, 9},
                                    {{20, 4, 7, 7}, 5},   {{7, 2, 32, 32}, 5}};
  const ltl::conv2d_options o{.padding = 1};
  std::uint64_t seed = 70;
  for (const auto& c : configs) {
    INFO("x " << fmt::format("{}", c.x) << " cout " << c.cout);
    const shape ws{c.cout, c.x[1], 3, 3};
    const auto geo = ltl::make_conv2d_geometry(c.x, ws, o);
    // Automatic: the row kernel, or the channel-vectorised one on planes up to 10×10.
    const algo automatic = ltl::cpu::select_forward_algorithm<double>(geo);
    REQUIRE((automatic == algo::direct3x3 || automatic == algo::channel_vectorised3x3));
    const TD x = random_tensor(c.x, ++seed), w = random_tensor(ws, ++seed), b = random_tensor({c.cout}, ++seed);
    require_close(ltl::cpu::conv2d_forward(x, w, TD(), o), ltl_ref::conv2d(x, w, TD(), o), 1e-12);
    const TD dy = random_tensor(shape{c.x[0], c.cout, c.x[2], c.x[3]}, ++seed);
    check_conv_double(x, w, b, o, dy);
    check_conv_double(x, w, b, forced(o, algo::direct3x3), dy);
    // Float: the same kernels with 16-lane vectors.
    const TF xf = random_tensor<float>(c.x, ++seed), wf = random_tensor<float>(ws, ++seed);
    const TF dyf = random_tensor<float>(dy.sizes(), ++seed);
    require_close(ltl::cpu::conv2d_forward(xf, wf, TF(), o), ltl_ref::conv2d(xf, wf, TF(), o), 2e-5, 1e-5);
    require_close(ltl::cpu::conv2d_backward_input(dyf, wf, xf.sizes(), o),
                  ltl_ref::conv2d_grad_input(dyf, wf, xf.sizes(), o), 2e-5, 1e-5);
    require_close(ltl::cpu::conv2d_backward_weight(dyf, xf, ws, o), ltl_ref::conv2d_grad_weight(dyf, xf, ws, o), 1e-3,
                  1e-4);
    const auto od = forced(o, algo::direct3x3);
    require_close(ltl::cpu::conv2d_forward(xf, wf, TF(), od), ltl_ref::conv2d(xf, wf, TF(), o), 2e-5, 1e-5);
    require_close(ltl::cpu::conv2d_backward_input(dyf, wf, xf.sizes(), od),
                  ltl_ref::conv2d_grad_input(dyf, wf, xf.sizes(), o), 2e-5, 1e-5);
    require_close(ltl::cpu::conv2d_backward_weight(dyf, xf, ws, od), ltl_ref::conv2d_grad_weight(dyf, xf, ws, o), 1e-3,
                  1e-4);
  }
}

TEST_CASE("channel-vectorised 3x3 kernel matches the reference at stride 1 and 2", "[ops][conv]") {
  // Output channels 3, 16, 17, 33, 64 and 70 select 1-, 2- and 4-vector tiles, partial vectors
  // and several row blocks (the weight gradient: 1 × 3 or 2 × 1 blocks, input-channel
  // remainders); planes of 5..16 at stride 2 (odd and even: the input gradient's four parity
  // phases, used from two vectors of input channels, have unequal sizes) and small stride-1 planes leave
  // partial position tiles; 31 samples of 64×8×8 span several weight-gradient sample groups (~12 samples;
  // under 32, so that Winograd F(4×4) does not take the float forward pass).
  struct config {
    shape x;
    ltl::index_t cout, stride;
  };
  const std::vector<config> configs{{{3, 4, 9, 9}, 3, 2},    {{2, 16, 16, 16}, 32, 2}, {{1, 5, 8, 8}, 17, 2},
                                    {{3, 7, 5, 11}, 33, 2},  {{2, 32, 14, 14}, 64, 2}, {{2, 6, 7, 7}, 70, 1},
                                    {{31, 64, 8, 8}, 64, 1}, {{2, 9, 3, 10}, 16, 1}, {{2, 40, 9, 7}, 24, 2}};
  std::uint64_t seed = 90;
  for (const auto& c : configs) {
    INFO("x " << fmt::format("{}", c.x) << " cout " << c.cout << " stride " << c.stride);
    const ltl::conv2d_options o{.stride = c.stride, .padding = 1};
    const shape ws{c.cout, c.x[1], 3, 3};
    const auto geo = ltl::make_conv2d_geometry(c.x, ws, o);
    REQUIRE(ltl::cpu::select_forward_algorithm<double>(geo) == algo::channel_vectorised3x3);
    const auto ocv = forced(o, algo::channel_vectorised3x3);
    const TD x = random_tensor(c.x, ++seed), w = random_tensor(ws, ++seed), b = random_tensor({c.cout}, ++seed);
    const TD dyd = random_tensor(geo.output_shape(), ++seed);
    check_conv_double(x, w, b, o, dyd);
    check_conv_double(x, w, b, ocv, dyd);
    const TF xf = random_tensor<float>(c.x, ++seed), wf = random_tensor<float>(ws, ++seed);
    const TF bf = random_tensor<float>({c.cout}, ++seed);
    const TF yf = ltl::cpu::conv2d_forward(xf, wf, bf, o);
    require_close(yf, ltl_ref::conv2d(xf, wf, bf, o), 2e-5, 1e-5);
    const TF dyf = random_tensor<float>(yf.sizes(), ++seed);
    require_close(ltl::cpu::conv2d_backward_weight(dyf, xf, ws, o), ltl_ref::conv2d_grad_weight(dyf, xf, ws, o), 1e-3,
                  1e-4);
    require_close(ltl::cpu::conv2d_backward_input(dyf, wf, xf.sizes(), o),
                  ltl_ref::conv2d_grad_input(dyf, wf, xf.sizes(), o), 2e-5, 1e-5);
    // Forced: float picks Winograd for some of these layers, and the narrow stride-2 input
    // gradient and stride-1 weight gradient stay on im2col or the row kernel automatically.
    require_close(ltl::cpu::conv2d_forward(xf, wf, bf, ocv), ltl_ref::conv2d(xf, wf, bf, o), 2e-5, 1e-5);
    require_close(ltl::cpu::conv2d_backward_weight(dyf, xf, ws, ocv), ltl_ref::conv2d_grad_weight(dyf, xf, ws, o),
                  1e-3, 1e-4);
    require_close(ltl::cpu::conv2d_backward_input(dyf, wf, xf.sizes(), ocv),
                  ltl_ref::conv2d_grad_input(dyf, wf, xf.sizes(), o), 2e-5, 1e-5);
    if (c.stride == 1) {
      // Same summation order as the row-vectorised kernel: bit-identical outputs.
      const TF row = ltl::cpu::conv2d_forward(xf, wf, bf, forced(o, algo::direct3x3));
      const TF cv = ltl::cpu::conv2d_forward(xf, wf, bf, ocv);
      REQUIRE(row.to_vector() == cv.to_vector());
      require_close(cv, ltl_ref::conv2d(xf, wf, bf, o), 2e-5, 1e-5);
    }
  }
}

namespace {
/// The automatic forward choice for float (the input gradient of a stride-1 layer shares it).
algo forward_choice(const shape& x, ltl::index_t cout, ltl::index_t stride = 1) {
  return ltl::cpu::select_forward_algorithm<float>(
      ltl::make_conv2d_geometry(x, {cout, x[1], 3, 3}, {.stride = stride, .padding = 1}));
}

/// A 3×3 convolution's operands for the kernel tests: x, weight, bias, an epilogue scale and
/// residual, the reference conv + bias, and the expected relu(conv·scale + bias + residual).
struct epilogue_case {
  ltl::conv2d_geometry geo;
  TF x, w, b, sc, res;
  TD ref, want;
  epilogue_case(const shape& xs, ltl::index_t cout, std::uint64_t& seed, const ltl::conv2d_options& o)
      : geo(ltl::make_conv2d_geometry(xs, {cout, xs[1], 3, 3}, o)) {
    const shape ws{cout, xs[1], 3, 3};
    x = random_tensor<float>(xs, ++seed), w = random_tensor<float>(ws, ++seed);
    b = random_tensor<float>({cout}, ++seed), sc = random_tensor<float>({cout}, ++seed, 0.5, 2);
    res = random_tensor<float>(geo.output_shape(), ++seed);
    ref = ltl_ref::conv2d(x, w, b, o);
    want = TD(ref.sizes());
    const ltl::index_t plane = geo.out_plane();
    for (ltl::index_t i = 0; i < ref.numel(); ++i) {
      const ltl::index_t k = (i / plane) % cout;
      const double conv = double(ref.data()[i]) - double(b.data()[k]);
      want.data()[i] = std::max(0.0, conv * sc.data()[k] + b.data()[k] + res.data()[i]);
    }
  }
};
}  // namespace

TEST_CASE("Winograd F(2x2, 3x3) matches the reference: forward, epilogue and input gradient", "[ops][conv]") {
  // Even and odd planes (odd ones end in partial tiles over the zero border), unequal channel
  // counts in and out (the input gradient swaps them), chunks of 28 tiles with a remainder
  // (10×10: 25 tiles; 5×9: 15 tiles; 17×15: 72 tiles, 28 + 28 + 16) and both register tiles
  // (80 = 2·2 + 1 vectors).
  struct config {
    shape x;
    ltl::index_t cout;
  };
  const std::vector<config> configs{{{2, 64, 8, 8}, 64},    {{3, 64, 7, 7}, 80}, {{2, 80, 5, 9}, 64},
                                    {{1, 64, 10, 10}, 96}, {{1, 64, 17, 15}, 64}};
  std::uint64_t seed = 400;
  for (const auto& c : configs) {
    INFO("x " << fmt::format("{}", c.x) << " cout " << c.cout);
    const ltl::conv2d_options o{.padding = 1};
    const epilogue_case e(c.x, c.cout, seed, o);
    const auto& [geo, x, w, b, sc, res, ref, want] = e;
    REQUIRE(ltl::cpu::select_forward_algorithm<float>(geo) == algo::winograd_f2_channels_last);
    REQUIRE(ltl::cpu::select_backward_input_algorithm<float>(geo) == algo::winograd_f2_channels_last);
    require_close(ltl::cpu::conv2d_forward(x, w, b, o), ref, 2e-5, 1e-5);
    // The epilogue: relu(conv·scale + shift + residual) with shift = the bias.
    require_close(ltl::cpu::conv2d_forward_epilogue(x, w, o, sc, b, res, true), want, 2e-5, 1e-5);
    const TF dy = random_tensor<float>(geo.output_shape(), ++seed);
    require_close(ltl::cpu::conv2d_backward_input(dy, w, x.sizes(), o), ltl_ref::conv2d_grad_input(dy, w, x.sizes(), o),
                  2e-5, 1e-5);
  }
  // Below 64 channels, on planes over 32×32 or at stride 2, the direct kernels stay.
  REQUIRE(forward_choice({2, 32, 8, 8}, 32) != algo::winograd_f2_channels_last);
  REQUIRE(forward_choice({2, 64, 40, 40}, 64) != algo::winograd_f2_channels_last);
  REQUIRE(forward_choice({2, 64, 8, 8}, 64, 2) != algo::winograd_f2_channels_last);
}

namespace {
struct winograd_config {
  shape x;
  ltl::index_t cout;
  bool dispatched;  ///< the algorithm table picks the form for this layer (forward and input gradient)
};

/// Checks one Winograd form against the reference on each config: forward, the epilogue and the
/// input gradient through conv2d's entry points — automatically where the table picks `form`
/// (which must match `dispatched`), else with `form` forced. Tolerances: |got − want| ≤ atol +
/// 1e-5·|want|.
void check_winograd_form(const std::vector<winograd_config>& configs, std::uint64_t seed, algo form,
                         double atol = 2e-5) {
  for (const auto& c : configs) {
    INFO("x " << fmt::format("{}", c.x) << " cout " << c.cout);
    const ltl::conv2d_options o{.padding = 1};
    const epilogue_case e(c.x, c.cout, seed, o);
    const auto& [geo, x, w, b, sc, res, ref, want] = e;
    REQUIRE((ltl::cpu::select_forward_algorithm<float>(geo) == form) == c.dispatched);
    REQUIRE((ltl::cpu::select_backward_input_algorithm<float>(geo) == form) == c.dispatched);
    const TF dy = random_tensor<float>(geo.output_shape(), ++seed);
    const auto dx_ref = ltl_ref::conv2d_grad_input(dy, w, x.sizes(), o);
    const ltl::conv2d_options of = c.dispatched ? o : forced(o, form);
    require_close(ltl::cpu::conv2d_forward(x, w, b, of), ref, atol, 1e-5);
    require_close(ltl::cpu::conv2d_forward_epilogue(x, w, of, sc, b, res, true), want, atol, 1e-5);
    require_close(ltl::cpu::conv2d_backward_input(dy, w, x.sizes(), of), dx_ref, atol, 1e-5);
  }
}
}  // namespace

TEST_CASE("Winograd's planar form matches the reference on every lane-group layout", "[ops][conv]") {
  // The dispatch's shapes (16×16 planes: two tile rows of 8 per group; 32×32: one row of 16),
  // with channel counts that are not multiples of a vector; then the kernel called directly on
  // the layouts dispatch leaves to the direct kernels: partial groups (28×28: 14 of 16 lanes;
  // 40×40: groups of 16 + 4), odd planes whose last tiles cover the zero border, an odd number
  // of tile rows on a narrow plane (7×7, 5×9), three input channels and tails of 4 and 1
  // output channels in the products.
  check_winograd_form({{{2, 16, 16, 16}, 16, true},
                       {{2, 16, 32, 32}, 32, true},
                       {{1, 24, 16, 16}, 40, true},
                       {{1, 48, 32, 32}, 17, true},
                       {{2, 16, 28, 28}, 16, false},
                       {{1, 16, 40, 40}, 21, false},
                       {{1, 16, 7, 7}, 24, false},
                       {{2, 3, 5, 9}, 5, false},
                       {{1, 20, 17, 15}, 12, false}},
                      700, algo::winograd_f2_planar);
  // From 64 channels the channels-last form, below 16 and at stride 2 the direct kernels.
  REQUIRE(forward_choice({2, 64, 16, 16}, 64) != algo::winograd_f2_planar);
  REQUIRE(forward_choice({2, 8, 32, 32}, 16) != algo::winograd_f2_planar);
  REQUIRE(forward_choice({2, 16, 32, 32}, 16, 2) != algo::winograd_f2_planar);
}

TEST_CASE("Winograd's sample-lane form matches the reference: blocks, planes, epilogue, gradient", "[ops][conv]") {
  // F(2×2). The dispatch's shapes (32→32 and 48→40 on planes above F(4×4)'s 28×28), whose
  // batches end in a partial block of samples (37: 16 + 16 + 5; 33: 16 + 16 + 1); then the
  // kernel called directly on shapes dispatch leaves to other kernels: 16→16 at 14×14 (a last
  // block of 8), odd planes whose last tiles cover the zero border (7×7 with 49 values, runs of
  // 16 overlapping at the end; 5×9), a plane of exactly 16 values (4×4), three input channels, a
  // single sample (15 empty lanes), and output-channel tails of 4 and 1.
  check_winograd_form({{{37, 32, 30, 30}, 32, true},
                       {{33, 48, 36, 36}, 40, true},
                       {{40, 16, 14, 14}, 16, false},
                       {{35, 16, 7, 7}, 21, false},
                       {{2, 3, 5, 9}, 5, false},
                       {{1, 20, 4, 4}, 12, false},
                       {{17, 16, 28, 28}, 16, false}},
                      900, algo::winograd_f2_sample_lane);
  // Planes the planar form fills, from 64 channels, small batches and stride 2 go elsewhere;
  // planes under 16 values are refused by the kernel itself.
  REQUIRE(forward_choice({64, 16, 16, 16}, 16) != algo::winograd_f2_sample_lane);
  REQUIRE(forward_choice({64, 64, 14, 14}, 64) != algo::winograd_f2_sample_lane);
  REQUIRE(forward_choice({31, 32, 30, 30}, 32) != algo::winograd_f2_sample_lane);
  REQUIRE(forward_choice({64, 32, 14, 14}, 32) != algo::winograd_f2_sample_lane);
  REQUIRE(forward_choice({64, 32, 28, 28}, 32, 2) != algo::winograd_f2_sample_lane);
  const TF tiny = TF::zeros({2, 16, 3, 3}), wt = TF::zeros({16, 16, 3, 3});
  for (algo a : {algo::winograd_f2_sample_lane, algo::winograd_f4_sample_lane})
    require_error<ltl::value_error>(
        [&] {
          (void)ltl::cpu::conv2d_forward(tiny, wt, TF(), {.padding = 1, .algorithm = a});
        },
        {std::string(ltl::to_string(a)), "input [2, 16, 3, 3]", "at least 16 values"});
}

TEST_CASE("Winograd F(4x4, 3x3) in sample-lane form matches the reference", "[ops][conv]") {
  // The dispatch's shapes: 16→16 at 28×28 (7 × 7 whole tiles) and 32→32 at 14×14 (a last tile
  // row and column of 2 outputs) with partial sample blocks (37 = 16 + 16 + 5, 40 = 16 + 16 +
  // 8), 64→64 at 7×7 (partial tiles of 3), 48→40 at 16×16, 16→24 at 7×7; then direct calls:
  // a plane of exactly one tile (4×4), 6×6 and 5×9 planes (partial tiles of 2 and 1), three
  // input channels, one sample, and output-channel tails of 4 and 1. F(4×4)'s round-off is
  // about ten times F(2×2)'s: up to ~1e-4 on these O(10) outputs (10-16 channels × 9 taps of
  // products of uniform(−1, 1) values), so the tolerance is 3e-4 — a wrong transform entry
  // gives errors of order one.
  check_winograd_form({{{37, 16, 28, 28}, 16, true},
                       {{40, 32, 14, 14}, 32, true},
                       {{33, 64, 7, 7}, 64, true},
                       {{32, 48, 16, 16}, 40, true},
                       {{34, 16, 7, 7}, 24, true},
                       {{1, 20, 4, 4}, 12, false},
                       {{17, 16, 6, 6}, 21, false},
                       {{2, 3, 5, 9}, 5, false}},
                      1100, algo::winograd_f4_sample_lane, 3e-4);
  // At 64 channels only planes 4×4 tiles cover as tightly as 2×2 tiles; none above 28×28, no
  // small batches, stride 2, or fewer than 16 / more than 64 channels.
  const auto f4 = [](shape x, ltl::index_t cout, ltl::index_t stride = 1) {
    return forward_choice(x, cout, stride) == algo::winograd_f4_sample_lane;
  };
  REQUIRE(f4({32, 64, 8, 8}, 64));
  REQUIRE(f4({32, 64, 16, 16}, 32));
  REQUIRE_FALSE(f4({32, 64, 14, 14}, 64));
  REQUIRE_FALSE(f4({32, 16, 32, 32}, 16));
  REQUIRE_FALSE(f4({31, 16, 28, 28}, 16));
  REQUIRE_FALSE(f4({32, 16, 28, 28}, 16, 2));
  REQUIRE_FALSE(f4({32, 8, 28, 28}, 16));
  REQUIRE_FALSE(f4({32, 128, 8, 8}, 128));
  REQUIRE_FALSE(f4({32, 16, 3, 3}, 16));
}

namespace {
struct wgrad_config {
  shape x;
  ltl::index_t cout;
  bool dispatched;  ///< the algorithm table picks the form for this layer's weight gradient
};

/// Checks a sample-lane Winograd weight gradient (F(Mt×Mt, 3×3)) against the reference through
/// conv2d_backward_weight: automatically where the table picks it (which must match
/// `dispatched`), else forced and on two threads, so that the blocks of samples are summed
/// from two partial results.
template <int Mt>
void check_winograd_wgrad(const std::vector<wgrad_config>& configs, std::uint64_t seed, double atol) {
  const algo form = Mt == 4 ? algo::winograd_f4_sample_lane : algo::winograd_f2_sample_lane;
  for (const auto& c : configs) {
    INFO("x " << fmt::format("{}", c.x) << " cout " << c.cout);
    const ltl::conv2d_options o{.padding = 1};
    const shape ws{c.cout, c.x[1], 3, 3};
    const auto geo = ltl::make_conv2d_geometry(c.x, ws, o);
    REQUIRE((ltl::cpu::select_backward_weight_algorithm<float>(geo) == form) == c.dispatched);
    const TF x = random_tensor<float>(c.x, ++seed), dy = random_tensor<float>(geo.output_shape(), ++seed);
    const auto want = ltl_ref::conv2d_grad_weight(dy, x, ws, o);
    if (c.dispatched) {
      require_close(ltl::cpu::conv2d_backward_weight(dy, x, ws, o), want, atol, 1e-4);
      continue;
    }
    const omp_threads_guard two_threads(2);
    require_close(ltl::cpu::conv2d_backward_weight(dy, x, ws, forced(o, form)), want, atol, 1e-4);
  }
}

/// The automatic weight-gradient choice for float.
algo weight_grad_choice(const shape& x, ltl::index_t cout, ltl::index_t stride = 1) {
  return ltl::cpu::select_backward_weight_algorithm<float>(
      ltl::make_conv2d_geometry(x, {cout, x[1], 3, 3}, {.stride = stride, .padding = 1}));
}
}  // namespace

TEST_CASE("Winograd's sample-lane weight gradient matches the reference", "[ops][conv]") {
  // F(2×2). Dispatched shapes (32→32 at 14×14 with a last block of 5 samples; 48→48 at 14×14:
  // one vector of output channels per register tile, 24 + 24 input channels), then direct
  // calls: input-channel tails (20 = 16 + 4; 40 = 12 + 12 + 12 + 4; 3 = 1 + 1 + 1), two and four
  // vectors of output channels, odd planes whose last tiles' outputs fall outside (9×9, 5×9,
  // 7×7), one sample, and work split into blocks summed from two partial results.
  check_winograd_wgrad<2>({{{37, 32, 14, 14}, 32, true},
                           {{34, 48, 14, 14}, 48, true},
                           {{17, 20, 9, 9}, 48, false},
                           {{16, 40, 5, 9}, 32, false},
                           {{3, 3, 7, 7}, 64, false},
                           {{1, 16, 6, 6}, 16, false}},
                          1100, 1e-3);
  // Output channels in whole vectors, planes of 16 values or more; 16 channels, 64 channels and
  // stride 2 stay on the direct kernels.
  const TF x = TF::zeros({2, 16, 8, 8}), dy = TF::zeros({2, 24, 8, 8}), tiny = TF::zeros({2, 16, 3, 3});
  const auto wgrad = [](const TF& dyv, const TF& xv, ltl::index_t cout, algo a) {
    (void)ltl::cpu::conv2d_backward_weight(dyv, xv, {cout, xv.size(1), 3, 3}, {.padding = 1, .algorithm = a});
  };
  require_error<ltl::value_error>([&] { wgrad(dy, x, 24, algo::winograd_f2_sample_lane); },
                                  {"winograd_f2_sample_lane", "weight gradient", "multiples of 16"});
  require_error<ltl::value_error>([&] { wgrad(tiny, tiny, 16, algo::winograd_f2_sample_lane); },
                                  {"winograd_f2_sample_lane", "input [2, 16, 3, 3]", "at least 16 values"});
  require_error<ltl::value_error>([&] { wgrad(dy, x, 24, algo::winograd_f4_sample_lane); },
                                  {"winograd_f4_sample_lane", "weight [24, 16, 3, 3]", "multiples of 16"});
  REQUIRE(weight_grad_choice({64, 16, 28, 28}, 16) != algo::winograd_f2_sample_lane);
  REQUIRE(weight_grad_choice({64, 64, 14, 14}, 64) != algo::winograd_f2_sample_lane);
  REQUIRE(weight_grad_choice({64, 32, 28, 28}, 32, 2) != algo::winograd_f2_sample_lane);
}

TEST_CASE("Winograd F(4x4, 3x3) weight gradient matches the reference", "[ops][conv]") {
  // Dispatched shapes: 16→16 at 28×28 (7 × 7 whole tiles, a last block of 5 samples), 16→16
  // at 14×14 (last tiles half outside), 64→64 at 8×8 (four vectors of output channels), 48→32
  // at 16×16 (two vectors, 12 + 12 + 12 + 12 input channels); then direct calls: input-channel
  // tails, odd planes, one tile (4×4), one sample, two partial sums. Round-off grows with
  // F(4×4)'s larger transform entries (about 2e-5 of the largest entry, against 4e-6 for
  // F(2×2)), so the absolute tolerance is 5e-3 on entries of order 50–100.
  check_winograd_wgrad<4>({{{37, 16, 28, 28}, 16, true},
                           {{40, 16, 14, 14}, 16, true},
                           {{33, 64, 8, 8}, 64, true},
                           {{32, 48, 16, 16}, 32, true},
                           {{17, 20, 9, 9}, 48, false},
                           {{16, 40, 5, 9}, 32, false},
                           {{3, 3, 7, 7}, 64, false},
                           {{2, 24, 4, 4}, 16, false},
                           {{1, 16, 6, 6}, 16, false}},
                          1200, 5e-3);
  const auto f4 = [](shape x, ltl::index_t cout) {
    return weight_grad_choice(x, cout) == algo::winograd_f4_sample_lane;
  };
  REQUIRE_FALSE(f4({64, 32, 14, 14}, 32));  // 16×16 computed for 14×14 from 32 channels: F(2×2)
  REQUIRE_FALSE(f4({64, 16, 28, 28}, 24));  // output channels not in whole vectors
  REQUIRE_FALSE(f4({64, 16, 40, 40}, 16));
  REQUIRE_FALSE(f4({31, 16, 28, 28}, 16));
  REQUIRE_FALSE(f4({64, 128, 8, 8}, 128));
  REQUIRE(f4({64, 32, 28, 28}, 32));
}

// The CPU device provides the fused epilogue kernel, so conv_bn folds batch norm at inference.
static_assert(ltl::conv_epilogue_device<float, ltl::cpu::device>);
static_assert(ltl::conv_epilogue_device<double, ltl::cpu::device>);

TEST_CASE("conv2d_bn_inference equals conv, eval batch norm, residual and ReLU composed", "[ops][conv][bn]") {
  // One shape per forward kernel: channel-vectorised (stride 2; stride 1 on an 8×8 plane), the
  // row-vectorised direct kernel (16×16 plane) and im2col + GEMM (5×5 kernel, 1×1 kernel).
  struct config {
    shape x;
    ltl::index_t cout, k, stride, pad;
  };
  const std::vector<config> configs{{{3, 16, 16, 16}, 32, 3, 2, 1}, {{2, 32, 8, 8}, 32, 3, 1, 1},
                                    {{2, 16, 16, 16}, 16, 3, 1, 1}, {{2, 5, 9, 9}, 7, 5, 1, 2},
                                    {{2, 8, 6, 6}, 12, 1, 1, 0}};
  std::uint64_t seed = 300;
  for (const auto& c : configs) {
    for (bool with_res : {false, true}) {
      INFO("x " << fmt::format("{}", c.x) << " cout " << c.cout << " k " << c.k << " residual " << with_res);
      using VF = ltl::variable<float>;
      const ltl::conv2d_options o{.stride = c.stride, .padding = c.pad};
      const shape ws{c.cout, c.x[1], c.k, c.k};
      const auto out = ltl::make_conv2d_geometry(c.x, ws, o).output_shape();
      const TF x = random_tensor<float>(c.x, ++seed), w = random_tensor<float>(ws, ++seed, -0.3, 0.3);
      const TF cb = random_tensor<float>({c.cout}, ++seed), g = random_tensor<float>({c.cout}, ++seed, 0.5, 2);
      const TF b = random_tensor<float>({c.cout}, ++seed), rm = random_tensor<float>({c.cout}, ++seed);
      const TF rv = random_tensor<float>({c.cout}, ++seed, 0.2, 3), res = random_tensor<float>(out, ++seed);
      ltl::no_grad_guard ng;
      const VF r = with_res ? VF(res) : VF();
      const auto fused = ltl::conv2d_bn_inference(VF(x), VF(w), VF(cb), VF(g), VF(b), rm, rv, 1e-5, o, true, r);
      TF rm2 = rm.clone(), rv2 = rv.clone();
      auto plain = ltl::batch_norm2d(ltl::conv2d(VF(x), VF(w), VF(cb), o), VF(g), VF(b), rm2, rv2,
                                     {.training = false, .eps = 1e-5});
      if (with_res) plain = plain + r;
      require_close(fused.value(), ltl::relu(plain).value(), 2e-5, 1e-5);
    }
  }
  // Gradients are not computed: asking for them is an error, not silently dropped.
  const TF x = random_tensor<float>({1, 2, 4, 4}, 1), w = random_tensor<float>({2, 2, 3, 3}, 2);
  const ltl::variable<float> xv(x, true);
  REQUIRE_THROWS_AS(ltl::conv2d_bn_inference(xv, ltl::variable<float>(w), {}, {}, {}, TF::zeros({2}), TF::ones({2}),
                                             1e-5, {.padding = 1}, true),
                    ltl::value_error);
  REQUIRE_THROWS_AS(ltl::conv2d_bn_inference(ltl::variable<float>(x), ltl::variable<float>(w), {}, {}, {},
                                             TF::zeros({3}), TF::ones({3}), 1e-5, {.padding = 1}, true),
                    ltl::shape_error);
}

TEST_CASE("conv2d accepts non-contiguous inputs", "[ops][conv]") {
  const TD base = random_tensor({2, 3, 6, 5}, 60);
  const TD x = base.transpose(2, 3);  // [2, 3, 5, 6], strided
  const TD w = random_tensor({4, 3, 3, 3}, 61);
  const ltl::conv2d_options o{.padding = 1};
  require_close(ltl::cpu::conv2d_forward(x, w, TD(), o), ltl_ref::conv2d(x.contiguous(), w, TD(), o), 1e-12);
}

TEST_CASE("conv2d rejects bad shapes with messages naming the op and shapes", "[ops][conv][errors]") {
  const VD x(TD::zeros({2, 3, 5, 5}));
  require_error<ltl::shape_error>(
      [&] {
        (void)ltl::conv2d(x, VD(TD::zeros({4, 2, 3, 3})));
      },
      {"conv2d", "[2, 3, 5, 5]", "[4, 2, 3, 3]"});
  require_error<ltl::shape_error>(
      [&] {
        (void)ltl::conv2d(x, VD(TD::zeros({4, 1, 3, 3})), {}, {.groups = 2});
      },
      {"conv2d", "[2, 3, 5, 5]", "groups = 2"});
  require_error<ltl::shape_error>(
      [&] {
        (void)ltl::conv2d(VD(TD::zeros({2, 4, 5, 5})), VD(TD::zeros({3, 2, 3, 3})), {}, {.groups = 2});
      },
      {"conv2d", "[3, 2, 3, 3]", "groups = 2"});
  require_error<ltl::shape_error>(
      [&] {
        (void)ltl::conv2d(x, VD(TD::zeros({4, 3, 7, 7})));
      },
      {"conv2d", "[2, 3, 5, 5]", "empty"});
  require_error<ltl::shape_error>(
      [&] {
        (void)ltl::conv2d(x, VD(TD::zeros({4, 3, 3, 3})), VD(TD::zeros({3})));
      },
      {"conv2d", "[3]", "[4, 3, 3, 3]"});
  require_error<ltl::shape_error>(
      [&] {
        (void)ltl::conv2d(VD(TD::zeros({3, 5, 5})), VD(TD::zeros({4, 3, 3, 3})));
      },
      {"conv2d", "[3, 5, 5]"});
  require_error<ltl::shape_error>(
      [&] {
        (void)ltl::conv2d(x, VD(TD::zeros({4, 3, 3, 3})), {}, {.stride = 0});
      },
      {"conv2d", "[2, 3, 5, 5]", "stride"});
}


// ---------------------------------------------------------------------------------------------
// The algorithm table and forced algorithms

namespace {

/// The letter conv_selection_table.hpp writes for an algorithm.
char table_letter(algo a) {
  switch (a) {
    case algo::im2col_gemm: return 'g';
    case algo::direct3x3: return 'd';
    case algo::channel_vectorised3x3: return 'v';
    case algo::winograd_f2_channels_last: return 'c';
    case algo::winograd_f2_planar: return 'p';
    case algo::winograd_f2_sample_lane: return 's';
    case algo::winograd_f4_sample_lane: return 'f';
    case algo::automatic: break;
  }
  return '?';
}

/// The non-3×3-padding-1 geometries of the table's "extras" rows (input, weight, options).
struct selection_extra {
  shape x, w;
  ltl::conv2d_options o;
};
const std::vector<selection_extra> conv_selection_extras{
    {{32, 64, 16, 16}, {64, 64, 1, 1}, {}},
    {{32, 64, 16, 16}, {64, 64, 1, 1}, {.stride = 2}},
    {{32, 64, 16, 16}, {64, 64, 5, 5}, {.padding = 2}},
    {{32, 64, 16, 16}, {64, 64, 3, 3}, {}},
    {{32, 64, 16, 16}, {64, 64, 3, 3}, {.padding = 1, .dilation = 2}},
    {{32, 64, 16, 16}, {64, 32, 3, 3}, {.padding = 1, .groups = 2}},
    {{32, 32, 16, 16}, {32, 1, 3, 3}, {.padding = 1, .groups = 32}},
    {{32, 64, 16, 16}, {64, 64, 3, 3}, {.stride = {1, 2}, .padding = 1}},
    {{32, 64, 16, 16}, {64, 64, 3, 3}, {.stride = {2, 1}, .padding = 1}},
    {{32, 64, 16, 16}, {64, 64, 3, 3}, {.stride = 3, .padding = 1}},
    {{32, 64, 16, 16}, {64, 64, 3, 3}, {.padding = {1, 0}}},
    {{32, 64, 16, 16}, {64, 64, 3, 3}, {.padding = 2}},
    {{32, 16, 28, 28}, {16, 16, 3, 2}, {.padding = 1}},
    {{32, 32, 14, 14}, {32, 32, 3, 3}, {.padding = 1, .dilation = {1, 2}}},
};

/// "<forward> <input gradient> <weight gradient>" letters of the automatic choices for T.
template <class T>
void append_choices(const ltl::conv2d_geometry& g, std::string (&letters)[3]) {
  letters[0] += table_letter(ltl::cpu::select_forward_algorithm<T>(g));
  letters[1] += table_letter(ltl::cpu::select_backward_input_algorithm<T>(g));
  letters[2] += table_letter(ltl::cpu::select_backward_weight_algorithm<T>(g));
}

template <class T>
void check_selection_rows(std::string_view type, std::size_t& row) {
  for (ltl::index_t n : ltl_test::conv_selection_samples)
    for (ltl::index_t s : ltl_test::conv_selection_strides)
      for (const auto& p : ltl_test::conv_selection_planes) {
        std::string letters[3];
        for (ltl::index_t ci : ltl_test::conv_selection_channels)
          for (ltl::index_t co : ltl_test::conv_selection_channels)
            append_choices<T>(ltl::make_conv2d_geometry({n, ci, p[0], p[1]}, {co, ci, 3, 3}, {.stride = s, .padding = 1}),
                              letters);
        const std::string got = fmt::format("{} n{} s{} {}x{} {} {} {}", type, n, s, p[0], p[1], letters[0], letters[1],
                                            letters[2]);
        REQUIRE(row < std::size(ltl_test::conv_selection_table));
        CHECK(got == ltl_test::conv_selection_table[row]);
        ++row;
      }
  std::string letters[3];
  for (const auto& e : conv_selection_extras) append_choices<T>(ltl::make_conv2d_geometry(e.x, e.w, e.o), letters);
  const std::string got = fmt::format("{} extras {} {} {}", type, letters[0], letters[1], letters[2]);
  CHECK(got == ltl_test::conv_selection_table[std::size(ltl_test::conv_selection_table) - (type == "float" ? 2 : 1)]);
}

}  // namespace

TEST_CASE("the algorithm table picks the kernel the former dispatch picked for every recorded geometry",
          "[conv][dispatch]") {
  // conv_selection_table.hpp holds the kernel per pass that backends/cpu/conv.hpp's if-chains
  // chose before conv/dispatch.hpp replaced them, for 3×3 padding-1 layers over a grid of batch
  // sizes (either side of the sample-lane forms' 32), strides, planes (either side of every
  // plane threshold) and channel counts (either side of 16, 32, 64 and of whole vectors), in
  // float and double, plus other kernels, strides, paddings, dilations and groups.
  std::size_t row = 0;
  check_selection_rows<float>("float", row);
  check_selection_rows<double>("double", row);
  REQUIRE(row + 2 == std::size(ltl_test::conv_selection_table));
}

TEST_CASE("every conv2d algorithm computes every pass it supports through the public entry points",
          "[conv][dispatch]") {
  // 33 samples (two blocks of 16 and one of 1 for the sample-lane forms), 16 channels in and
  // out (whole vectors, so that every form applies), an 8×8 plane.
  const ltl::conv2d_options o{.padding = 1};
  const shape xs{33, 16, 8, 8}, ws{16, 16, 3, 3};
  std::uint64_t seed = 1500;
  const TF x = random_tensor<float>(xs, ++seed), w = random_tensor<float>(ws, ++seed);
  const TF b = random_tensor<float>({16}, ++seed), dy = random_tensor<float>({33, 16, 8, 8}, ++seed);
  const TD y_ref = ltl_ref::conv2d(x, w, b, o), dx_ref = ltl_ref::conv2d_grad_input(dy, w, xs, o);
  const TD dw_ref = ltl_ref::conv2d_grad_weight(dy, x, ws, o);
  const auto geo = ltl::make_conv2d_geometry(xs, ws, o);
  // Automatically, F(4×4) takes all three passes of this layer.
  REQUIRE(ltl::cpu::select_forward_algorithm<float>(geo) == algo::winograd_f4_sample_lane);
  REQUIRE(ltl::cpu::select_backward_input_algorithm<float>(geo) == algo::winograd_f4_sample_lane);
  REQUIRE(ltl::cpu::select_backward_weight_algorithm<float>(geo) == algo::winograd_f4_sample_lane);
  for (algo a : ltl::all_conv2d_algorithms) {
    INFO(ltl::to_string(a));
    const auto of = forced(o, a);
    // F(4×4)'s round-off is about ten times the others' (see the F(4×4) tests above).
    const bool f4 = a == algo::winograd_f4_sample_lane || a == algo::automatic;
    require_close(ltl::cpu::conv2d_forward(x, w, b, of), y_ref, f4 ? 3e-4 : 2e-5, 1e-5);
    require_close(ltl::cpu::conv2d_backward_input(dy, w, xs, of), dx_ref, f4 ? 3e-4 : 2e-5, 1e-5);
    if (a == algo::winograd_f2_channels_last || a == algo::winograd_f2_planar) {
      require_error<ltl::value_error>([&] { (void)ltl::cpu::conv2d_backward_weight(dy, x, ws, of); },
                                      {std::string(ltl::to_string(a)), "weight gradient", "input [33, 16, 8, 8]"});
    } else {
      require_close(ltl::cpu::conv2d_backward_weight(dy, x, ws, of), dw_ref, f4 ? 5e-3 : 1e-3, 1e-4);
    }
  }
  // The differentiable op carries the forced algorithm into its backward pass.
  using VF = ltl::variable<float>;
  VF xv(x, true), wv(w, true);
  auto y = ltl::conv2d(xv, wv, VF(b), forced(o, algo::winograd_f2_sample_lane));
  require_close(y.value(), y_ref, 2e-5, 1e-5);
  y.backward(dy);
  require_close(xv.grad(), dx_ref, 2e-5, 1e-5);
  require_close(wv.grad(), dw_ref, 1e-3, 1e-4);
}

TEST_CASE("a forced conv2d algorithm that cannot compute the geometry throws naming both", "[conv][dispatch][errors]") {
  const TF xf = TF::zeros({2, 16, 9, 9}), wf = TF::zeros({16, 16, 3, 3});
  const TD xd = TD::zeros({2, 16, 8, 8}), wd = TD::zeros({16, 16, 3, 3});
  // Stride 2: neither the row kernel nor Winograd; stride 3: not even the channel-vectorised one.
  for (algo a : {algo::direct3x3, algo::winograd_f2_channels_last, algo::winograd_f2_planar,
                 algo::winograd_f2_sample_lane, algo::winograd_f4_sample_lane}) {
    require_error<ltl::value_error>(
        [&] {
          (void)ltl::cpu::conv2d_forward(xf, wf, TF(), {.stride = 2, .padding = 1, .algorithm = a});
        },
        {"conv2d", std::string(ltl::to_string(a)), "forward", "input [2, 16, 9, 9]", "stride (2, 2)"});
  }
  require_error<ltl::value_error>(
      [&] {
        (void)ltl::cpu::conv2d_backward_input(TF::zeros({2, 16, 3, 3}), wf, xf.sizes(),
                                              {.stride = 3, .padding = 1, .algorithm = algo::channel_vectorised3x3});
      },
      {"channel_vectorised3x3", "input gradient", "stride (3, 3)"});
  require_error<ltl::value_error>(
      [&] {
        (void)ltl::cpu::conv2d_forward(xf, TF::zeros({16, 8, 3, 3}), TF(),
                                       {.padding = 1, .groups = 2, .algorithm = algo::direct3x3});
      },
      {"direct3x3", "groups 2"});
  // Channels-last needs whole vectors of channels; the Winograd kernels float.
  require_error<ltl::value_error>(
      [&] {
        (void)ltl::cpu::conv2d_forward(TF::zeros({2, 24, 8, 8}), TF::zeros({16, 24, 3, 3}), TF(),
                                       {.padding = 1, .algorithm = algo::winograd_f2_channels_last});
      },
      {"winograd_f2_channels_last", "input [2, 24, 8, 8]", "multiples of 16"});
  require_error<ltl::value_error>(
      [&] {
        (void)ltl::cpu::conv2d_forward(xd, wd, TD(), {.padding = 1, .algorithm = algo::winograd_f2_planar});
      },
      {"winograd_f2_planar", "double", "float only"});
  // Every name parses back to its algorithm; unknown names are an error.
  for (algo a : ltl::all_conv2d_algorithms) REQUIRE(ltl::parse_conv2d_algorithm(ltl::to_string(a)) == a);
  require_error<ltl::value_error>([] { (void)ltl::parse_conv2d_algorithm("winograd"); }, {"conv2d", "winograd"});
}
