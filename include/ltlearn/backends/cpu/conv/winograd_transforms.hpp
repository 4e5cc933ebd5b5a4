#pragma once
/// \file
/// The parts every Winograd form of conv/ shares (Lavin & Gray, "Fast Algorithms for
/// Convolutional Neural Networks"): Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A per m×m output tile of a
/// stride-1, padding-1 3×3 convolution in float. F(2×2, 3×3) takes 16 products per tile and
/// channel pair instead of 36 (2.25× fewer multiplications than the direct kernels), F(4×4,
/// 3×3) 36 per 4×4 tile (4× fewer); struct tile holds both. Here: the one-dimensional
/// transforms, the kernel transform U = G g Gᵀ, and the 16 × 16 register transposes between
/// planes and vector-lane layouts. The forms: winograd_channels_last.hpp, winograd_planar.hpp,
/// winograd_sample_lane.hpp (forward and input gradient) and
/// winograd_sample_lane_weight_grad.hpp; dispatch.hpp says which serves which layer.

#include "ltlearn/backends/cpu/conv/direct3x3.hpp"
#include "ltlearn/backends/cpu/simd.hpp"

#include <algorithm>
#include <memory>
#include <type_traits>
#include <vector>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

// Full unrolling of the register-tile loops (GCC and Clang). The __CUDACC__ guards here and in
// winograd_planar.hpp stay while ltlearn/cuda.hpp includes the CPU umbrella: nvcc's front end
// then parses this host code in .cu files, and knows neither GCC's unroll pragma nor
// __builtin_shuffle.
#if defined(__GNUC__) && !defined(__CUDACC__)
#define LTL_WINOGRAD_PRAGMA(x) _Pragma(#x)
#define LTL_WINOGRAD_UNROLL(n) LTL_WINOGRAD_PRAGMA(GCC unroll n)
#else
#define LTL_WINOGRAD_UNROLL(n)
#endif

