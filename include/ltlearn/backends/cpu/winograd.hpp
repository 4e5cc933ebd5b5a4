#pragma once
/// \file
/// Winograd F(2×2, 3×3) for stride-1, padding-1 3×3 convolutions in float (Lavin & Gray):
/// Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A per 2×2 output tile, 16 products per tile and channel pair
/// instead of 36 — 2.25× fewer multiplications than the direct kernels — and F(4×4, 3×3)
/// (36 products per 4×4 tile: 4× fewer; struct tile holds both). Forms, each used where it
/// measured fastest (cpu::conv2d_geometry says where): channels-last F(2×2) for 64 and more
/// channels on planes up to 32×32 (winograd3x3), planar F(2×2) (namespace planar) for 16–63
/// channels on planes its lane groups fill (winograd3x3_planar), and the sample-lane form
/// (namespace batched, the vector lanes are 16 samples) in F(4×4) for 16–64 channels on planes
/// up to 28×28 (winograd3x3_f4) and F(2×2) on larger ones (winograd3x3_batched); the weight
/// gradient in sample-lane form (namespace wgrad), F(4×4) or F(2×2) (winograd3x3_wgrad_f4,
/// winograd3x3_wgrad).
///
/// Channels-last, per sample: the input is transposed to channels-last, zero-bordered planes;
/// tiles run in chunks of `chunk` (transforms and products stay in L1/L2): V[ξ][t][c] =
/// (Bᵀ d B)[ξ] with the
/// channels as vector lanes, M[ξ][t][k] = Σ_c V[ξ][t][c]·U[ξ][c][k] (output channels as lanes,
/// a register tile of P tiles × KV vectors), then Y = Aᵀ M A into a channels-last buffer, which
/// the epilogue (detail::conv_epilogue) stores transposed back to [K, H, W]. Channel counts
/// must be multiples of 16 (one vector); odd planes run partial tiles over the zero border.

#include "ltlearn/backends/cpu/conv3x3.hpp"
#include "ltlearn/backends/cpu/simd.hpp"

#include <algorithm>
#include <array>
#include <memory>
#include <type_traits>
#include <vector>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

// Full unrolling of the register-tile loops (GCC and Clang; nvcc's front end, which parses
// this header's host code in .cu files, does not know the pragma).
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

/// M[t][k] (k-vectors kv0 … kv0 + KV) for tiles t0 … t0 + P of a chunk, from V [chunk][C] and
/// U [C][K] of one ξ.
template <int KV, int P>
inline void product_block(const float* V, const float* U, float* M, index_t C, index_t K, index_t t0, index_t kv0) {
  vf acc[P][KV] = {};
  for (index_t c = 0; c < C; ++c) {
    vf u[KV];
    for (int v = 0; v < KV; ++v) u[v] = load(U + c * K + (kv0 + v) * lanes);
    LTL_WINOGRAD_UNROLL(32)
    for (int p = 0; p < P; ++p) {
      const float x = V[(t0 + p) * C + c];
      LTL_WINOGRAD_UNROLL(4)
      for (int v = 0; v < KV; ++v) acc[p][v] += x * u[v];
    }
  }
  for (int p = 0; p < P; ++p)
    for (int v = 0; v < KV; ++v) store(M + (t0 + p) * K + (kv0 + v) * lanes, acc[p][v]);
}

/// Work space of one thread.
struct workspace {
  std::vector<float> xt, V, M, yt;
  workspace(index_t C, index_t K, index_t th, index_t tw)
      : xt(static_cast<std::size_t>((2 * th + 2) * (2 * tw + 2) * C)),
        V(static_cast<std::size_t>(16 * chunk * C)),
        M(static_cast<std::size_t>(16 * chunk * K)),
        yt(static_cast<std::size_t>(4 * th * tw * K)) {}
};

