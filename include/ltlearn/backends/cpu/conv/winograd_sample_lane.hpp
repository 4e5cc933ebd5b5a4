#pragma once
/// \file
/// Winograd F(2×2, 3×3) and F(4×4, 3×3) in sample-lane form, for planes the planar form's lane
/// groups do not fill (14×14, 28×28, …): the vector lanes are 16 samples at the same place, so every plane size fills them. A
/// block of 16 samples is transposed into a zero-bordered [C][H + 2][W + 2][16] copy (16
/// consecutive values of each sample's flattened plane per 16 × 16 register transpose); a
/// tile's 4×4 inputs are then 16 aligned loads, the products are the planar form's (U broadcast
/// against V[ξ][c]), and the outputs go to an [H][W][K][16] buffer that is transposed back, 16
/// flattened outputs per sample at a time, through the epilogue. (Channels-inner input copies
/// measured 3–7 % slower; register tiles over two to four tiles at once, 0–20 % slower.) F(4×4)
/// tiles read 6×6 inputs and give 4×4 outputs per 36 products (F(2×2): 2×2 per 16), for the
/// same transform work per output.

#include "ltlearn/backends/cpu/conv/winograd_planar.hpp"

#include <algorithm>
#include <array>
#include <vector>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace ltl::detail::winograd::sample_lane {

/// Work space of one thread for F(m×m, 3×3), m = 2 or 4 (zero-initialised; the input copy's
/// border is never written).
struct sample_lane_workspace {
  index_t m, hp, wp, th, tw;
  std::vector<float> xs, V, M, ys;
  sample_lane_workspace(index_t C, index_t K, index_t h, index_t w, index_t mt = 2)
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
  static sample_lane_workspace& of_thread(index_t C, index_t K, index_t h, index_t w, index_t mt = 2) {
    thread_local sample_lane_workspace ws(0, 0, 0, 0);
    if (ws.key != std::array<index_t, 5>{C, K, h, w, mt}) ws = sample_lane_workspace(C, K, h, w, mt);
    return ws;
  }
};

/// xs[c][h + 1][w + 1][s] = x_s[c][h][w] for the ns (≤ 16) samples at x (sample stride
/// `stride`); lanes ns … 15 are zero. The plane must hold at least 16 values.
inline void gather(const float* x, index_t ns, index_t stride, index_t C, index_t H, index_t W, sample_lane_workspace& ws) {
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
inline void transform_inputs(index_t t, index_t C, const sample_lane_workspace& ws, float* V, index_t step) {
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
inline void transform_outputs(index_t t, index_t K, index_t H, index_t W, sample_lane_workspace& ws) {
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
                    const conv_epilogue<float>& ep, const sample_lane_workspace& ws) {
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
                  sample_lane_workspace& ws) {
  constexpr int A = tile<Mt>::a;
  gather(x, ns, in_stride, C, H, W, ws);
  for (index_t t = 0, T = ws.th * ws.tw; t < T; ++t) {
    transform_inputs<Mt>(t, C, ws, ws.V.data(), C * lanes);
    planar::products<A * A>(ws.V.data(), U, ws.M.data(), C, K);
    transform_outputs<Mt>(t, K, H, W, ws);
  }
  scatter(y, res, ns, out_stride, K, H, W, ep, ws);
}

}  // namespace ltl::detail::winograd::sample_lane

namespace ltl::cpu::winograd {

/// run_channels_last's sample-lane form (detail::winograd::sample_lane) in F(Mt×Mt, 3×3): any
/// channel counts, planes of at least 16 values (else shape_error); blocks of 16 samples are
/// split over the threads.
template <int Mt = 2, class ForEachChunk>
void run_sample_lane(const ltl::detail::conv3x3_args<float>& args, ForEachChunk&& for_each_chunk) {
  const float* x = args.input;
  const float* weight = args.weight;
  const index_t n = args.samples, cin = args.in_channels, h = args.height, w = args.width;
  const index_t a = args.weight_out, b = args.weight_in, rows = args.out_channels;
  const bool adjoint = args.adjoint;
  const ltl::detail::conv_epilogue<float>& ep = args.epilogue;
  float* y = args.output;
  namespace bt = ltl::detail::winograd::sample_lane;
  constexpr index_t L = ltl::detail::winograd::lanes;
  LTL_CHECK(h * w >= L, shape_error, "conv2d: Winograd's sample-lane form needs planes of at least {} values, got {}x{}",
            L, h, w);
  const auto U = ltl::detail::winograd::transform_weights<Mt>(weight, a, b, adjoint, for_each_chunk);
  const index_t in_sample = cin * h * w, out_sample = rows * h * w, blocks = (n + L - 1) / L;
  for_each_chunk(blocks, [&](int, index_t b0, index_t b1) {
    bt::sample_lane_workspace& ws = bt::sample_lane_workspace::of_thread(cin, rows, h, w, Mt);
    for (index_t bi = b0; bi < b1; ++bi) {
      const index_t s0 = bi * L, ns = std::min(L, n - s0);
      bt::block<Mt>(x + s0 * in_sample, ns, in_sample, cin, rows, h, w, U.get(), ep,
                ep.residual ? ep.residual + s0 * out_sample : nullptr, y + s0 * out_sample, out_sample, ws);
    }
  });
}

}  // namespace ltl::cpu::winograd

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