namespace ltl::detail::winograd {

using vf = simd<float>::type;
inline constexpr int lanes = simd<float>::lanes;
inline constexpr int chunk = 28;  ///< tiles per chunk: a multiple of both register tiles' P

/// Start of the i-th run of 16 in a flattened plane of `len` ≥ 16 values: runs at 0, 16, …,
/// the last moved back to end at len (it overlaps the one before; both write the same values).
inline index_t run_start(index_t i, index_t len) noexcept { return std::min(i * lanes, len - lanes); }
inline index_t run_count(index_t len) noexcept { return (len + lanes - 1) / lanes; }

/// The layout changes between planes and vector-lane forms: for each run of 16 values of a
/// flattened plane of len ≥ 16 (run_start), loads the 16 vectors src(q, p0) (q < `rows`; the
/// others are zero), transposes them in registers — vector j then holds value p0 + j of every
/// source — and hands vector j to put(j, p0, v).
template <class Src, class Put>
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
inline void transpose_runs(index_t len, index_t rows, Src src, Put put) {
  for (index_t i = 0, n = run_count(len); i < n; ++i) {
    const index_t p0 = run_start(i, len);
    vf r[lanes];
    for (int q = 0; q < lanes; ++q) r[q] = q < rows ? load(src(q, p0)) : vf{};
    transpose16(r);
    for (int j = 0; j < lanes; ++j) put(j, p0, r[j]);
  }
}

/// The one-dimensional transforms of F(m, 3) on lines of a = m + 2 values: the input's Bᵀd,
/// the output's Aᵀs and the kernel's G g. m = 2 uses the points 0, ±1, ∞ (Lavin & Gray);
/// m = 4 the points 0, ±1, ±2, ∞, with
///   Bᵀ = [[4, 0, −5, 0, 1, 0], [0, −4, −4, 1, 1, 0], [0, 4, −4, −1, 1, 0],
///         [0, −2, −1, 2, 1, 0], [0, 2, −1, −2, 1, 0], [0, 4, 0, −5, 0, 1]],
///   Aᵀ = [[1, 1, 1, 1, 1, 0], [0, 1, −1, 2, −2, 0], [0, 1, 1, 4, 4, 0], [0, 1, −1, 8, −8, 1]],
///   G  = [[¼, 0, 0], [−⅙, −⅙, −⅙], [−⅙, ⅙, −⅙], [1/24, 1/12, ⅙], [1/24, −1/12, ⅙], [0, 0, 1]].
/// The two-dimensional transforms apply them along rows, then along columns.
template <int Mt>
struct tile;

template <>
struct tile<2> {
  static constexpr int m = 2, a = 4;
  template <class V>
  static void input(const V* d, V* t) noexcept {
    t[0] = d[0] - d[2];
    t[1] = d[1] + d[2];
    t[2] = d[2] - d[1];
    t[3] = d[1] - d[3];
  }
  template <class V>
  static void output(const V* s, V* y) noexcept {
    y[0] = s[0] + s[1] + s[2];
    y[1] = s[1] - s[2] - s[3];
  }
  template <class T>
  static void kernel(const T* g, T* u) noexcept {
    u[0] = g[0];
    u[1] = T(0.5) * (g[0] + g[1] + g[2]);
    u[2] = T(0.5) * (g[0] - g[1] + g[2]);
    u[3] = g[2];
  }
  /// A δ for a line of m output gradients (the adjoint of output; the weight gradient's D).
  template <class V>
  static void output_adjoint(const V* d, V* e) noexcept {
    e[0] = d[0];
    e[1] = d[0] + d[1];
    e[2] = d[0] - d[1];
    e[3] = -d[1];
  }
  /// Gᵀ m for a line of a values (the adjoint of kernel: the weight gradient from dU).
  template <class T>
  static void kernel_adjoint(const T* m, T* g) noexcept {
    g[0] = m[0] + T(0.5) * (m[1] + m[2]);
    g[1] = T(0.5) * (m[1] - m[2]);
    g[2] = T(0.5) * (m[1] + m[2]) + m[3];
  }
};

template <>
struct tile<4> {
  static constexpr int m = 4, a = 6;
  template <class V>
  static void input(const V* d, V* t) noexcept {
    const V p = d[3] + d[4], q = d[4] - d[3], r = d[4] - d[2], s = d[3] - d[1];
    t[0] = 4.0f * d[0] - 5.0f * d[2] + d[4];
    t[1] = p - 4.0f * (d[1] + d[2]);
    t[2] = q + 4.0f * (d[1] - d[2]);
    t[3] = r + 2.0f * s;
    t[4] = r - 2.0f * s;
    t[5] = 4.0f * d[1] - 5.0f * d[3] + d[5];
  }
  template <class V>
  static void output(const V* s, V* y) noexcept {
    const V p = s[1] + s[2], q = s[1] - s[2], r = s[3] + s[4], t = s[3] - s[4];
    y[0] = s[0] + p + r;
    y[1] = q + 2.0f * t;
    y[2] = p + 4.0f * r;
    y[3] = q + 8.0f * t + s[5];
  }
  // Products with the reciprocals (constants) rather than divisions: the weight transforms run
  // once per call, serially, and divisions made them 2 % of a training step.
  template <class T>
  static void kernel(const T* g, T* u) noexcept {
    constexpr T r4 = T(1) / T(4), r6 = T(1) / T(6), r12 = T(1) / T(12), r24 = T(1) / T(24);
    u[0] = g[0] * r4;
    u[1] = -(g[0] + g[1] + g[2]) * r6;
    u[2] = -(g[0] - g[1] + g[2]) * r6;
    u[3] = g[0] * r24 + g[1] * r12 + g[2] * r6;
    u[4] = g[0] * r24 - g[1] * r12 + g[2] * r6;
    u[5] = g[2];
  }
  template <class V>
  static void output_adjoint(const V* d, V* e) noexcept {
    const V p = d[0] + d[2], q = d[1] + d[3], r = d[0] + 4.0f * d[2], s = 2.0f * d[1] + 8.0f * d[3];
    e[0] = d[0];
    e[1] = p + q;
    e[2] = p - q;
    e[3] = r + s;
    e[4] = r - s;
    e[5] = d[3];
  }
  template <class T>
  static void kernel_adjoint(const T* m, T* g) noexcept {
    constexpr T r4 = T(1) / T(4), r6 = T(1) / T(6), r12 = T(1) / T(12), r24 = T(1) / T(24);
    const T p = m[1] + m[2], q = m[2] - m[1], r = m[3] + m[4], t = m[3] - m[4];
    g[0] = m[0] * r4 - p * r6 + r * r24;
    g[1] = q * r6 + t * r12;
    g[2] = (r - p) * r6 + m[5];
  }
};

/// The second half of a separable two-dimensional transform: column j of e (R lines already
/// transformed along the row, A values each) through `line` (R values in, A out), stored for
/// ξ = i·A + j at o + ξ·step.
template <int R, int A, class Line>
inline void columns_to_xi(const vf (&e)[R][A], float* o, index_t step, Line line) noexcept {
  LTL_WINOGRAD_UNROLL(6)
  for (int j = 0; j < A; ++j) {
    vf col[R], out[A];
    LTL_WINOGRAD_UNROLL(6)
    for (int i = 0; i < R; ++i) col[i] = e[i][j];
    line(col, out);
    LTL_WINOGRAD_UNROLL(6)
    for (int i = 0; i < A; ++i) store(o + (i * A + j) * step, out[i]);
  }
}

/// U[ξ][c][k] = (G g Gᵀ)[ξ] (ξ over the a × a transformed tile) for the 3×3 kernel g of (input
/// c, output k). Forward: weight [K, C, 3, 3]; `adjoint` (input gradient): weight
/// [C_out = C, K, 3, 3]-shaped as [a, b, 3, 3] with a = C and b = K, kernel rotated by 180°.
/// F(2×2) in float (as measured and tested since it was written), F(4×4) in double — its
/// fractions are not exact in float.
/// This writes the rows of input channels [c_begin, c_end) into U (A²·C·K floats).
template <int Mt = 2>
inline void transform_weights_into(const float* weight, index_t a, index_t b, bool adjoint, float* U, index_t c_begin,
                                   index_t c_end) {
  using T = std::conditional_t<Mt == 2, float, double>;
  constexpr int A = tile<Mt>::a, KB = 16;
  const index_t K = adjoint ? b : a, C = adjoint ? a : b;
  // Blocks of KB output channels through a local buffer: U's A² rows for one (c, k) lie C·K
  // floats apart (a multiple of 4 KiB for 64 channels), and storing them one (c, k) at a time
  // evicted L1 lines on every store (64→64: 450 µs, blocked: ~10× less).
  for (index_t c = c_begin; c < c_end; ++c)
    for (index_t k0 = 0; k0 < K; k0 += KB) {
      const index_t kn = std::min<index_t>(KB, K - k0);
      float blk[A * A][KB];
      for (index_t kk = 0; kk < kn; ++kk) {
        T g[3][3], r[3][A], col[3], u[A];
        for (int t = 0; t < 9; ++t) g[t / 3][t % 3] = direct3x3::kernel_tap(weight, b, k0 + kk, c, t, adjoint);
        for (int j = 0; j < 3; ++j) {  // G g, column by column
          for (int i = 0; i < 3; ++i) col[i] = g[i][j];
          tile<Mt>::kernel(col, u);
          for (int i = 0; i < A; ++i) r[j][i] = u[i];
        }
        for (int i = 0; i < A; ++i) {  // (G g) Gᵀ, row by row
          const T row[3] = {r[0][i], r[1][i], r[2][i]};
          tile<Mt>::kernel(row, u);
          for (int j = 0; j < A; ++j) blk[i * A + j][kk] = static_cast<float>(u[j]);
        }
      }
      for (int xi = 0; xi < A * A; ++xi)
        std::copy_n(blk[xi], kn, U + (static_cast<index_t>(xi) * C + c) * K + k0);
    }
}

/// All of U, split over input channels by `for_each_chunk` (f(thread, begin, end) over a
/// range, as the run_* functions take it); U is left uninitialised before, so no zeroing.
template <int Mt = 2, class ForEachChunk>
inline std::unique_ptr<float[]> transform_weights(const float* weight, index_t a, index_t b, bool adjoint,
                                                  ForEachChunk&& for_each_chunk) {
  constexpr index_t A = tile<Mt>::a;
  const index_t C = adjoint ? a : b;
  std::unique_ptr<float[]> U(new float[static_cast<std::size_t>(A * A * a * b)]);
  for_each_chunk(C, [&](int, index_t c0, index_t c1) {
    transform_weights_into<Mt>(weight, a, b, adjoint, U.get(), c0, c1);
  });
  return U;
}

}  // namespace ltl::detail::winograd

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