/// One sample: y [K, H, W] = epilogue(conv3x3(x [C, H, W])) with U from transform_weights;
/// `res` is the sample's residual (if the epilogue has one).
inline void sample(const float* x, index_t C, index_t K, index_t H, index_t W, const float* U,
                   const conv_epilogue<float>& ep, const float* res, float* y, workspace& ws) {
  const index_t th = (H + 1) / 2, tw = (W + 1) / 2, T = th * tw, Wp = 2 * tw + 2, Wo = 2 * tw;
  float* xt = ws.xt.data();
  // Channels-last, zero-bordered input (the border, zeroed with the work space, is never
  // written): 16 channels × a run of 16 values of the flattened plane per register transpose.
  const index_t len = H * W;
  if (len >= lanes) {
    for (index_t c0 = 0; c0 < C; c0 += lanes)
      transpose_runs(
          len, lanes, [&](int k, index_t p0) { return x + (c0 + k) * len + p0; },
          [&](int j, index_t p0, vf v) { store(xt + (((p0 + j) / W + 1) * Wp + (p0 + j) % W + 1) * C + c0, v); });
  } else {
    for (index_t h = 0; h < H; ++h)
      for (index_t c = 0; c < C; ++c) {
        const float* src = x + (c * H + h) * W;
        float* dst = xt + ((h + 1) * Wp + 1) * C + c;
        for (index_t w = 0; w < W; ++w) dst[w * C] = src[w];
      }
  }
  float* V = ws.V.data();
  float* M = ws.M.data();
  float* yt = ws.yt.data();
  for (index_t t0 = 0; t0 < T; t0 += chunk) {
    const index_t tb = std::min<index_t>(chunk, T - t0);
    // V = Bᵀ d B, Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]].
    for (index_t tt = 0; tt < tb; ++tt) {
      const index_t t = t0 + tt, ty = t / tw, tx = t % tw;
      const float* base = xt + (2 * ty * Wp + 2 * tx) * C;
      for (index_t cv = 0; cv < C; cv += lanes) {
        vf d[4][4], e[4][4];
        for (int i = 0; i < 4; ++i)
          for (int j = 0; j < 4; ++j) d[i][j] = load(base + (i * Wp + j) * C + cv);
        for (int i = 0; i < 4; ++i) {
          e[i][0] = d[i][0] - d[i][2];
          e[i][1] = d[i][1] + d[i][2];
          e[i][2] = d[i][2] - d[i][1];
          e[i][3] = d[i][1] - d[i][3];
        }
        for (int j = 0; j < 4; ++j) {
          store(V + ((0 * 4 + j) * chunk + tt) * C + cv, e[0][j] - e[2][j]);
          store(V + ((1 * 4 + j) * chunk + tt) * C + cv, e[1][j] + e[2][j]);
          store(V + ((2 * 4 + j) * chunk + tt) * C + cv, e[2][j] - e[1][j]);
          store(V + ((3 * 4 + j) * chunk + tt) * C + cv, e[1][j] - e[3][j]);
        }
      }
    }
    // M[ξ] = V[ξ]·U[ξ], register tiles of 14 tiles × 2 vectors (or 28 × 1 for 16 channels).
    for (int xi = 0; xi < 16; ++xi) {
      const float* Vx = V + xi * chunk * C;
      const float* Ux = U + xi * C * K;
      float* Mx = M + xi * chunk * K;
      const index_t kvs = K / lanes;
      index_t kv = 0;
      for (; kv + 2 <= kvs; kv += 2) {
        // 14-tile blocks for full chunks; otherwise 8- and 4-tile blocks, so that the 16 tiles
        // of a 7×7 or 8×8 plane run as 8 + 8 rather than 14 + 1 + 1 (one tile per block is
        // load-bound).
        index_t p = 0;
        if (tb % 14 == 0)
          for (; p + 14 <= tb; p += 14) product_block<2, 14>(Vx, Ux, Mx, C, K, p, kv);
        for (; p + 8 <= tb; p += 8) product_block<2, 8>(Vx, Ux, Mx, C, K, p, kv);
        for (; p + 4 <= tb; p += 4) product_block<2, 4>(Vx, Ux, Mx, C, K, p, kv);
        for (; p < tb; ++p) product_block<2, 1>(Vx, Ux, Mx, C, K, p, kv);
      }
      if (kv < kvs) {
        index_t p = 0;
        for (; p + 28 <= tb; p += 28) product_block<1, 28>(Vx, Ux, Mx, C, K, p, kv);
        for (; p < tb; ++p) product_block<1, 1>(Vx, Ux, Mx, C, K, p, kv);
      }
    }
    // Y = Aᵀ M A, Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]], into yt [2·th][2·tw][K].
    for (index_t tt = 0; tt < tb; ++tt) {
      const index_t t = t0 + tt, ty = t / tw, tx = t % tw;
      for (index_t kv = 0; kv < K; kv += lanes) {
        vf m[4][4], s[4][2];
        for (int i = 0; i < 4; ++i)
          for (int j = 0; j < 4; ++j) m[i][j] = load(M + ((i * 4 + j) * chunk + tt) * K + kv);
        for (int i = 0; i < 4; ++i) {
          s[i][0] = m[i][0] + m[i][1] + m[i][2];
          s[i][1] = m[i][1] - m[i][2] - m[i][3];
        }
        for (int b = 0; b < 2; ++b) {
          store(yt + ((2 * ty) * Wo + 2 * tx + b) * K + kv, s[0][b] + s[1][b] + s[2][b]);
          store(yt + ((2 * ty + 1) * Wo + 2 * tx + b) * K + kv, s[1][b] - s[2][b] - s[3][b]);
        }
      }
    }
  }
  // Back to [K, H, W] through the epilogue, row by row.
  for (index_t h = 0; h < H; ++h)
    for (index_t k = 0; k < K; ++k)
      ep.store(y + (k * H + h) * W, yt + (h * Wo) * K + k, K, W, k, res ? res + (k * H + h) * W : nullptr);
}


