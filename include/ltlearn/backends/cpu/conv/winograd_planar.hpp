#pragma once
/// \file
/// Winograd F(2×2, 3×3) in planar form, for layers with few channels (below 64), where the
/// channels-last form's transposes cost as much as its products. Tiles are the vector lanes and the data stay
/// [C, H, W]: a lane group is 16 tiles — up to 16 of one tile row, or, on planes of ≤ 16
/// columns, up to 8 of each of two tile rows — whose 4×4 inputs come from two unaligned loads
/// and one even-lane permutation per (i, j); the products broadcast U[ξ][c][k] against V[ξ][c]
/// (any channel counts); the outputs of a lane pair interleave back into rows and are stored
/// through the epilogue as vectors.

#include "ltlearn/backends/cpu/conv/winograd_transforms.hpp"

#include <algorithm>
#include <vector>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace ltl::detail::winograd::planar {

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
struct planar_workspace {
  index_t wp, plane;
  std::vector<float> xp, V, M;
  planar_workspace(index_t C, index_t K, index_t h, index_t w)
      : wp(2 * ((w + 1) / 2) + 2),
        plane((2 * ((h + 1) / 2) + 2) * wp),
        xp(static_cast<std::size_t>(C * plane + 2 * lanes + 4)),  // the last loads run past the end
        V(static_cast<std::size_t>(16 * C * lanes)),
        M(static_cast<std::size_t>(16 * K * lanes)) {}
};

/// One lane group of one sample: transform, products, inverse transform and epilogue.
inline void run_group(const group& gr, index_t C, index_t K, index_t H, index_t W, const float* U,
                      const conv_epilogue<float>& ep, const float* res, float* y, planar_workspace& ws) {
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
                   planar_workspace& ws) {
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

}  // namespace ltl::detail::winograd::planar

namespace ltl::cpu::winograd {

/// run_channels_last's planar form (detail::winograd::planar): any channel counts.
template <class ForEachChunk>
void run_planar(const ltl::detail::conv3x3_args<float>& args, ForEachChunk&& for_each_chunk) {
  const float* x = args.input;
  const float* weight = args.weight;
  const index_t n = args.samples, cin = args.in_channels, h = args.height, w = args.width;
  const index_t a = args.weight_out, b = args.weight_in, rows = args.out_channels;
  const bool adjoint = args.adjoint;
  const ltl::detail::conv_epilogue<float>& ep = args.epilogue;
  float* y = args.output;
  namespace pl = ltl::detail::winograd::planar;
  const auto U = ltl::detail::winograd::transform_weights(weight, a, b, adjoint, for_each_chunk);
  const index_t in_sample = cin * h * w, out_sample = rows * h * w;
  for_each_chunk(n, [&](int, index_t n0, index_t n1) {
    pl::planar_workspace ws(cin, rows, h, w);
    const auto gs = pl::groups(h, w, ws.wp);
    for (index_t s = n0; s < n1; ++s)
      pl::sample(x + s * in_sample, cin, rows, h, w, U.get(), gs, ep,
                 ep.residual ? ep.residual + s * out_sample : nullptr, y + s * out_sample, ws);
  });
}

}  // namespace ltl::cpu::winograd

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
