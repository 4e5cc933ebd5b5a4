// Tests of the CUDA backend's hand-written kernels: softmax family, batch norm, pooling,
// indexing, the fused loss and the SGD update (backends/cuda/{softmax,batchnorm,pool,indexing,
// loss,optim}.hpp).
//
// [cuda-host] cases run everywhere. They run the kernels' own per-element and per-line
// functions (declared __host__ __device__ in backends/cuda/kernels/*.cuh) on the host over
// the same launch plans the device uses, and compare with the CPU backend, so the index
// arithmetic, block partitioning and formulas are checked without a GPU; and they check that
// every op rejects bad shapes before it touches the device.
// [cuda] cases compare each device kernel with the CPU on random inputs, run each op twice
// and compare the two results bit for bit; they are skipped, with the reason printed, when no
// GPU is usable.
//
// Tolerances, float / double, as |got − want| ≤ tol·max|want| (require_close_max):
//   host emulations of the kernels' own functions ......... exact where they repeat the CPU's
//       operations in its order (softmax lines, pooling, indexing, loss rows one per thread);
//       batch norm and the loss's block-per-row split sum in another order: as below
//   softmax, log_softmax, l2_normalize (+ backwards) ...... 1e-6 / 1e-13: expf/exp of the CUDA
//       math library (≤ 2 ulp from libm), sums in double in another order
//   batch norm ........................................... 1e-5 / 1e-12: double statistics
//       summed in another order, rounded to T
//   pooling, indexing ..................................... exact, except global average
//       pooling (1e-6 / 1e-14: its long-plane path sums in another order) and lerp_mix
//       (3e-7 / 1e-15, an ulp: the device rounds products apart, the CPU's compiler may
//       fuse them into FMAs)
//   SGD ................................................... 3e-7 / 1e-15 (an ulp, as lerp_mix)
//   fused loss: per-row losses, ∂z ........................ 1e-6 / 1e-13 (double arithmetic
//       throughout; exp/log/pow of the CUDA math library); the value 1e-12 relative
#include <ltlearn/cuda.hpp>
#include <ltlearn/backends/cpu/kernel_set.hpp>

#include "support.hpp"
#include "support/cuda_skip.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

using ltl::index_t;
using ltl::shape;
namespace cuda = ltl::cuda;
namespace kn = ltl::cuda::kernels;
using gpu = ltl::cuda::device;
using cpu = ltl::cpu::device;
using ltl_test::random_tensor;