/// The planar variant for layers with few channels (below 64), where the channels-last form's
/// transposes cost as much as its products. Tiles are the vector lanes and the data stay
/// [C, H, W]: a lane group is 16 tiles — up to 16 of one tile row, or, on planes of ≤ 16
/// columns, up to 8 of each of two tile rows — whose 4×4 inputs come from two unaligned loads
/// and one even-lane permutation per (i, j); the products broadcast U[ξ][c][k] against V[ξ][c]
/// (any channel counts); the outputs of a lane pair interleave back into rows and are stored
/// through the epilogue as vectors.
namespace planar {

using vi = int __attribute__((vector_size(64)));

/// Every other lane of a then of b, from lane F (0 or 1): (a[F], a[F + 2], …, a[F + 14],
/// b[F], …, b[F + 14]).
template <int F>
inline vf every_other(vf a, vf b) noexcept {
#if defined(__clang__)
  return __builtin_shufflevector(a, b, F, F + 2, F + 4, F + 6, F + 8, F + 10, F + 12, F + 14, F + 16, F + 18, F + 20,
                                 F + 22, F + 24, F + 26, F + 28, F + 30);
#elif defined(__GNUC__) && !defined(__CUDACC__)
  return __builtin_shuffle(a, b, vi{F, F + 2, F + 4, F + 6, F + 8, F + 10, F + 12, F + 14, F + 16, F + 18, F + 20,
                                    F + 22, F + 24, F + 26, F + 28, F + 30});
#else
  vf r;
  for (int l = 0; l < 8; ++l) r[l] = a[2 * l + F], r[8 + l] = b[2 * l + F];
  return r;
#endif
}
inline vf evens(vf a, vf b) noexcept { return every_other<0>(a, b); }
inline vf odds(vf a, vf b) noexcept { return every_other<1>(a, b); }

/// Interleaves a and b: `high` false gives (a[0], b[0], …, a[7], b[7]), true (a[8], b[8], …).
inline vf interleave(vf a, vf b, bool high) noexcept {
#if defined(__clang__)
  return high ? __builtin_shufflevector(a, b, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31)
              : __builtin_shufflevector(a, b, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
#elif defined(__GNUC__) && !defined(__CUDACC__)
  return high ? __builtin_shuffle(a, b, vi{8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31})
              : __builtin_shuffle(a, b, vi{0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23});
#else
  vf r;
  const int o = high ? 8 : 0;
  for (int l = 0; l < 8; ++l) r[2 * l] = a[o + l], r[2 * l + 1] = b[o + l];
  return r;
#endif
}

/// One lane group: input offsets of the two loads' rows (within a padded channel plane) and
/// the two output runs (row, column, length; length 0: none) its interleaved halves fill.
struct group {
  index_t in_a, in_b;
  index_t row[2], col[2], len[2];
};

/// Lane groups of an H×W plane whose padded copy has rows of `wp` floats.
inline std::vector<group> groups(index_t h, index_t w, index_t wp) {
  const index_t th = (h + 1) / 2, tw = (w + 1) / 2;
  std::vector<group> g;
  if (tw > 8) {
    for (index_t ty = 0; ty < th; ++ty)
      for (index_t x0 = 0; x0 < tw; x0 += 16) {
        const index_t in = 2 * ty * wp + 2 * x0, c0 = 2 * x0;
        g.push_back({in, in + 16, {2 * ty, 2 * ty}, {c0, c0 + 16},
                     {std::min<index_t>(16, w - c0), std::max<index_t>(0, std::min<index_t>(16, w - c0 - 16))}});
      }
  } else {
    for (index_t ty = 0; ty < th; ty += 2) {
      const bool second = ty + 1 < th;
      const index_t in = 2 * ty * wp;
      g.push_back({in, second ? in + 2 * wp : in, {2 * ty, 2 * ty + 2}, {0, 0}, {w, second ? w : 0}});
    }
  }
  return g;
}

/// Stores the first n lanes of v through the epilogue (channel k) at dst; res: the residual at
/// dst's place (or null).
inline void put(float* dst, vf v, index_t n, index_t k, const conv_epilogue<float>& ep, const float* res) noexcept {
  if (ep.scale) v *= ep.scale[k];
  if (ep.shift) v += ep.shift[k];
  if (res) {
    if (n == lanes) {
      v += load(res);
    } else {
      alignas(64) float r[lanes] = {};
      std::copy_n(res, n, r);
      v += load(r);
    }
  }
  if (ep.relu) v = v > 0.0f ? v : 0.0f;
  if (n == lanes) {
    store(dst, v);
  } else {
    alignas(64) float tmp[lanes];
    store(tmp, v);
    std::copy_n(tmp, n, dst);
  }
}

/// M[ξ][k] = Σ_c U[ξ][c][k]·V[ξ][c] for output channels k0 … k0 + KB of one lane group (vectors
/// of V and M indexed ξ·C + c and ξ·K + k; XI values of ξ: 16 for F(2×2), 36 for F(4×4)). A
/// register tile of KB accumulators against one vector of V, U broadcast from memory.
template <int KB, int XI>
inline void product(const float* V, const float* U, float* M, index_t C, index_t K, index_t k0) {
  for (int xi = 0; xi < XI; ++xi) {
    vf acc[KB] = {};
    const float* Vx = V + xi * C * lanes;
    const float* Ux = U + xi * C * K + k0;
    for (index_t c = 0; c < C; ++c) {
      const vf v = load(Vx + c * lanes);
      LTL_WINOGRAD_UNROLL(16)
      for (int kk = 0; kk < KB; ++kk) acc[kk] += Ux[c * K + kk] * v;
    }
    LTL_WINOGRAD_UNROLL(16)
    for (int kk = 0; kk < KB; ++kk) store(M + (xi * K + k0 + kk) * lanes, acc[kk]);
  }
}

/// M[ξ][k] = Σ_c U[ξ][c][k]·V[ξ][c] for every output channel: register tiles of 16, 8, 4, 1.
template <int XI = 16>
inline void products(const float* V, const float* U, float* M, index_t C, index_t K) {
  index_t k0 = 0;
  for (; k0 + 16 <= K; k0 += 16) product<16, XI>(V, U, M, C, K, k0);
  for (; k0 + 8 <= K; k0 += 8) product<8, XI>(V, U, M, C, K, k0);
  for (; k0 + 4 <= K; k0 += 4) product<4, XI>(V, U, M, C, K, k0);
  for (; k0 < K; ++k0) product<1, XI>(V, U, M, C, K, k0);
}

/// Work space of one thread: the zero-bordered input copy (its border is never written) and
/// the transformed inputs and products of one lane group (16 KiB each at 16 channels: one
/// group at a time measured faster than two, whose 64 KiB spilled from L1).
struct workspace {
  index_t wp, plane;
  std::vector<float> xp, V, M;
  workspace(index_t C, index_t K, index_t h, index_t w)
      : wp(2 * ((w + 1) / 2) + 2),
        plane((2 * ((h + 1) / 2) + 2) * wp),
        xp(static_cast<std::size_t>(C * plane + 2 * lanes + 4)),  // the last loads run past the end
        V(static_cast<std::size_t>(16 * C * lanes)),
        M(static_cast<std::size_t>(16 * K * lanes)) {}
};

/// One lane group of one sample: transform, products, inverse transform and epilogue.
inline void run_group(const group& gr, index_t C, index_t K, index_t H, index_t W, const float* U,
                      const conv_epilogue<float>& ep, const float* res, float* y, workspace& ws) {
  const index_t wp = ws.wp, plane = ws.plane;
  float* V = ws.V.data();
  float* M = ws.M.data();
  // V = Bᵀ d B, Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]].
  for (index_t c = 0; c < C; ++c) {
    const float* pa = ws.xp.data() + c * plane + gr.in_a;
    const float* pb = ws.xp.data() + c * plane + gr.in_b;
    vf e[4][4];
    for (int i = 0; i < 4; ++i) {
      // Columns 2t + j of the lanes' tiles: j = 0, 1 from the loads at 0 and j = 2, 3 from
      // those at 2 (the odd columns are the evens of the loads shifted by one).
      vf d[4];
      for (int j = 0; j < 4; j += 2) {
        const vf a = load(pa + i * wp + j), b = load(pb + i * wp + j);
        d[j] = evens(a, b);
        d[j + 1] = odds(a, b);
      }
      e[i][0] = d[0] - d[2];
      e[i][1] = d[1] + d[2];
      e[i][2] = d[2] - d[1];
      e[i][3] = d[1] - d[3];
    }
    float* v = V + c * lanes;
    const index_t step = C * lanes;  // between consecutive ξ
    for (int j = 0; j < 4; ++j) {
      store(v + (0 * 4 + j) * step, e[0][j] - e[2][j]);
      store(v + (1 * 4 + j) * step, e[1][j] + e[2][j]);
      store(v + (2 * 4 + j) * step, e[2][j] - e[1][j]);
      store(v + (3 * 4 + j) * step, e[1][j] - e[3][j]);
    }
  }
  products(V, U, M, C, K);
  // Y = Aᵀ M A, Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]]; o[b] holds output (2ty + r, 2tx + b).
  const index_t step = K * lanes;
  for (index_t k = 0; k < K; ++k) {
    const float* m0 = M + k * lanes;
    vf s[4][2];
    for (int i = 0; i < 4; ++i) {
      const vf m1 = load(m0 + (i * 4 + 1) * step), m2 = load(m0 + (i * 4 + 2) * step);
      s[i][0] = load(m0 + (i * 4) * step) + m1 + m2;
      s[i][1] = m1 - m2 - load(m0 + (i * 4 + 3) * step);
    }
    for (int r = 0; r < 2; ++r) {
      const vf o0 = r == 0 ? s[0][0] + s[1][0] + s[2][0] : s[1][0] - s[2][0] - s[3][0];
      const vf o1 = r == 0 ? s[0][1] + s[1][1] + s[2][1] : s[1][1] - s[2][1] - s[3][1];
      for (int half = 0; half < 2; ++half) {
        const index_t row = gr.row[half] + r;
        if (gr.len[half] <= 0 || row >= H) continue;
        const index_t at = (k * H + row) * W + gr.col[half];
        put(y + at, interleave(o0, o1, half == 1), gr.len[half], k, ep, res ? res + at : nullptr);
      }
    }
  }
}

/// One sample: y [K, H, W] = epilogue(conv3x3(x [C, H, W])), U from transform_weights.
inline void sample(const float* x, index_t C, index_t K, index_t H, index_t W, const float* U,
                   const std::vector<group>& gs, const conv_epilogue<float>& ep, const float* res, float* y,
                   workspace& ws) {
  for (index_t c = 0; c < C; ++c)
    for (index_t h = 0; h < H; ++h)
      direct3x3::copy_row(x + (c * H + h) * W, ws.xp.data() + c * ws.plane + (h + 1) * ws.wp + 1, W);
  for (const group& gr : gs) run_group(gr, C, K, H, W, U, ep, res, y, ws);
}

/// Share of lanes the groups of an H×W plane fill (1 on 16×16 and 32×32 planes).
inline double lane_use(index_t h, index_t w) {
  const index_t tiles = ((h + 1) / 2) * ((w + 1) / 2);
  return double(tiles) / double(lanes * static_cast<index_t>(groups(h, w, 2 * ((w + 1) / 2) + 2).size()));
}

}  // namespace planar


/// The sample-lane form, for planes the planar form's lane groups do not fill (14×14, 28×28,
/// …): the vector lanes are 16 samples at the same place, so every plane size fills them. A
/// block of 16 samples is transposed into a zero-bordered [C][H + 2][W + 2][16] copy (16
/// consecutive values of each sample's flattened plane per 16 × 16 register transpose); a
/// tile's 4×4 inputs are then 16 aligned loads, the products are the planar form's (U broadcast
/// against V[ξ][c]), and the outputs go to an [H][W][K][16] buffer that is transposed back, 16
/// flattened outputs per sample at a time, through the epilogue. (Channels-inner input copies
/// measured 3–7 % slower; register tiles over two to four tiles at once, 0–20 % slower.) F(4×4)
/// tiles read 6×6 inputs and give 4×4 outputs per 36 products (F(2×2): 2×2 per 16), for the
/// same transform work per output.
namespace batched {

/// Work space of one thread for F(m×m, 3×3), m = 2 or 4 (zero-initialised; the input copy's
/// border is never written).
struct workspace {
  index_t m, hp, wp, th, tw;
  std::vector<float> xs, V, M, ys;
  workspace(index_t C, index_t K, index_t h, index_t w, index_t mt = 2)
      : m(mt),
        hp(mt * ((h + mt - 1) / mt) + 2),
        wp(mt * ((w + mt - 1) / mt) + 2),
        th((h + mt - 1) / mt),
        tw((w + mt - 1) / mt),
        xs(static_cast<std::size_t>(C * hp * wp * lanes)),
        V(static_cast<std::size_t>((mt + 2) * (mt + 2) * C * lanes)),
        M(static_cast<std::size_t>((mt + 2) * (mt + 2) * K * lanes)),
        ys(static_cast<std::size_t>(K * h * w * lanes)),
        key{C, K, h, w, mt} {}
  std::array<index_t, 5> key;

