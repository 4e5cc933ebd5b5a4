#pragma once
/// \file
/// Winograd F(2×2, 3×3) in channels-last form, for layers with 64 and more channels (in
/// multiples of 16). Per sample: the input is transposed to channels-last, zero-bordered planes;
/// tiles run in chunks of `chunk` (transforms and products stay in L1/L2): V[ξ][t][c] =
/// (Bᵀ d B)[ξ] with the channels as vector lanes, M[ξ][t][k] = Σ_c V[ξ][t][c]·U[ξ][c][k]
/// (output channels as lanes, a register tile of P tiles × KV vectors), then Y = Aᵀ M A into a
/// channels-last buffer, which the epilogue (detail::conv_epilogue) stores transposed back to
/// [K, H, W]. Odd planes run partial tiles over the zero border.

#include "ltlearn/backends/cpu/conv/winograd_transforms.hpp"

#include <algorithm>
#include <vector>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace ltl::detail::winograd::channels_last {

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
struct channels_last_workspace {
  std::vector<float> xt, V, M, yt;
  channels_last_workspace(index_t C, index_t K, index_t th, index_t tw)
      : xt(static_cast<std::size_t>((2 * th + 2) * (2 * tw + 2) * C)),
        V(static_cast<std::size_t>(16 * chunk * C)),
        M(static_cast<std::size_t>(16 * chunk * K)),
        yt(static_cast<std::size_t>(4 * th * tw * K)) {}
};

/// One sample: y [K, H, W] = epilogue(conv3x3(x [C, H, W])) with U from transform_weights;
/// `res` is the sample's residual (if the epilogue has one).
inline void sample(const float* x, index_t C, index_t K, index_t H, index_t W, const float* U,
                   const conv_epilogue<float>& ep, const float* res, float* y, channels_last_workspace& ws) {
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

}  // namespace ltl::detail::winograd::channels_last

namespace ltl::cpu::winograd {

/// y [N, rows, H, W] = epilogue(conv3x3(x [N, cin, H, W], stride 1, padding 1)) in channels-last
/// form (forward: rows = Cout; args.adjoint, the input gradient: x = dy, rows = Cin). cin and
/// rows multiples of 16. Work is split over samples.
template <class ForEachChunk>
void run_channels_last(const ltl::detail::conv3x3_args<float>& args, ForEachChunk&& for_each_chunk) {
  const float* x = args.input;
  const float* weight = args.weight;
  const index_t n = args.samples, cin = args.in_channels, h = args.height, w = args.width;
  const index_t a = args.weight_out, b = args.weight_in, rows = args.out_channels;
  const bool adjoint = args.adjoint;
  const ltl::detail::conv_epilogue<float>& ep = args.epilogue;
  float* y = args.output;
  namespace wg = ltl::detail::winograd;
  namespace cl = ltl::detail::winograd::channels_last;
  const auto U = wg::transform_weights(weight, a, b, adjoint, for_each_chunk);
  const index_t th = (h + 1) / 2, tw = (w + 1) / 2, in_sample = cin * h * w, out_sample = rows * h * w;
  for_each_chunk(n, [&](int, index_t n0, index_t n1) {
    cl::channels_last_workspace ws(cin, rows, th, tw);
    for (index_t s = n0; s < n1; ++s)
      cl::sample(x + s * in_sample, cin, rows, h, w, U.get(), ep, ep.residual ? ep.residual + s * out_sample : nullptr,
                 y + s * out_sample, ws);
  });
}

}  // namespace ltl::cpu::winograd

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