namespace {

template <class T>
using HT = ltl::tensor<T>;
template <class T>
using DT = ltl::tensor<T, gpu>;
using labels_h = ltl::tensor<std::int64_t>;

/// The same values bit for bit (NaN included).
template <class T>
void require_bitwise(const std::vector<T>& a, const std::vector<T>& b) {
  REQUIRE(a.size() == b.size());
  REQUIRE(std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}
template <class A, class B>
void require_exact(const A& got, const B& want) {
  REQUIRE(got.sizes() == want.sizes());
  require_bitwise(got.to_vector(), want.to_vector());
}

/// |got − want| ≤ tol·max|want| (errors relative to the largest value).
template <class A, class B>
void require_close_max(const A& got, const B& want, double tol) {
  double scale = 0;
  for (auto v : want.to_vector()) scale = std::max(scale, std::abs(static_cast<double>(v)));
  ltl_test::require_close(got, want, tol * std::max(scale, 1e-30));
}

template <class T>
constexpr double tol(double f, double d) {
  return std::is_same_v<T, float> ? f : d;
}

labels_h labels_of(std::vector<std::int64_t> v) {
  const auto n = static_cast<index_t>(v.size());
  return labels_h::from(shape{n}, v);
}

/// Runs `op` (returning a device tensor) twice; the two results must agree bit for bit.
template <class F>
auto twice(F op) {
  auto first = op();
  auto second = op();
  require_exact(second, first);
  return first;
}

}  // namespace

// ================================ runs without a GPU ================================

TEST_CASE("the CUDA backend provides the hand-written kernel areas", "[cuda-host]") {
  STATIC_REQUIRE(ltl::softmax_kernels<gpu, float> && ltl::softmax_kernels<gpu, double>);
  STATIC_REQUIRE(ltl::batch_norm_kernels<gpu, float> && ltl::batch_norm_kernels<gpu, double>);
  STATIC_REQUIRE(ltl::pooling_kernels<gpu, float> && ltl::pooling_kernels<gpu, double>);
  STATIC_REQUIRE(ltl::indexing_kernels<gpu, float> && ltl::indexing_kernels<gpu, double>);
  STATIC_REQUIRE(ltl::loss_kernels<gpu, float> && ltl::loss_kernels<gpu, double>);
  STATIC_REQUIRE(ltl::optimiser_kernels<gpu, float> && ltl::optimiser_kernels<gpu, double>);
  STATIC_REQUIRE(ltl::conv_kernels<gpu, float>);  // with cuDNN's convolution: complete
  STATIC_REQUIRE(ltl::compute_device<gpu>);
}


// ---- softmax family: the per-line functions over the device's line space ----

TEMPLATE_TEST_CASE("softmax line functions over the line space give the CPU's results", "[cuda-host]", float,
                   double) {
  using T = TestType;
  using kn::line_op;
  for (const auto& [s, dim] : std::vector<std::pair<shape, int>>{
           {{4, 7}, 1}, {{4, 7}, 0}, {{3, 5, 6}, 1}, {{2, 3, 4, 5}, 2}, {{6}, 0}, {{3, 1, 2}, 1}}) {
    INFO("shape " << fmt::format("{}", s) << ", dim " << dim);
    const auto x = random_tensor<T>(s, 1, -4, 4), g = random_tensor<T>(s, 2);
    const auto L = kn::make_line_space(s, dim);
    // The CPU softmax's [outer, n, inner] lines of dimension `dim`, by definition: line
    // o·inner + i starts at o·n·inner + i.
    index_t outer = 1, inner = 1;
    for (int k = 0; k < dim; ++k) outer *= s[k];
    for (int k = dim + 1; k < s.size(); ++k) inner *= s[k];
    REQUIRE((L.outer == outer && L.n == s[dim] && L.inner == inner));
    for (index_t l = 0; l < L.lines(); ++l) REQUIRE(L.base(l) == (l / inner) * s[dim] * inner + l % inner);
    auto run = [&](auto op_tag, const HT<T>& a, const HT<T>& b, HT<T>& norms, T eps) {
      constexpr line_op Op = decltype(op_tag)::value;
      HT<T> out(s);
      const kn::line_args<T> p{a.data(), b.defined() ? b.data() : nullptr, out.data(), norms.data(), norms.data(),
                               eps};
      for (index_t l = 0; l < L.lines(); ++l) kn::run_line<Op>(p, L.base(l), l, L.n, L.inner);
      return out;
    };
    HT<T> none;
    const auto y = ltl::cpu::softmax_forward(x, dim);
    const auto ly = ltl::cpu::log_softmax_forward(x, dim);
    require_exact(run(std::integral_constant<line_op, line_op::softmax>{}, x, none, none, T(0)), y);
    require_exact(run(std::integral_constant<line_op, line_op::log_softmax>{}, x, none, none, T(0)), ly);
    require_exact(run(std::integral_constant<line_op, line_op::softmax_grad>{}, g, y, none, T(0)),
                  ltl::cpu::softmax_backward(g, y, dim));
    require_exact(run(std::integral_constant<line_op, line_op::log_softmax_grad>{}, g, ly, none, T(0)),
                  ltl::cpu::log_softmax_backward(g, ly, dim));
    // l2: one eps below every norm, one above some (the clamped branch).
    for (const T eps : {T(1e-12), T(1.5)}) {
      const auto [ny, nn] = ltl::cpu::l2_normalize_forward(x, dim, eps);
      HT<T> norms(nn.sizes());
      require_exact(run(std::integral_constant<line_op, line_op::l2_normalize>{}, x, none, norms, eps), ny);
      require_exact(norms, nn);
      require_exact(run(std::integral_constant<line_op, line_op::l2_normalize_grad>{}, g, ny, norms, eps),
                    ltl::cpu::l2_normalize_backward(g, ny, nn, dim, eps));
    }
  }
}

// ---- batch norm: the three passes emulated on the host over the device's chunk plan ----

TEST_CASE("batch-norm chunk plans cover each channel once, in the CPU's element order", "[cuda-host]") {
  for (auto [n, c, hw] : {std::array<index_t, 3>{2, 3, 5}, {128, 16, 1024}, {7, 4, 1}, {3, 2, 4097}, {1, 1, 2}}) {
    INFO("n c hw " << n << " " << c << " " << hw);
    const auto p = kn::make_bn_plan(n, c, hw);
    REQUIRE(p.m == n * hw);
    REQUIRE(p.chunks * p.chunk >= p.m);
    REQUIRE((p.chunks - 1) * p.chunk < p.m);
    REQUIRE(p.chunk <= kn::bn_chunk_target);
    for (index_t ch = 0; ch < c; ch += std::max<index_t>(1, c - 1)) {
      index_t j = 0;
      for (index_t i = 0; i < n; ++i)
        for (index_t q = 0; q < hw; ++q, ++j) {
          REQUIRE(p.offset(ch, j) == (i * c + ch) * hw + q);
          REQUIRE(p.channel_of(p.offset(ch, j)) == ch);
        }
    }
  }
}

TEST_CASE("kernel index arithmetic stays exact beyond 2^31 elements", "[cuda-host]") {
  // [2048, 256, 112, 112] has 6.6e9 elements (ResNet-50's largest activations, [N, 256, 56, 56]
  // and [N, 64, 112, 112] at 224², pass 2^31 from N = 2675): every element offset the kernels
  // form must be 64-bit. Each function is checked near the end against offsets computed here.
  const index_t n = 2048, c = 256, h = 112, w = 112, hw = h * w, total = n * c * hw;
  REQUIRE(total > std::numeric_limits<std::int32_t>::max());
  // Batch norm's chunk plan: the last value of the last channel is x's last element.
  const auto p = kn::make_bn_plan(n, c, hw);
  REQUIRE(p.offset(c - 1, p.m - 1) == total - 1);
  REQUIRE(p.offset(c - 2, p.m - 2) == ((n - 1) * c + c - 2) * hw + hw - 2);
  REQUIRE(p.channel_of(total - 1) == c - 1);
  REQUIRE(p.channel_of(total - hw - 1) == c - 2);
  // Its grid is (chunks, channels); channels beyond grid.y's 65535 are refused, not wrapped.
  const dim3 grid = cuda::detail::bn_sums_grid(p);
  REQUIRE(static_cast<index_t>(grid.x) == p.chunks);
  REQUIRE(static_cast<index_t>(grid.y) == c);
  REQUIRE_NOTHROW(cuda::detail::bn_sums_grid(kn::make_bn_plan(2, 65535, 1)));
  REQUIRE_THROWS_AS(cuda::detail::bn_sums_grid(kn::make_bn_plan(2, 65536, 1)), ltl::shape_error);
  // Lines along dimension 1 (softmax over channels): the last line's last element.
  const auto L = kn::make_line_space(shape{n, c, h, w}, 1);
  REQUIRE(L.lines() == n * hw);
  REQUIRE(L.base(L.lines() - 1) + (L.n - 1) * L.inner == total - 1);
  REQUIRE(L.base(L.lines() - 2) == (n - 1) * c * hw + hw - 2);
  // A strided space: x contiguous and a view of a [w, h, c, n] tensor permuted to [n, c, h, w].
  const auto sp = kn::make_space<2>(shape{n, c, h, w}, {shape{c * hw, hw, w, 1}, shape{1, n, n * c, n * c * h}});
  index_t off[2];
  sp.offsets(total - 2, off);  // position (n − 1, c − 1, h − 1, w − 2)
  REQUIRE(off[0] == total - 2);
  REQUIRE(off[1] == (n - 1) + (c - 1) * n + (h - 1) * n * c + (w - 2) * n * c * h);
  // index_select along dimension 1 with indices {c − 1, 0}: output [n, 2, h·w].
  const std::int64_t idx[2] = {c - 1, 0};
  REQUIRE(kn::index_select_source(n * 2 * hw - 1, idx, 2, c, hw) == (n - 1) * c * hw + hw - 1);
  REQUIRE(kn::index_select_source((n - 1) * 2 * hw + hw - 1, idx, 2, c, hw) == total - 1);
  // The option-A shortcut from [n, 128, 112, 112] (3.3e9 elements) to [n, 256, 56, 56].
  const index_t cin = 128, cout = 256, pad = (cout - cin) / 2, ho = h / 2, wo = w / 2;
  const kn::shortcut_dims d{n, cin, h, w, cout, ho, wo, 2, pad, {cin * hw, hw, w, 1}};
  const index_t last_kept = ((n - 1) * cout + pad + cin - 1) * ho * wo + ho * wo - 1;
  REQUIRE(d.source(last_kept) == (n - 1) * cin * hw + (cin - 1) * hw + (h - 2) * w + (w - 2));
  REQUIRE(d.source(last_kept + 1) == -1);  // the first zero-padded channel after the kept ones
  REQUIRE(d.grad_source(n * cin * hw - w - 2) == last_kept);  // input (n − 1, cin − 1, h − 2, w − 2)
  REQUIRE(d.grad_source(n * cin * hw - 1) == -1);              // odd row and column: skipped
}

namespace {
/// Pass 1 of the forward or backward on the host: per-chunk sums as the device's blocks form
/// them (thread partials, then block_sum's tree).
template <class F>
std::vector<double> host_chunk_sums(const kn::bn_plan& p, F value_pair) {
  std::vector<double> partial(static_cast<std::size_t>(p.c * p.chunks * 2));
  for (index_t ch = 0; ch < p.c; ++ch)
    for (index_t q = 0; q < p.chunks; ++q) {
      double s1[kn::block_size] = {}, s2[kn::block_size] = {};
      const index_t j1 = std::min(p.m, (q + 1) * p.chunk);
      for (index_t t = 0; t < kn::block_size; ++t)
        for (index_t j = q * p.chunk + t; j < j1; j += kn::block_size) {
          const auto [a, b] = value_pair(ch, p.offset(ch, j));
          s1[t] += a;
          s2[t] += b;
        }
      partial[static_cast<std::size_t>((ch * p.chunks + q) * 2)] = kn::tree_sum_host(s1);
      partial[static_cast<std::size_t>((ch * p.chunks + q) * 2 + 1)] = kn::tree_sum_host(s2);
    }
  return partial;
}
}  // namespace

TEMPLATE_TEST_CASE("batch-norm passes emulated over the plan give the CPU's results", "[cuda-host]", float, double) {
  using T = TestType;
  const double eps = tol<T>(1e-5, 1e-12);
  for (const shape& s : {shape{4, 3, 5, 5}, shape{3, 2, 70, 40}}) {  // one chunk; three chunks per channel
    const auto x = random_tensor<T>(s, 3, -1, 3), res = random_tensor<T>(s, 4), dy = random_tensor<T>(s, 5);
    const auto w = random_tensor<T>({s[1]}, 6, 0.5, 1.5), b = random_tensor<T>({s[1]}, 7);
    const auto p = kn::make_bn_plan(s[0], s[1], s[2] * s[3]);
    for (const bool training : {true, false}) {
      for (const bool fused : {false, true}) {
        INFO("shape " << fmt::format("{}", s) << (training ? " training" : " eval") << (fused ? " residual+relu" : ""));
        const ltl::batch_norm_options opt{.training = training, .momentum = 0.1, .eps = 1e-5, .relu = fused};
        auto rm_c = random_tensor<T>({s[1]}, 8), rv_c = random_tensor<T>({s[1]}, 9, 0.5, 2);
        auto rm_g = rm_c.clone(), rv_g = rv_c.clone();
        const auto want = ltl::cpu::batch_norm2d_forward(x, w, b, rm_c, rv_c, opt, fused ? res : HT<T>());
        // Forward on the host with the device's argument block and passes.
        HT<T> y(s), mean(shape{s[1]}), invstd(shape{s[1]}), coef(shape{2, s[1]});
        kn::bn_forward_args<T> a{x.data(), fused ? res.data() : nullptr, y.data(), w.data(), b.data(), rm_g.data(),
                                 rv_g.data(), 1, 1, 1, 1, mean.data(), invstd.data(), coef.data(),
                                 coef.data() + s[1], nullptr, opt.momentum, opt.eps, training, fused};
        std::vector<double> partial;
        if (training) {
          partial = host_chunk_sums(p, [&](index_t ch, index_t e) {
            const double d = static_cast<double>(x.data()[e]) - static_cast<double>(x.data()[ch * p.hw]);
            return std::pair<double, double>{d, d * d};
          });
          a.partial = partial.data();
        }
        for (index_t ch = 0; ch < p.c; ++ch) kn::bn_forward_channel(a, p, ch);
        for (index_t e = 0; e < x.numel(); ++e) y.data()[e] = kn::bn_forward_value(a, p, e);
        require_close_max(y, want.y, eps);
        require_close_max(mean, want.mean, eps);
        require_close_max(invstd, want.invstd, eps);
        require_close_max(rm_g, rm_c, eps);
        require_close_max(rv_g, rv_c, eps);

        // Backward, with and without the fused ReLU's mask, for each subset of gradients.
        for (const std::array<bool, 3> need : {std::array<bool, 3>{true, true, true}, {true, false, false},
                                               {false, true, false}}) {
          const HT<T> yr = fused ? want.y : HT<T>();
          const auto wb = ltl::cpu::batch_norm2d_backward(dy, x, w, want.mean, want.invstd, training, need, yr, fused);
          HT<T> dx(s), dw(shape{s[1]}), db(shape{s[1]}), masked(s), bcoef(shape{3, s[1]});
          const bool sums = need[1] || need[2] || (need[0] && training);
          kn::bn_backward_args<T> ba{dy.data(), x.data(), fused ? yr.data() : nullptr, w.data(), 1,
                                     want.mean.data(), want.invstd.data(), need[0] ? dx.data() : nullptr,
                                     need[1] ? dw.data() : nullptr, need[2] ? db.data() : nullptr,
                                     fused ? masked.data() : nullptr, bcoef.data(), bcoef.data() + s[1],
                                     bcoef.data() + 2 * s[1], nullptr, training};
          std::vector<double> bpartial;
          if (sums) {
            bpartial = host_chunk_sums(p, [&](index_t ch, index_t e) {
              const T gv = kn::bn_masked_grad(ba, e);
              if (ba.masked) ba.masked[e] = gv;
              return std::pair<double, double>{
                  static_cast<double>(gv),
                  static_cast<double>(gv) * (static_cast<double>(x.data()[e]) - static_cast<double>(want.mean.data()[ch]))};
            });
            ba.partial = bpartial.data();
          } else if (ba.masked) {
            for (index_t e = 0; e < x.numel(); ++e) ba.masked[e] = kn::bn_masked_grad(ba, e);
          }
          for (index_t ch = 0; ch < p.c; ++ch) kn::bn_backward_channel(ba, p, ch, sums);
          if (need[0]) {
            for (index_t e = 0; e < x.numel(); ++e) dx.data()[e] = kn::bn_backward_value(ba, p, e);
            require_close_max(dx, wb.dx, eps);
          }
          if (need[1]) require_close_max(dw, wb.dweight, eps);
          if (need[2]) require_close_max(db, wb.dbias, eps);
          if (fused) require_exact(masked, wb.dmasked);
        }
      }
    }
  }
}

// ---- pooling: window arithmetic against the CPU ----

TEST_CASE("pooling windows: covering ranges are the windows that contain each input", "[cuda-host]") {
  for (index_t k = 1; k <= 4; ++k)
    for (index_t st = 1; st <= 3; ++st)
      for (index_t pad = 0; 2 * pad <= k; ++pad)
        for (index_t h = std::max<index_t>(1, k - 2 * pad); h <= 9; ++h) {
          const auto g = ltl::make_pool2d_geometry(shape{1, 1, h, h}, {.kernel = k, .stride = st, .padding = pad}, "t");
          // The dims the CUDA pooling kernels get from the public geometry (pool_dims_of is their
          // host-side setup; without a GPU the window functions are reachable only this way, with
          // one the [cuda] pooling test runs them through max_pool2d and avg_pool2d).
          const auto d = cuda::detail::pool_dims_of(g);
          for (index_t i = 0; i < h; ++i) {
            index_t o0, o1;
            d.covering_rows(i, o0, o1);
            for (index_t o = 0; o < g.ho; ++o) {
              index_t h0, h1;
              d.rows(o, h0, h1);
              INFO("k " << k << " stride " << st << " pad " << pad << " h " << h << " input " << i << " window " << o);
              REQUIRE((o >= o0 && o < o1) == (i >= h0 && i < h1));
            }
          }
        }
}

TEMPLATE_TEST_CASE("pooling window functions give the CPU's results bit for bit", "[cuda-host]", float, double) {
  using T = TestType;
  for (const auto& opt : {ltl::pool2d_options{.kernel = 3, .stride = 2, .padding = 1},
                          ltl::pool2d_options{.kernel = 2}, ltl::pool2d_options{.kernel = {3, 2}, .stride = {1, 2}},
                          ltl::pool2d_options{.kernel = 4, .stride = 3, .padding = 2}}) {
    const shape s{2, 3, 9, 8};
    auto x = random_tensor<T>(s, 11);
    x.data()[17] = std::numeric_limits<T>::quiet_NaN();  // the first NaN of a window wins
    x.data()[100] = x.data()[101];                      // ties: the first maximum wins
    const auto g = ltl::make_pool2d_geometry(s, opt, "max_pool2d");
    const auto d = cuda::detail::pool_dims_of(g);  // host-side setup of the kernels, as above
    INFO("kernel " << g.kernel.h << "x" << g.kernel.w << " stride " << g.stride.h << "x" << g.stride.w);
    const auto want = ltl::cpu::max_pool2d_forward(x, opt);
    HT<T> y(g.output_shape());
    ltl::tensor<std::int64_t> idx(g.output_shape());
    const double inv_area = 1.0 / static_cast<double>(g.kernel.h * g.kernel.w);
    const index_t plane = g.ho * g.wo;
    for (index_t e = 0; e < y.numel(); ++e) {
      const index_t pl = e / plane, o = e % plane;
      y.data()[e] = kn::max_window(x.data() + pl * g.h * g.w, d, o / g.wo, o % g.wo, idx.data()[e]);
    }
    require_exact(y, want.y);
    require_exact(idx, want.indices);
    const auto xf = random_tensor<T>(s, 12);
    require_exact(
        [&] {
          HT<T> a(g.output_shape());
          for (index_t e = 0; e < a.numel(); ++e)
            a.data()[e] = kn::avg_window(xf.data() + e / plane * g.h * g.w, d, e % plane / g.wo, e % g.wo, inv_area);
          return a;
        }(),
        ltl::cpu::avg_pool2d_forward(xf, opt));
    const auto dy = random_tensor<T>(g.output_shape(), 13);
    HT<T> dx(s);
    const T inv_t = static_cast<T>(inv_area);
    for (index_t e = 0; e < dx.numel(); ++e) {
      const index_t pl = e / (g.h * g.w), i = e % (g.h * g.w);
      dx.data()[e] = kn::avg_window_grad(dy.data() + pl * plane, d, i / g.w, i % g.w, inv_t);
    }
    require_exact(dx, ltl::cpu::avg_pool2d_backward(dy, s, opt));
  }
}

// ---- indexing: index arithmetic and segment gathers against the CPU ----

TEST_CASE("index segments invert an index list in increasing order", "[cuda-host]") {
  const std::vector<std::int64_t> idx{3, 0, 3, 1, 3, 0};
  const auto s = kn::make_index_segments(idx.data(), 6, 5);
  REQUIRE(s.start == std::vector<std::int64_t>{0, 2, 3, 3, 6, 6});
  REQUIRE(s.members == std::vector<std::int64_t>{1, 5, 3, 0, 2, 4});
  const auto e = kn::make_index_segments(nullptr, 0, 2);
  REQUIRE(e.start == std::vector<std::int64_t>{0, 0, 0});
  REQUIRE(e.members.empty());
}

TEMPLATE_TEST_CASE("indexing kernels' element functions give the CPU's results bit for bit", "[cuda-host]", float,
                   double) {
  using T = TestType;
  const auto idx = labels_of({2, 0, 2, 3, 2});
  const auto segs = kn::make_index_segments(idx.data(), idx.numel(), 4);
  for (const int dim : {0, 1, 2}) {
    INFO("dim " << dim);
    shape xs{4, 4, 4};
    const auto x = random_tensor<T>(xs, 21);
    const auto want = ltl::cpu::index_select_forward(x, dim, idx);
    const auto L = kn::make_line_space(xs, dim);
    HT<T> out(want.sizes());
    for (index_t e = 0; e < out.numel(); ++e)
      out.data()[e] = x.data()[kn::index_select_source(e, idx.data(), idx.numel(), L.n, L.inner)];
    require_exact(out, want);
    const auto g = random_tensor<T>(want.sizes(), 22);
    HT<T> dx(xs);
    for (index_t e = 0; e < dx.numel(); ++e)
      dx.data()[e] = kn::index_select_grad(g.data(), segs.start.data(), segs.members.data(), e, idx.numel(), L.n,
                                           L.inner);
    require_exact(dx, ltl::cpu::index_select_backward(g, dim, idx, xs));
  }
  // lerp_mix's b gradient with a repeated permutation entry.
  const shape ms{4, 3, 2};
  const auto perm = labels_of({1, 1, 3, 0});
  const auto pseg = kn::make_index_segments(perm.data(), 4, 4);
  const auto g = random_tensor<T>(ms, 23), lambda = random_tensor<T>({4}, 24, 0, 1);
  HT<T> db(ms);
  for (index_t e = 0; e < db.numel(); ++e)
    db.data()[e] = kn::lerp_mix_grad_b(g.data(), lambda.data(), pseg.start.data(), pseg.members.data(), e, 6);
  require_exact(db, ltl::cpu::lerp_mix_backward_b(g, lambda, perm));
  // The option-A shortcut on a strided (transposed-plane) input, strides 1 and 2, odd sizes.
  for (const index_t stride : {1, 2}) {
    const auto base = random_tensor<T>({2, 3, 5, 7}, 25);
    const auto x = base.transpose(2, 3);  // [2, 3, 7, 5], not contiguous
    const auto want = ltl::cpu::shortcut_a_forward(x, 7, stride);
    const shape& st = x.strides();
    const kn::shortcut_dims d{2, 3, 7, 5, 7, want.size(2), want.size(3), stride, 2, {st[0], st[1], st[2], st[3]}};
    HT<T> out(want.sizes());
    for (index_t e = 0; e < out.numel(); ++e) {
      const index_t src = d.source(e);
      out.data()[e] = src < 0 ? T(0) : x.data()[src];
    }
    require_exact(out, want);
    const auto gy = random_tensor<T>(want.sizes(), 26);
    HT<T> dx(shape{2, 3, 7, 5});
    for (index_t e = 0; e < dx.numel(); ++e) {
      const index_t src = d.grad_source(e);
      dx.data()[e] = src < 0 ? T(0) : gy.data()[src];
    }
    require_exact(dx, ltl::cpu::shortcut_a_backward(gy, shape{2, 3, 7, 5}, stride));
  }
}

// ---- the fused loss: per-row functions against the CPU, for every policy ----

namespace {
/// A named loss configuration (the policies of SPEC §7) for C classes.
struct loss_case {
  const char* name;
  ltl::loss_terms terms;
  bool sample_weights;
};

std::vector<loss_case> loss_cases(index_t C) {
  const auto cs = static_cast<std::size_t>(C);
  std::vector<double> margins(cs), temps(cs), offs(cs), weights(cs);
  for (std::size_t c = 0; c < cs; ++c) {
    const double n_c = 1000.0 * std::pow(0.01, static_cast<double>(c) / static_cast<double>(cs - 1));  // ρ = 100
    margins[c] = 0.5 * std::pow(10.0 / n_c, 0.25);
    temps[c] = std::pow(1000.0 / n_c, 0.3);
    offs[c] = std::log(n_c / 5000.0);
    weights[c] = (1 - 0.999) / (1 - std::pow(0.999, n_c));
  }
  // Assigned field by field: loss_terms' vectors have no default member initializers, so
  // designated initializers that skip them trip -Wmissing-field-initializers.
  auto terms = [](auto set) {
    ltl::loss_terms t;
    set(t);
    return t;
  };
  std::vector<loss_case> v;
  v.push_back({"CE", {}, false});
  v.push_back({"LDAM (scale 30, margins)", terms([&](auto& t) { t.scale = 30.0, t.margins = margins; }), false});
  v.push_back({"CDT (temperatures)", terms([&](auto& t) { t.temperatures = temps; }), false});
  v.push_back({"logit adjustment (offsets)", terms([&](auto& t) { t.offsets = offs; }), false});
  v.push_back({"class-balanced weights", terms([&](auto& t) { t.weights = weights; }), false});
  v.push_back({"focal 2", terms([&](auto& t) { t.focal = 2.0; }), false});
  v.push_back({"per-sample weights (mixup)", {}, true});
  v.push_back({"everything at once", terms([&](auto& t) {
                 t.scale = 2.0, t.margins = margins, t.temperatures = temps, t.offsets = offs, t.weights = weights;
                 t.focal = 1.5;
               }),
               true});
  return v;
}

/// The loss kernels' row functions on the host: one thread per row (per_block false) or the
/// block-per-row split with block_size threads and the fixed trees (per_block true).
template <class T>
double host_fused_loss(const HT<T>& z, const labels_h& y, const ltl::loss_terms& t, HT<T>& dz, HT<T>& rows,
                       const HT<T>* sw, bool per_block) {
  const index_t B = z.size(0), C = z.size(1);
  const auto cs = static_cast<std::size_t>(C);
  std::vector<double> mult(cs, t.scale);
  if (!t.temperatures.empty())
    for (std::size_t c = 0; c < cs; ++c) mult[c] = t.scale / t.temperatures[c];
  double wsum = 0;
  for (index_t i = 0; i < B; ++i) wsum += t.weights.empty() ? 1.0 : t.weights[static_cast<std::size_t>(y.data()[i])];
  std::vector<double> acc(static_cast<std::size_t>(B));
  auto opt_ptr = [](const std::vector<double>& v) { return v.empty() ? nullptr : v.data(); };
  const kn::loss_args<T> a{z.data(), y.data(), sw ? sw->data() : nullptr, mult.data(), opt_ptr(t.offsets),
                           opt_ptr(t.margins), opt_ptr(t.weights), dz.data(), rows.data(), acc.data(), B, C, t.focal,
                           1.0 / wsum};
  for (index_t i = 0; i < B; ++i) {
    if (!per_block) {
      kn::loss_row(a, i);
      continue;
    }
    const T* row = z.data() + i * C;
    const auto yi = static_cast<index_t>(y.data()[i]);
    double mx[kn::block_size], se[kn::block_size] = {};
    for (index_t th = 0; th < kn::block_size; ++th) {
      mx[th] = -INFINITY;
      for (index_t c = th; c < C; c += kn::block_size) mx[th] = kn::max_of(mx[th], kn::adjusted_logit(a, row, c, yi));
    }
    for (int w = kn::block_size / 2; w > 0; w /= 2)
      for (int th = 0; th < w; ++th) mx[th] = kn::max_of(mx[th], mx[th + w]);
    for (index_t th = 0; th < kn::block_size; ++th)
      for (index_t c = th; c < C; c += kn::block_size) se[th] += kn::exp_of(kn::adjusted_logit(a, row, c, yi) - mx[0]);
    const double total = kn::tree_sum_host(se);
    for (index_t th = 0; th < kn::block_size; ++th) kn::loss_row_finish(a, i, mx[0], total, th, kn::block_size);
  }
  return kn::sum_fixed_order_host(acc.data(), B) * a.inv_wsum;
}
}  // namespace

TEMPLATE_TEST_CASE("the fused loss's row functions give the CPU's loss for every policy", "[cuda-host]", float,
                   double) {
  using T = TestType;
  for (const index_t C : {index_t{10}, index_t{300}}) {
    const index_t B = 33;
    const auto z = random_tensor<T>({B, C}, 31, -3, 3);
    std::vector<std::int64_t> yv;
    ltl::rng r(32);
    for (index_t i = 0; i < B; ++i) yv.push_back(static_cast<std::int64_t>(r() % static_cast<std::uint64_t>(C)));
    const auto y = labels_of(yv);
    const auto sw = random_tensor<T>({B}, 33, 0, 1);
    for (const auto& lc : loss_cases(C)) {
      INFO(lc.name << ", C = " << C);
      HT<T> dz_c(z.sizes()), rows_c(shape{B});
      const double want = ltl::cpu::fused_loss(z, y, lc.terms, &dz_c, &rows_c, lc.sample_weights ? &sw : nullptr);
      for (const bool per_block : {false, true}) {
        INFO((per_block ? "block per row" : "thread per row"));
        HT<T> dz(z.sizes()), rows(shape{B});
        const double got = host_fused_loss(z, y, lc.terms, dz, rows, lc.sample_weights ? &sw : nullptr, per_block);
        REQUIRE(got == Approx(want).epsilon(1e-13));
        if (per_block) {  // Σ exp in another order
          require_close_max(dz, dz_c, tol<T>(1e-6, 1e-13));
          require_close_max(rows, rows_c, tol<T>(1e-6, 1e-13));
        } else {  // the CPU's row loop itself
          require_exact(dz, dz_c);
          require_exact(rows, rows_c);
        }
      }
    }
  }
}

TEST_CASE("sum_fixed_order's host twin is a plain sum up to rounding", "[cuda-host]") {
  std::vector<double> v(1000);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = 1.0 / static_cast<double>(i + 1);
  double plain = 0;
  for (double x : v) plain += x;
  REQUIRE(kn::sum_fixed_order_host(v.data(), 1000) == Approx(plain).epsilon(1e-14));
  REQUIRE(kn::sum_fixed_order_host(v.data(), 3) == 1.0 + 0.5 + 1.0 / 3.0);
}

// ---- SGD ----

TEMPLATE_TEST_CASE("sgd_element gives the CPU's update", "[cuda-host]", float, double) {
  using T = TestType;
  using step = ltl::sgd_step<T>;
  for (const step s : {step{T(0.1), T(0), T(0), T(1), false, false}, step{T(0.1), T(0.9), T(5e-4), T(1), false, true},
                       step{T(0.1), T(0.9), T(5e-4), T(1), false, false}, step{T(0.05), T(0.9), T(1e-4), T(1), true, false},
                       step{T(0.1), T(0.5), T(0), T(0.7), false, false}}) {
    INFO("momentum " << s.momentum << " nesterov " << s.nesterov << " first " << s.first);
    auto w_c = random_tensor<T>({50}, 41), b_c = random_tensor<T>({50}, 42);
    const auto g = random_tensor<T>({50}, 43);
    auto w_h = w_c.clone(), b_h = b_c.clone();
    HT<T> none;
    HT<T>& buf = s.momentum != T(0) ? b_c : none;
    ltl::cpu::sgd_update(w_c, g, buf, s);
    for (index_t i = 0; i < 50; ++i) kn::sgd_element(w_h.data(), g.data(), s.momentum != T(0) ? b_h.data() : nullptr, s, i);
    require_close_max(w_h, w_c, tol<T>(3e-7, 1e-15));
    require_close_max(b_h, b_c, tol<T>(3e-7, 1e-15));
  }
}

// ---- argument checks: each op rejects bad shapes before it touches the device ----

TEST_CASE("kernel argument checks run before any launch (empty and mis-shaped device tensors)", "[cuda-host]") {
  using ltl::shape_error;
  using ltl::value_error;
  using D = DT<float>;
  using DL = ltl::tensor<std::int64_t, gpu>;
  // Zero-element tensors own no device memory: none of this needs a GPU. (A tensor with
  // elements would: the mis-shaped operands below are therefore all empty.)
  const D a(shape{0, 3}), b(shape{0, 4});
  // softmax family
  REQUIRE(softmax_forward(a, 1).sizes() == shape{0, 3});
  REQUIRE(log_softmax_forward(a, -1).sizes() == shape{0, 3});
  ltl_test::require_error<shape_error>([&] { (void)softmax_forward(a, 2); }, {"softmax", "dimension 2"});
  ltl_test::require_error<shape_error>([&] { (void)softmax_backward(a, b, 1); }, {"softmax_backward", "[0, 4]"});
  ltl_test::require_error<shape_error>([&] { (void)log_softmax_backward(a, b, 1); }, {"log_softmax_backward"});
  const auto [ny, nn] = l2_normalize_forward(a, 1, 1e-12f);
  REQUIRE((ny.sizes() == shape{0, 3} && nn.sizes() == shape{0, 1}));
  ltl_test::require_error<shape_error>([&] { (void)l2_normalize_backward(a, b, nn, 1, 1e-12f); },
                                       {"l2_normalize_backward"});
  ltl_test::require_error<shape_error>([&] { (void)l2_normalize_backward(D(shape{3, 0}), D(shape{3, 0}), D(shape{2, 0}), 1, 1e-12f); },
                                       {"l2_normalize_backward", "norms"});
  // batch norm (zero channels, so that the [C] tensors own no memory either)
  D none, rm(shape{0}), rv(shape{0}), x4(shape{2, 0, 2, 2});
  REQUIRE(batch_norm2d_forward(x4, none, none, rm, rv, ltl::batch_norm_options{}, none).y.sizes() == x4.sizes());
  ltl_test::require_error<shape_error>(
      [&] { (void)batch_norm2d_forward(D(shape{0, 3, 2}), none, none, rm, rv, ltl::batch_norm_options{}, none); },
      {"batch_norm2d", "[N, C, H, W]"});
  ltl_test::require_error<shape_error>(
      [&] { (void)batch_norm2d_forward(x4, D(shape{0, 1}), none, rm, rv, ltl::batch_norm_options{}, none); },
      {"batch_norm2d", "weight"});
  ltl_test::require_error<value_error>(
      [&] { (void)batch_norm2d_forward(x4, none, none, none, none, ltl::batch_norm_options{}, none); },
      {"batch_norm2d", "evaluation mode"});
  ltl_test::require_error<value_error>(
      [&] { (void)batch_norm2d_forward(D(shape{1, 0, 1, 1}), none, none, rm, rv, ltl::batch_norm_options{.training = true}, none); },
      {"batch_norm2d", "more than one value"});
  ltl_test::require_error<shape_error>(
      [&] { (void)batch_norm2d_forward(x4, none, none, rm, rv, ltl::batch_norm_options{}, D(shape{2, 0, 2, 1})); },
      {"batch_norm2d", "residual"});
  ltl_test::require_error<shape_error>(
      [&] { (void)batch_norm2d_backward(x4, D(shape{2, 0, 2, 1}), none, rm, rv, true, {true, true, true}); },
      {"batch_norm2d_backward"});
  ltl_test::require_error<shape_error>(
      [&] { (void)batch_norm2d_backward(x4, x4, none, rm, D(shape{1, 0}), true, {true, true, true}); },
      {"batch_norm2d_backward", "invstd"});
  ltl_test::require_error<shape_error>(
      [&] { (void)batch_norm2d_backward(x4, x4, none, rm, rv, true, {true, true, true}, D(shape{2, 0, 1, 2})); },
      {"batch_norm2d_backward", "ReLU output"});
  // pooling
  const D p4(shape{0, 3, 2, 2});
  REQUIRE(max_pool2d_forward(p4, {.kernel = 2}).y.sizes() == shape{0, 3, 1, 1});
  REQUIRE(avg_pool2d_forward(p4, {.kernel = 2}).sizes() == shape{0, 3, 1, 1});
  ltl_test::require_error<shape_error>([&] { (void)max_pool2d_forward(p4, {.kernel = 2, .padding = 2}); },
                                       {"max_pool2d", "padding"});
  ltl_test::require_error<shape_error>([&] { (void)avg_pool2d_forward(a, {.kernel = 2}); }, {"avg_pool2d"});
  ltl_test::require_error<shape_error>(
      [&] { (void)max_pool2d_backward(D(shape{0, 3, 1, 1}), DL(shape{0, 3, 1, 2}), shape{0, 3, 2, 2}); },
      {"max_pool2d_backward"});
  ltl_test::require_error<shape_error>(
      [&] { (void)avg_pool2d_backward(D(shape{0, 3, 2, 1}), shape{0, 3, 2, 2}, {.kernel = 2}); },
      {"avg_pool2d_backward"});
  REQUIRE(global_avg_pool_forward(p4).sizes() == shape{0, 3});
  ltl_test::require_error<shape_error>([&] { (void)global_avg_pool_forward(D(shape{0, 3, 0, 2})); },
                                       {"global_avg_pool"});
  ltl_test::require_error<shape_error>([&] { (void)global_avg_pool_backward(D(shape{0, 4}), shape{0, 3, 2, 2}); },
                                       {"global_avg_pool_backward"});
  // indexing
  const DL none_idx(shape{0}), idx2(shape{0, 1});
  REQUIRE(index_select_forward(a, 0, none_idx).sizes() == shape{0, 3});
  ltl_test::require_error<shape_error>([&] { (void)index_select_forward(a, 0, idx2); }, {"index_select", "1-D"});
  ltl_test::require_error<shape_error>([&] { (void)index_select_backward(b, 1, none_idx, shape{0, 3}); },
                                       {"index_select_backward"});
  ltl_test::require_error<shape_error>([&] { (void)gather_forward(D(shape{2, 0}), none_idx); }, {"gather"});
  ltl_test::require_error<shape_error>([&] { (void)gather_backward(D(shape{0}), idx2, 3); },
                                       {"gather_backward"});
  REQUIRE(gather_backward(D(shape{0}), none_idx, 3).sizes() == shape{0, 3});
  D oh(shape{0, 3});
  REQUIRE_NOTHROW(one_hot_into(oh, none_idx));
  ltl_test::require_error<shape_error>([&] { one_hot_into(oh, idx2); }, {"one_hot"});
  ltl_test::require_error<shape_error>([&] { (void)lerp_mix_forward(a, b, D(shape{0}), none_idx); }, {"lerp_mix"});
  REQUIRE(lerp_mix_forward(a, a, D(shape{0}), none_idx).sizes() == shape{0, 3});
  ltl_test::require_error<shape_error>([&] { (void)lerp_mix_backward_a(a, D(shape{0, 1})); }, {"lerp_mix_backward"});
  ltl_test::require_error<shape_error>([&] { (void)lerp_mix_backward_b(a, D(shape{0}), idx2); },
                                       {"lerp_mix_backward"});
  REQUIRE(shortcut_a_forward(D(shape{0, 16, 8, 8}), 32, 2).sizes() == shape{0, 32, 4, 4});
  ltl_test::require_error<shape_error>([&] { (void)shortcut_a_forward(D(shape{0, 16, 8, 8}), 31, 2); },
                                       {"shortcut_a", "31 channels"});
  ltl_test::require_error<shape_error>([&] { (void)shortcut_a_backward(D(shape{0, 32, 3, 4}), shape{0, 16, 8, 8}, 2); },
                                       {"shortcut_a_backward"});
  REQUIRE(shortcut_a_backward(D(shape{0, 32, 4, 4}), shape{0, 16, 8, 8}, 2).sizes() == shape{0, 16, 8, 8});
  // the fused loss
  const ltl::loss_terms ce;
  ltl_test::require_error<shape_error>([&] { (void)fused_loss(D(shape{0}), none_idx, ce, static_cast<D*>(nullptr)); },
                                       {"fused_loss", "[B, C]"});
  ltl_test::require_error<shape_error>([&] { (void)fused_loss(a, DL(shape{2, 0}), ce, static_cast<D*>(nullptr)); },
                                       {"fused_loss", "labels"});
  ltl_test::require_error<shape_error>([&] { (void)fused_loss(a, none_idx, ce, static_cast<D*>(nullptr)); }, {"fused_loss", "empty"});
  // the SGD update
  D w(shape{0, 3}), m(shape{0, 3});
  const ltl::sgd_step<float> st{0.1f, 0.9f, 0.f, 1.f, false, false};
  REQUIRE_NOTHROW(sgd_update(w, a, m, st));
  ltl_test::require_error<shape_error>([&] { sgd_update(w, b, m, st); }, {"sgd_update", "gradient"});
  D m_bad(shape{3, 0});
  ltl_test::require_error<shape_error>([&] { sgd_update(w, a, m_bad, st); }, {"sgd_update", "momentum buffer"});
}

// ================================ needs a GPU ([cuda]) ================================

TEMPLATE_TEST_CASE("softmax family on the device matches the CPU, bit-reproducibly", "[cuda]", float, double) {
  LTL_REQUIRE_GPU();
  using T = TestType;
  const double t = tol<T>(1e-6, 1e-13);
  // Short lines (one thread each), long lines (one block each), inner > 1, a transposed input.
  for (const auto& [s, dim] : std::vector<std::pair<shape, int>>{
           {{5, 37}, 1}, {{3, 1000}, 1}, {{4, 6, 5}, 1}, {{300, 4}, 0}, {{2, 3}, 0}}) {
    INFO("shape " << fmt::format("{}", s) << ", dim " << dim);
    const auto x = random_tensor<T>(s, 51, -5, 5), g = random_tensor<T>(s, 52);
    const auto dx_ = x.template to<gpu>(), dg = g.template to<gpu>();
    const auto y = ltl::cpu::softmax_forward(x, dim), ly = ltl::cpu::log_softmax_forward(x, dim);
    require_close_max(twice([&] { return softmax_forward(dx_, dim); }), y, t);
    require_close_max(twice([&] { return log_softmax_forward(dx_, dim); }), ly, t);
    const auto dy = y.template to<gpu>(), dly = ly.template to<gpu>();
    require_close_max(twice([&] { return softmax_backward(dg, dy, dim); }), ltl::cpu::softmax_backward(g, y, dim), t);
    require_close_max(twice([&] { return log_softmax_backward(dg, dly, dim); }),
                      ltl::cpu::log_softmax_backward(g, ly, dim), t);
    for (const T eps : {T(1e-12), T(4)}) {  // the second clamps some lines
      const auto [hy, hn] = ltl::cpu::l2_normalize_forward(x, dim, eps);
      const auto got = l2_normalize_forward(dx_, dim, eps);
      require_close_max(got.first, hy, t);
      require_close_max(got.second, hn, t);
      require_exact(l2_normalize_forward(dx_, dim, eps).first, got.first);
      require_close_max(twice([&] { return l2_normalize_backward(dg, hy.template to<gpu>(), hn.template to<gpu>(), dim, eps); }),
                        ltl::cpu::l2_normalize_backward(g, hy, hn, dim, eps), t);
    }
    // A non-contiguous input is made contiguous first.
    if (s.size() == 2) require_close_max(softmax_forward(dx_.t(), 0), ltl::cpu::softmax_forward(x.t(), 0), t);
  }
}

TEMPLATE_TEST_CASE("batch norm on the device matches the CPU, bit-reproducibly", "[cuda]", float, double) {
  LTL_REQUIRE_GPU();
  using T = TestType;
  const double t = tol<T>(1e-5, 1e-12);
  for (const shape& s : {shape{4, 3, 5, 5}, shape{16, 4, 32, 32}, shape{3, 2, 1, 1}}) {
    const auto x = random_tensor<T>(s, 61, -1, 3), res = random_tensor<T>(s, 62), dy = random_tensor<T>(s, 63);
    const auto w = random_tensor<T>({s[1]}, 64, 0.5, 1.5), b = random_tensor<T>({s[1]}, 65);
    const auto gx = x.template to<gpu>(), gres = res.template to<gpu>(), gdy = dy.template to<gpu>();
    const auto gw = w.template to<gpu>(), gb = b.template to<gpu>();
    for (const bool training : {true, false})
      for (const bool fused : {false, true}) {
        INFO("shape " << fmt::format("{}", s) << (training ? " training" : " eval") << (fused ? " residual+relu" : ""));
        const ltl::batch_norm_options opt{.training = training, .relu = fused};
        auto rm = random_tensor<T>({s[1]}, 66), rv = random_tensor<T>({s[1]}, 67, 0.5, 2);
        auto grm = rm.template to<gpu>(), grv = rv.template to<gpu>();
        auto grm2 = grm.clone(), grv2 = grv.clone();
        const auto want = ltl::cpu::batch_norm2d_forward(x, w, b, rm, rv, opt, fused ? res : HT<T>());
        const DT<T> gr = fused ? gres : DT<T>();
        const auto got = batch_norm2d_forward(gx, gw, gb, grm, grv, opt, gr);
        const auto again = batch_norm2d_forward(gx, gw, gb, grm2, grv2, opt, gr);
        require_close_max(got.y, want.y, t);
        require_close_max(got.mean, want.mean, t);
        require_close_max(got.invstd, want.invstd, t);
        require_close_max(grm, rm, t);
        require_close_max(grv, rv, t);
        require_exact(again.y, got.y);
        require_exact(grm2, grm);
        require_exact(grv2, grv);
        const HT<T> yr = fused ? want.y : HT<T>();
        const DT<T> gyr = fused ? want.y.template to<gpu>() : DT<T>();
        for (const std::array<bool, 3> need : {std::array<bool, 3>{true, true, true}, {true, false, false},
                                               {false, true, true}}) {
          const auto wb = ltl::cpu::batch_norm2d_backward(dy, x, w, want.mean, want.invstd, training, need, yr, true);
          const auto gm = want.mean.template to<gpu>(), gi = want.invstd.template to<gpu>();
          const auto gb1 = batch_norm2d_backward(gdy, gx, gw, gm, gi, training, need, gyr, true);
          const auto gb2 = batch_norm2d_backward(gdy, gx, gw, gm, gi, training, need, gyr, true);
          if (need[0]) {
            require_close_max(gb1.dx, wb.dx, t);
            require_exact(gb2.dx, gb1.dx);
          }
          if (need[1]) {
            require_close_max(gb1.dweight, wb.dweight, t);
            require_exact(gb2.dweight, gb1.dweight);
          }
          if (need[2]) {
            require_close_max(gb1.dbias, wb.dbias, t);
            require_exact(gb2.dbias, gb1.dbias);
          }
          require_exact(gb1.dmasked, wb.dmasked);
        }
      }
  }
}

TEMPLATE_TEST_CASE("pooling on the device matches the CPU, bit-reproducibly", "[cuda]", float, double) {
  LTL_REQUIRE_GPU();
  using T = TestType;
  const shape s{2, 3, 11, 9};
  const auto x = random_tensor<T>(s, 71);
  const auto gx = x.template to<gpu>();
  for (const auto& opt : {ltl::pool2d_options{.kernel = 3, .stride = 2, .padding = 1}, ltl::pool2d_options{.kernel = 2},
                          ltl::pool2d_options{.kernel = {3, 2}, .stride = {1, 2}}}) {
    const auto want = ltl::cpu::max_pool2d_forward(x, opt);
    const auto got = max_pool2d_forward(gx, opt);
    require_exact(got.y, want.y);
    require_exact(got.indices, want.indices);
    const auto dy = random_tensor<T>(want.y.sizes(), 72);
    const auto gdy = dy.template to<gpu>();
    require_exact(twice([&] { return max_pool2d_backward(gdy, got.indices, s); }),
                  ltl::cpu::max_pool2d_backward(dy, want.indices, s));
    require_exact(twice([&] { return avg_pool2d_forward(gx, opt); }), ltl::cpu::avg_pool2d_forward(x, opt));
    require_exact(twice([&] { return avg_pool2d_backward(gdy, s, opt); }), ltl::cpu::avg_pool2d_backward(dy, s, opt));
  }
  for (const shape& gs : {s, shape{2, 3, 20, 20}}) {  // thread per plane; block per plane (HW ≥ 256)
    const auto xg = random_tensor<T>(gs, 73);
    require_close_max(twice([&] { return global_avg_pool_forward(xg.template to<gpu>()); }),
                      ltl::cpu::global_avg_pool_forward(xg), tol<T>(1e-6, 1e-14));
    const auto dy = random_tensor<T>({2, 3}, 74);
    require_exact(twice([&] { return global_avg_pool_backward(dy.template to<gpu>(), gs); }),
                  ltl::cpu::global_avg_pool_backward(dy, gs));
  }
}

TEMPLATE_TEST_CASE("indexing kernels on the device match the CPU, bit-reproducibly", "[cuda]", float, double) {
  LTL_REQUIRE_GPU();
  using T = TestType;
  const auto x = random_tensor<T>({5, 4, 3}, 81);
  const auto gx = x.template to<gpu>();
  // Along dim 0 (rows of 12), with repeated indices; along dim 1 (inner 3).
  const auto idx = labels_of({4, 0, 4, 2, 4, 1});
  const auto gidx = idx.template to<gpu>();
  require_exact(twice([&] { return index_select_forward(gx, 0, gidx); }), ltl::cpu::index_select_forward(x, 0, idx));
  const auto g0 = random_tensor<T>({6, 4, 3}, 82);
  require_exact(twice([&] { return index_select_backward(g0.template to<gpu>(), 0, gidx, x.sizes()); }),
                ltl::cpu::index_select_backward(g0, 0, idx, x.sizes()));
  const auto i1 = labels_of({2, 0, 2});
  const auto gi1 = i1.template to<gpu>();
  require_exact(twice([&] { return index_select_forward(gx, 1, gi1); }), ltl::cpu::index_select_forward(x, 1, i1));
  const auto g1 = random_tensor<T>({5, 3, 3}, 83);
  require_exact(twice([&] { return index_select_backward(g1.template to<gpu>(), 1, gi1, x.sizes()); }),
                ltl::cpu::index_select_backward(g1, 1, i1, x.sizes()));
  ltl_test::require_error<ltl::value_error>(
      [&] { (void)index_select_forward(gx, 1, labels_of({0, 4}).template to<gpu>()); },
      {"index_select", "index 4 at position 1", "[0, 4)"});
  // gather / one-hot with labels of a [6, 5] matrix, a strided (transposed) x.
  const auto m = random_tensor<T>({5, 6}, 80);
  const auto lab = labels_of({0, 4, 4, 1, 3, 2});
  const auto glab = lab.template to<gpu>();
  require_exact(twice([&] { return gather_forward(m.template to<gpu>().t(), glab); }), ltl::cpu::gather_forward(m.t(), lab));
  const auto gg = random_tensor<T>({6}, 84);
  require_exact(twice([&] { return gather_backward(gg.template to<gpu>(), glab, 5); }), ltl::cpu::gather_backward(gg, lab, 5));
  HT<T> oh(shape{6, 5});
  DT<T> goh(shape{6, 5});
  ltl::cpu::one_hot_into(oh, lab);
  one_hot_into(goh, glab);
  require_exact(goh, oh);
  DT<T> goh2(shape{6, 5});
  one_hot_into(goh2, glab);
  require_exact(goh2, goh);
  ltl_test::require_error<ltl::value_error>([&] { one_hot_into(goh, labels_of({0, 1, 2, 3, 5, -1}).template to<gpu>()); },
                                            {"one_hot", "label 5 at position 4"});
  // lerp_mix with a repeated permutation entry.
  const auto a = random_tensor<T>({4, 3, 2}, 85), b = random_tensor<T>({4, 3, 2}, 86);
  const auto lambda = random_tensor<T>({4}, 87, 0, 1);
  const auto perm = labels_of({1, 1, 3, 0});
  const auto ga = a.template to<gpu>(), gb = b.template to<gpu>(), gl = lambda.template to<gpu>();
  const auto gp = perm.template to<gpu>();
  require_close_max(twice([&] { return lerp_mix_forward(ga, gb, gl, gp); }), ltl::cpu::lerp_mix_forward(a, b, lambda, perm),
                    tol<T>(3e-7, 1e-15));
  const auto g = random_tensor<T>({4, 3, 2}, 88);
  const auto dg = g.template to<gpu>();
  require_close_max(twice([&] { return lerp_mix_backward_a(dg, gl); }), ltl::cpu::lerp_mix_backward_a(g, lambda),
                    tol<T>(3e-7, 1e-15));
  // λ_i·g_i sums: the device rounds each product apart; the CPU's compiler may fuse them.
  require_close_max(twice([&] { return lerp_mix_backward_b(dg, gl, gp); }), ltl::cpu::lerp_mix_backward_b(g, lambda, perm),
                    tol<T>(3e-7, 1e-15));
  ltl_test::require_error<ltl::value_error>([&] { (void)lerp_mix_forward(ga, gb, gl, labels_of({0, 1, 2, 4}).template to<gpu>()); },
                                            {"lerp_mix", "perm entry 4"});
  // The option-A shortcut, from a strided input.
  const auto base = random_tensor<T>({2, 3, 5, 7}, 89);
  const auto xs = base.transpose(2, 3);
  const auto gxs = base.template to<gpu>().transpose(2, 3);
  for (const index_t stride : {1, 2}) {
    const auto want = ltl::cpu::shortcut_a_forward(xs, 7, stride);
    require_exact(twice([&] { return shortcut_a_forward(gxs, 7, stride); }), want);
    const auto gy = random_tensor<T>(want.sizes(), 90);
    require_exact(twice([&] { return shortcut_a_backward(gy.template to<gpu>(), xs.sizes(), stride); }),
                  ltl::cpu::shortcut_a_backward(gy, xs.sizes(), stride));
  }
}

TEMPLATE_TEST_CASE("the fused loss on the device matches the CPU for every policy, bit-reproducibly", "[cuda]", float,
                   double) {
  LTL_REQUIRE_GPU();
  using T = TestType;
  const double t = tol<T>(1e-6, 1e-13);
  for (const index_t C : {index_t{10}, index_t{300}, index_t{8142}}) {  // thread per row; block per row
    const index_t B = C > 1000 ? 64 : 33;
    const auto z = random_tensor<T>({B, C}, 91, -3, 3);
    std::vector<std::int64_t> yv;
    ltl::rng r(92);
    for (index_t i = 0; i < B; ++i) yv.push_back(static_cast<std::int64_t>(r() % static_cast<std::uint64_t>(C)));
    const auto y = labels_of(yv);
    const auto sw = random_tensor<T>({B}, 93, 0, 1);
    const auto gz = z.template to<gpu>(), gsw = sw.template to<gpu>();
    const auto gy = y.template to<gpu>();
    for (const auto& lc : loss_cases(C)) {
      INFO(lc.name << ", C = " << C);
      HT<T> dz(z.sizes()), rows(shape{B});
      const double want = ltl::cpu::fused_loss(z, y, lc.terms, &dz, &rows, lc.sample_weights ? &sw : nullptr);
      DT<T> gdz(z.sizes()), grows(shape{B}), gdz2(z.sizes()), grows2(shape{B});
      const double got = fused_loss(gz, gy, lc.terms, &gdz, &grows, lc.sample_weights ? &gsw : nullptr);
      const double got2 = fused_loss(gz, gy, lc.terms, &gdz2, &grows2, lc.sample_weights ? &gsw : nullptr);
      REQUIRE(got == Approx(want).epsilon(1e-12));
      require_close_max(gdz, dz, t);
      require_close_max(grows, rows, t);
      REQUIRE(std::memcmp(&got, &got2, sizeof got) == 0);
      require_exact(gdz2, gdz);
      require_exact(grows2, grows);
      // Without the gradient and per-row outputs: the same value.
      const double value_only = fused_loss(gz, gy, lc.terms, static_cast<DT<T>*>(nullptr), static_cast<DT<T>*>(nullptr), lc.sample_weights ? &gsw : nullptr);
      REQUIRE(std::memcmp(&value_only, &got, sizeof got) == 0);
    }
  }
  const auto z = random_tensor<T>({3, 4}, 94).template to<gpu>();
  ltl_test::require_error<ltl::value_error>(
      [&] { (void)fused_loss(z, labels_of({0, 4, 1}).template to<gpu>(), ltl::loss_terms{}, static_cast<DT<T>*>(nullptr)); },
      {"fused_loss", "label 4 at position 1"});
  ltl_test::require_error<ltl::shape_error>(
      [&] {
        ltl::loss_terms bad;
        bad.margins = {1, 2};
        (void)fused_loss(z, labels_of({0, 3, 1}).template to<gpu>(), bad, static_cast<DT<T>*>(nullptr));
      },
      {"fused_loss", "margins has 2 entries"});
}

TEMPLATE_TEST_CASE("argmax_matches on the device counts the CPU's hits, NaN, infinities and ties included", "[cuda]",
                   float, double) {
  LTL_REQUIRE_GPU();
  using T = TestType;
  const T nan = std::numeric_limits<T>::quiet_NaN(), inf = std::numeric_limits<T>::infinity();
  for (const index_t C : {1, 3, 257, 8142}) {
    INFO("C = " << C);
    const index_t B = 37;
    auto z = random_tensor<T>({B, C}, 111);
    T* p = z.data();
    auto row = [&](index_t r) { return p + r * C; };
    std::fill(row(0), row(0) + C, T(0.5));  // all equal: the first
    row(1)[0] = nan;                          // NaN first: it stays
    if (C > 2) {
      row(2)[1] = nan;  // NaN inside: skipped, the largest of the rest wins
      row(2)[C - 1] = T(9);
      std::fill(row(3), row(3) + C, nan);  // all NaN: the first
      std::fill(row(4), row(4) + C, -inf);  // all −∞: the first
      row(5)[C / 2] = T(7), row(5)[C - 1] = T(7);  // a tie for the largest: the first of the two
      std::fill(row(6), row(6) + C, T(-1));
      row(6)[C - 1] = T(0), row(6)[1] = T(-0.0);  // −0 = +0: the first
      row(7)[C - 1] = inf;
    }
    // Labels: the CPU's argmax of every row (all hit), then each shifted by one (none hits when
    // C > 1), then values outside [0, C) (none hits).
    std::vector<std::int64_t> hit(static_cast<std::size_t>(B)), shifted(hit.size()), outside(hit.size());
    for (index_t r = 0; r < B; ++r) {
      hit[static_cast<std::size_t>(r)] = ltl::row_argmax(row(r), C);
      shifted[static_cast<std::size_t>(r)] = (hit[static_cast<std::size_t>(r)] + 1) % C;
      outside[static_cast<std::size_t>(r)] = r % 2 ? C : -1;
    }
    if (C > 2) {
      REQUIRE(hit[0] == 0);
      REQUIRE(hit[1] == 0);
      REQUIRE(hit[2] == C - 1);
      REQUIRE(hit[5] == C / 2);
      REQUIRE(hit[6] == 1);
    }
    const auto gz = z.template to<gpu>();
    for (const auto& [labels, want] : {std::pair{hit, B}, std::pair{shifted, C > 1 ? index_t{0} : B},
                                        std::pair{outside, index_t{0}}}) {
      const auto y = labels_of(labels);
      const auto gy = y.template to<gpu>();
      REQUIRE(ltl::cpu::argmax_matches(z, y) == want);
      REQUIRE(argmax_matches(gz, gy) == want);
      REQUIRE(argmax_matches(gz, gy) == want);  // twice: a count, exact by construction
      REQUIRE(ltl::metrics::count_correct(gz, gy) == want);  // the trainer's path reaches the kernel
    }
    // A transposed (non-contiguous) view of the same logits.
    const auto zt = z.t().contiguous().template to<gpu>();
    REQUIRE(argmax_matches(zt.t(), labels_of(hit).template to<gpu>()) == B);
  }
  // Empty batches and rows without scores.
  REQUIRE(argmax_matches(DT<T>(shape{0, 5}), DT<std::int64_t>(shape{0})) == 0);
  REQUIRE(argmax_matches(DT<T>(shape{3, 0}), labels_of({0, 1, 0}).template to<gpu>()) == 2);
  ltl_test::require_error<ltl::shape_error>(
      [&] { (void)argmax_matches(DT<T>(shape{3, 4}), labels_of({0, 1}).template to<gpu>()); },
      {"argmax_matches", "[B, C] and [B]"});
}

TEMPLATE_TEST_CASE("sgd_update on the device matches the CPU", "[cuda]", float, double) {
  LTL_REQUIRE_GPU();
  using T = TestType;
  using step = ltl::sgd_step<T>;
  for (const step s : {step{T(0.1), T(0), T(5e-4), T(1), false, false}, step{T(0.1), T(0.9), T(5e-4), T(1), false, true},
                       step{T(0.1), T(0.9), T(5e-4), T(1), false, false}, step{T(0.05), T(0.9), T(1e-4), T(1), true, false},
                       step{T(0.1), T(0.5), T(0), T(0.7), false, false}}) {
    INFO("momentum " << s.momentum << " nesterov " << s.nesterov << " first " << s.first);
    auto w = random_tensor<T>({7, 9}, 101), b = random_tensor<T>({7, 9}, 102);
    const auto g = random_tensor<T>({7, 9}, 103);
    auto gw = w.template to<gpu>(), gb = b.template to<gpu>();
    HT<T> none;
    DT<T> gnone;
    HT<T>& buf = s.momentum != T(0) ? b : none;
    DT<T>& gbuf = s.momentum != T(0) ? gb : gnone;
    // A second device run from the same starting point gives the same bits.
    auto gw2 = w.template to<gpu>(), gb2 = b.template to<gpu>();
    DT<T>& gbuf2 = s.momentum != T(0) ? gb2 : gnone;
    ltl::cpu::sgd_update(w, g, buf, s);
    sgd_update(gw, g.template to<gpu>(), gbuf, s);
    sgd_update(gw2, g.template to<gpu>(), gbuf2, s);
    require_close_max(gw, w, tol<T>(3e-7, 1e-15));
    require_close_max(gb, b, tol<T>(3e-7, 1e-15));
    require_exact(gw2, gw);
    require_exact(gb2, gb);
  }
}