  /// The calling thread's work space for this geometry, kept between calls (a new geometry
  /// replaces it): allocating and zeroing its ~2 MiB per call cost 10 % of a layer's time.
  static workspace& of_thread(index_t C, index_t K, index_t h, index_t w, index_t mt = 2) {
    thread_local workspace ws(0, 0, 0, 0);
    if (ws.key != std::array<index_t, 5>{C, K, h, w, mt}) ws = workspace(C, K, h, w, mt);
    return ws;
  }
};

/// xs[c][h + 1][w + 1][s] = x_s[c][h][w] for the ns (≤ 16) samples at x (sample stride
/// `stride`); lanes ns … 15 are zero. The plane must hold at least 16 values.
inline void gather(const float* x, index_t ns, index_t stride, index_t C, index_t H, index_t W, workspace& ws) {
  const index_t len = H * W;
  for (index_t c = 0; c < C; ++c)
    transpose_runs(
        len, ns, [&](int s, index_t p0) { return x + s * stride + c * len + p0; },
        [&](int j, index_t p0, vf v) {
          const index_t p = p0 + j, h = p / W, w = p % W;
          store(ws.xs.data() + ((c * ws.hp + h + 1) * ws.wp + w + 1) * lanes, v);
        });
}

/// V[ξ][c] = (Bᵀ d B)[ξ] of channel c for tile t (row-major tile order) of F(Mt×Mt, 3×3):
/// vectors at V + ξ·step + c·16 (step = C·16 by default: the products' layout).
template <int Mt = 2>
inline void transform_inputs(index_t t, index_t C, const workspace& ws, float* V, index_t step) {
  using tl = tile<Mt>;
  constexpr int A = tl::a;
  const index_t ty = t / ws.tw, tx = t % ws.tw;
  for (index_t c = 0; c < C; ++c) {
    const float* base = ws.xs.data() + ((c * ws.hp + Mt * ty) * ws.wp + Mt * tx) * lanes;
    vf e[A][A];
    LTL_WINOGRAD_UNROLL(6)
    for (int i = 0; i < A; ++i) {
      vf d[A];
      LTL_WINOGRAD_UNROLL(6)
      for (int j = 0; j < A; ++j) d[j] = load(base + (i * ws.wp + j) * lanes);
      tl::input(d, e[i]);
    }
    columns_to_xi(e, V + c * lanes, step, [](const vf* in, vf* out) { tl::input(in, out); });
  }
}

/// ys[Mt·ty + r][Mt·tx + b][k] = (Aᵀ M A)[r][b] for tile t (outputs past H, W dropped).
template <int Mt = 2>
inline void transform_outputs(index_t t, index_t K, index_t H, index_t W, workspace& ws) {
  using tl = tile<Mt>;
  constexpr int A = tl::a;
  const index_t ty = t / ws.tw, tx = t % ws.tw;
  const index_t rows = std::min<index_t>(Mt, H - Mt * ty), cols = std::min<index_t>(Mt, W - Mt * tx);
  const index_t step = K * lanes;
  for (index_t k = 0; k < K; ++k) {
    const float* m0 = ws.M.data() + k * lanes;
    vf s[A][Mt];
    LTL_WINOGRAD_UNROLL(6)
    for (int i = 0; i < A; ++i) {
      vf m[A];
      LTL_WINOGRAD_UNROLL(6)
      for (int j = 0; j < A; ++j) m[j] = load(m0 + (i * A + j) * step);
      tl::output(m, s[i]);
    }
    float* y0 = ws.ys.data() + (k * H * W + Mt * ty * W + Mt * tx) * lanes;
    LTL_WINOGRAD_UNROLL(6)
    for (int b = 0; b < Mt; ++b) {
      if (b >= cols) break;
      vf col[A], o[Mt];
      LTL_WINOGRAD_UNROLL(6)
      for (int i = 0; i < A; ++i) col[i] = s[i][b];
      tl::output(col, o);
      LTL_WINOGRAD_UNROLL(6)
      for (int r = 0; r < Mt; ++r)
        if (r < rows) store(y0 + (r * W + b) * lanes, o[r]);
    }
  }
}

/// y_s[k] = epilogue(ys[·][k][s]) for the ns samples at y (sample stride `stride`; residuals at
/// the same offsets from `res`, if any).
inline void scatter(float* y, const float* res, index_t ns, index_t stride, index_t K, index_t H, index_t W,
                    const conv_epilogue<float>& ep, const workspace& ws) {
  const index_t len = H * W;
  for (index_t k = 0; k < K; ++k)
    transpose_runs(
        len, lanes, [&](int q, index_t p0) { return ws.ys.data() + (k * len + p0 + q) * lanes; },
        [&](int s, index_t p0, vf v) {
          if (s >= ns) return;
          const index_t at = s * stride + k * len + p0;
          planar::put(y + at, v, lanes, k, ep, res ? res + at : nullptr);
        });
}

/// One block of ns ≤ 16 samples: y = epilogue(conv3x3(x)) by F(Mt×Mt, 3×3), U from
/// transform_weights<Mt>, ws built for Mt.
template <int Mt = 2>
inline void block(const float* x, index_t ns, index_t in_stride, index_t C, index_t K, index_t H, index_t W,
                  const float* U, const conv_epilogue<float>& ep, const float* res, float* y, index_t out_stride,
                  workspace& ws) {
  constexpr int A = tile<Mt>::a;
  gather(x, ns, in_stride, C, H, W, ws);
  for (index_t t = 0, T = ws.th * ws.tw; t < T; ++t) {
    transform_inputs<Mt>(t, C, ws, ws.V.data(), C * lanes);
    planar::products<A * A>(ws.V.data(), U, ws.M.data(), C, K);
    transform_outputs<Mt>(t, K, H, W, ws);
  }
  scatter(y, res, ns, out_stride, K, H, W, ep, ws);
}

}  // namespace batched


/// The weight gradient in sample-lane form: dW = Gᵀ [Σ over tiles and samples (A δ Aᵀ) ⊙
/// (Bᵀ d B)] G, δ the m×m output gradient and d the (m + 2)×(m + 2) input of a tile (m = 2, 4). Per block of 16
/// samples, x is gathered and transformed as in the forward pass (V[ξ][c] vectors over the
/// samples) and dy is transposed to channels-last per sample (ds[position][sample][k]), so that
/// D = A δ Aᵀ comes out as vectors of 16 output channels. Per tile and ξ, dU[ξ][c][k]
/// accumulates over the block's samples s V[ξ][c][s] (broadcast) times D[ξ][s][k-vectors]: a
/// register tile of CB input channels × KV vectors of output channels against a thread-private
/// dU in memory. (Chunks of two to eight tiles per accumulation, whose V and D left L1,
/// measured 1.3–1.6× slower.)
namespace wgrad {

/// Work space of one thread: the forward pass's (its xs and V), the channels-last output
/// gradient, one tile's D [ξ][s][k], and dU [ξ][c][k].
struct workspace {
  batched::workspace fw;
  std::vector<float> ds, D, dU;
  workspace(index_t C, index_t K, index_t h, index_t w, index_t mt = 2)
      : fw(C, 0, h, w, mt),
        ds(static_cast<std::size_t>(h * w * lanes * K)),
        D(static_cast<std::size_t>((mt + 2) * (mt + 2) * lanes * K)),
        dU(static_cast<std::size_t>((mt + 2) * (mt + 2) * C * K)),
        key{C, K, h, w, mt} {}
  std::array<index_t, 5> key;

  /// The calling thread's work space for this geometry, kept between calls like the forward
  /// pass's (batched::workspace::of_thread), with dU zeroed.
  static workspace& of_thread(index_t C, index_t K, index_t h, index_t w, index_t mt = 2) {
    thread_local workspace ws(0, 0, 0, 0);
    if (ws.key != std::array<index_t, 5>{C, K, h, w, mt}) ws = workspace(C, K, h, w, mt);
    std::fill(ws.dU.begin(), ws.dU.end(), 0.0f);
    return ws;
  }
};

/// ds[p][s][k] = dy_s[k][p] for the ns samples at dy (sample stride `stride`, K a multiple of
/// 16); entries of samples ns … 15 are left as they are (never read).
inline void gather_channels_last(const float* dy, index_t ns, index_t stride, index_t K, index_t len,
                                 workspace& ws) {
  for (index_t s = 0; s < ns; ++s)
    for (index_t k0 = 0; k0 < K; k0 += lanes)
      transpose_runs(
          len, lanes, [&](int q, index_t p0) { return dy + s * stride + (k0 + q) * len + p0; },
          [&](int j, index_t p0, vf v) { store(ws.ds.data() + ((p0 + j) * lanes + s) * K + k0, v); });
}

/// D[ξ][s][k] = (A δ Aᵀ)[ξ] of tile t for the ns samples (δ the tile's Mt × Mt output
/// gradients, A the transpose of the forward pass's Aᵀ); outputs past H, W count as zero.
template <int Mt = 2>
inline void transform_grads(index_t t, index_t ns, index_t K, index_t H, index_t W, workspace& ws) {
  using tl = tile<Mt>;
  constexpr int A = tl::a;
  const index_t ty = t / ws.fw.tw, tx = t % ws.fw.tw;
  const index_t rows = std::min<index_t>(Mt, H - Mt * ty), cols = std::min<index_t>(Mt, W - Mt * tx);
  const float* g0 = ws.ds.data() + (Mt * ty * W + Mt * tx) * lanes * K;
  const index_t right = lanes * K, down = W * lanes * K, step = lanes * K;
  for (index_t s = 0; s < ns; ++s)
    for (index_t kv = 0; kv < K; kv += lanes) {
      const float* g = g0 + s * K + kv;
      vf e[Mt][A];
      LTL_WINOGRAD_UNROLL(6)
      for (int r = 0; r < Mt; ++r) {
        vf d[Mt];
        LTL_WINOGRAD_UNROLL(6)
        for (int b = 0; b < Mt; ++b) d[b] = r < rows && b < cols ? load(g + r * down + b * right) : vf{};
        tl::output_adjoint(d, e[r]);
      }
      columns_to_xi(e, ws.D.data() + s * K + kv, step, [](const vf* in, vf* out) { tl::output_adjoint(in, out); });
    }
}

/// dU[ξ][c][k] += Σ_s V[ξ][c][s]·D[ξ][s][k] over the ns samples, for c0 … c0 + CB and the KV
/// vectors of k from k0; XI values of ξ (16 for F(2×2), 36 for F(4×4)).
template <int CB, int KV, int XI>
inline void accumulate(const float* V, const float* D, float* dU, index_t ns, index_t C, index_t K, index_t c0,
                       index_t k0) {
  for (int xi = 0; xi < XI; ++xi) {
    float* u = dU + (xi * C + c0) * K + k0;
    vf acc[CB][KV];
    LTL_WINOGRAD_UNROLL(24)
    for (int b = 0; b < CB; ++b)
      LTL_WINOGRAD_UNROLL(4)
      for (int v = 0; v < KV; ++v) acc[b][v] = load(u + b * K + v * lanes);
    const float* vx = V + (xi * C + c0) * lanes;
    const float* dx = D + xi * lanes * K + k0;
    for (index_t s = 0; s < ns; ++s) {
      vf d[KV];
      LTL_WINOGRAD_UNROLL(4)
      for (int v = 0; v < KV; ++v) d[v] = load(dx + s * K + v * lanes);
      LTL_WINOGRAD_UNROLL(24)
      for (int b = 0; b < CB; ++b) {
        const float a = vx[b * lanes + s];
        LTL_WINOGRAD_UNROLL(4)
        for (int v = 0; v < KV; ++v) acc[b][v] += a * d[v];
      }
    }
    LTL_WINOGRAD_UNROLL(24)
    for (int b = 0; b < CB; ++b)
      LTL_WINOGRAD_UNROLL(4)
      for (int v = 0; v < KV; ++v) store(u + b * K + v * lanes, acc[b][v]);
  }
}

/// All (c, k) of one tile: register tiles of 24/KV input channels, then 16/KV, 8/KV (where
/// above 4), 4 and 1.
template <int KV, int XI>
inline void accumulate_all(const float* V, const float* D, float* dU, index_t ns, index_t C, index_t K) {
  constexpr int CB = 24 / KV, CB2 = 16 / KV, CB3 = 8 / KV > 4 ? 8 / KV : 4;
  for (index_t k0 = 0; k0 < K; k0 += KV * lanes) {
    index_t c0 = 0;
    for (; c0 + CB <= C; c0 += CB) accumulate<CB, KV, XI>(V, D, dU, ns, C, K, c0, k0);
    for (; c0 + CB2 <= C; c0 += CB2) accumulate<CB2, KV, XI>(V, D, dU, ns, C, K, c0, k0);
    for (; c0 + CB3 <= C; c0 += CB3) accumulate<CB3, KV, XI>(V, D, dU, ns, C, K, c0, k0);
    for (; c0 + 4 <= C; c0 += 4) accumulate<4, KV, XI>(V, D, dU, ns, C, K, c0, k0);
    for (; c0 < C; ++c0) accumulate<1, KV, XI>(V, D, dU, ns, C, K, c0, k0);
  }
}

/// Adds one block of ns ≤ 16 samples into ws.dU (F(Mt×Mt, 3×3); ws built for Mt).
template <int Mt = 2>
inline void block(const float* x, const float* dy, index_t ns, index_t C, index_t K, index_t H, index_t W,
                  workspace& ws) {
  constexpr int XI = tile<Mt>::a * tile<Mt>::a;
  batched::gather(x, ns, C * H * W, C, H, W, ws.fw);
  gather_channels_last(dy, ns, K * H * W, K, H * W, ws);
  const float* V = ws.fw.V.data();
  for (index_t t = 0, T = ws.fw.th * ws.fw.tw; t < T; ++t) {
    batched::transform_inputs<Mt>(t, C, ws.fw, ws.fw.V.data(), C * lanes);
    transform_grads<Mt>(t, ns, K, H, W, ws);
    if (K % (4 * lanes) == 0)
      accumulate_all<4, XI>(V, ws.D.data(), ws.dU.data(), ns, C, K);
    else if (K % (2 * lanes) == 0)
      accumulate_all<2, XI>(V, ws.D.data(), ws.dU.data(), ns, C, K);
    else
      accumulate_all<1, XI>(V, ws.D.data(), ws.dU.data(), ns, C, K);
  }
}

/// dW[k][c] (3×3, into dw [K, C·9]) = Gᵀ dU[·][c][k] G for input channels [c_begin, c_end),
/// dU the threads' partial sums added in thread order in double (empty ones skipped), G of
/// F(Mt×Mt, 3×3): tile<Mt>::kernel_adjoint along both axes.
template <int Mt = 2>
inline void transform_back(const std::vector<std::vector<float>>& partial, index_t C, index_t K, float* dw,
                           index_t c_begin, index_t c_end) {
  using tl = tile<Mt>;
  constexpr int A = tl::a;
  std::vector<double> sum(static_cast<std::size_t>(A * A * K));
  for (index_t c = c_begin; c < c_end; ++c) {
    // One channel's A² rows of K, each contiguous in the partial sums.
    std::fill(sum.begin(), sum.end(), 0.0);
    for (const auto& p : partial) {
      if (p.empty()) continue;
      for (index_t xi = 0; xi < A * A; ++xi) {
        const float* row = p.data() + (xi * C + c) * K;
        double* out = sum.data() + xi * K;
        for (index_t k = 0; k < K; ++k) out[k] += static_cast<double>(row[k]);
      }
    }
    for (index_t k = 0; k < K; ++k) {
      double m[A][A], r[3][A], col[A], g[3];
      for (int xi = 0; xi < A * A; ++xi) m[xi / A][xi % A] = sum[static_cast<std::size_t>(xi * K + k)];
      for (int j = 0; j < A; ++j) {  // Gᵀ m, column by column
        for (int i = 0; i < A; ++i) col[i] = m[i][j];
        tl::kernel_adjoint(col, g);
        for (int i = 0; i < 3; ++i) r[i][j] = g[i];
      }
      float* o = dw + (k * C + c) * 9;
      for (int i = 0; i < 3; ++i) {  // (Gᵀ m) G, row by row
        tl::kernel_adjoint(r[i], g);
        for (int j = 0; j < 3; ++j) o[i * 3 + j] = static_cast<float>(g[j]);
      }
    }
  }
}

}  // namespace wgrad

}  // namespace ltl::detail::winograd

namespace ltl::cpu::winograd {

/// y [N, rows, H, W] = epilogue(conv3x3(x [N, cin, H, W], stride 1, padding 1)) from `weight`
/// [A, B, 3, 3] (forward: A = rows = Cout; with `adjoint`, the input gradient: x = dy,
/// B = rows = Cin). float; cin and rows multiples of 16. Work is split over samples.
template <class ForEachChunk>
void run(const float* x, index_t n, index_t cin, index_t h, index_t w, const float* weight, index_t a, index_t b,
         bool adjoint, index_t rows, const ltl::detail::conv_epilogue<float>& ep, float* y,
         ForEachChunk&& for_each_chunk) {
  namespace wg = ltl::detail::winograd;
  const auto U = wg::transform_weights(weight, a, b, adjoint, for_each_chunk);
  const index_t th = (h + 1) / 2, tw = (w + 1) / 2, in_sample = cin * h * w, out_sample = rows * h * w;
  for_each_chunk(n, [&](int, index_t n0, index_t n1) {
    wg::workspace ws(cin, rows, th, tw);
    for (index_t s = n0; s < n1; ++s)
      wg::sample(x + s * in_sample, cin, rows, h, w, U.get(), ep, ep.residual ? ep.residual + s * out_sample : nullptr,
                 y + s * out_sample, ws);
  });
}

/// The planar form (detail::winograd::planar) of run: any channel counts.
template <class ForEachChunk>
void run_planar(const float* x, index_t n, index_t cin, index_t h, index_t w, const float* weight, index_t a,
                index_t b, bool adjoint, index_t rows, const ltl::detail::conv_epilogue<float>& ep, float* y,
                ForEachChunk&& for_each_chunk) {
  namespace pl = ltl::detail::winograd::planar;
  const auto U = ltl::detail::winograd::transform_weights(weight, a, b, adjoint, for_each_chunk);
  const index_t in_sample = cin * h * w, out_sample = rows * h * w;
  for_each_chunk(n, [&](int, index_t n0, index_t n1) {
    pl::workspace ws(cin, rows, h, w);
    const auto gs = pl::groups(h, w, ws.wp);
    for (index_t s = n0; s < n1; ++s)
      pl::sample(x + s * in_sample, cin, rows, h, w, U.get(), gs, ep,
                 ep.residual ? ep.residual + s * out_sample : nullptr, y + s * out_sample, ws);
  });
}


/// The sample-lane form (detail::winograd::batched) of run: any channel counts, planes of at
/// least 16 values (else shape_error); blocks of 16 samples are split over the threads.
template <int Mt = 2, class ForEachChunk>
void run_batched(const float* x, index_t n, index_t cin, index_t h, index_t w, const float* weight, index_t a,
                 index_t b, bool adjoint, index_t rows, const ltl::detail::conv_epilogue<float>& ep, float* y,
                 ForEachChunk&& for_each_chunk) {
  namespace bt = ltl::detail::winograd::batched;
  constexpr index_t L = ltl::detail::winograd::lanes;
  LTL_CHECK(h * w >= L, shape_error, "conv2d: Winograd's sample-lane form needs planes of at least {} values, got {}x{}",
            L, h, w);
  const auto U = ltl::detail::winograd::transform_weights<Mt>(weight, a, b, adjoint, for_each_chunk);
  const index_t in_sample = cin * h * w, out_sample = rows * h * w, blocks = (n + L - 1) / L;
  for_each_chunk(blocks, [&](int, index_t b0, index_t b1) {
    bt::workspace& ws = bt::workspace::of_thread(cin, rows, h, w, Mt);
    for (index_t bi = b0; bi < b1; ++bi) {
      const index_t s0 = bi * L, ns = std::min(L, n - s0);
      bt::block<Mt>(x + s0 * in_sample, ns, in_sample, cin, rows, h, w, U.get(), ep,
                ep.residual ? ep.residual + s0 * out_sample : nullptr, y + s0 * out_sample, out_sample, ws);
    }
  });
}


/// Weight gradient dW [K, C·9] of a stride-1, padding-1 3×3 convolution from dy [N, K, H, W]
/// and x [N, C, H, W] in the sample-lane form (detail::winograd::wgrad): K a multiple of 16,
/// planes of at least 16 values (else shape_error). Blocks of 16 samples are split over the
/// threads; each thread's dU is added in thread order (in double), so the result depends on
/// the thread count only. That sum and the inverse transform are split over input channels.
template <int Mt = 2, class ForEachChunk>
cpu::host_tensor<float> weight_grad_batched(const float* dy, const float* x, index_t n, index_t cin, index_t cout,
                                            index_t h, index_t w, int threads, ForEachChunk&& for_each_chunk) {
  namespace wg = ltl::detail::winograd::wgrad;
  constexpr index_t L = ltl::detail::winograd::lanes;
  LTL_CHECK(h * w >= L && cout % L == 0, shape_error,
            "conv2d_backward: Winograd's sample-lane weight gradient needs planes of at least {} values and output "
            "channels in multiples of {}, got {}x{} and {}",
            L, L, h, w, cout);
  const index_t blocks = (n + L - 1) / L, in_sample = cin * h * w, out_sample = cout * h * w;
  std::vector<std::vector<float>> partial(static_cast<std::size_t>(std::max(threads, 1)));
  for_each_chunk(blocks, [&](int t, index_t b0, index_t b1) {
    wg::workspace& ws = wg::workspace::of_thread(cin, cout, h, w, Mt);
    for (index_t bi = b0; bi < b1; ++bi) {
      const index_t s0 = bi * L;
      wg::block<Mt>(x + s0 * in_sample, dy + s0 * out_sample, std::min(L, n - s0), cin, cout, h, w, ws);
    }
    partial[static_cast<std::size_t>(t)] = ws.dU;
  });
  cpu::host_tensor<float> dw(shape{cout, cin * 9});
  for_each_chunk(cin,
                 [&](int, index_t c0, index_t c1) { wg::transform_back<Mt>(partial, cin, cout, dw.data(), c0, c1); });
  return dw;
}

}  // namespace ltl::cpu::winograd

#undef LTL_WINOGRAD_UNROLL
#undef LTL_WINOGRAD_PRAGMA

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
