#pragma once
/// \file
/// The weight gradient of a stride-1, padding-1 3×3 convolution by Winograd in sample-lane
/// form: dW = Gᵀ [Σ over tiles and samples (A δ Aᵀ) ⊙ (Bᵀ d B)] G, δ the m×m output gradient
/// and d the (m + 2)×(m + 2) input of a tile (m = 2, 4). Per block of 16 samples, x is gathered and transformed as in the forward pass (V[ξ][c] vectors over the
/// samples) and dy is transposed to channels-last per sample (ds[position][sample][k]), so that
/// D = A δ Aᵀ comes out as vectors of 16 output channels. Per tile and ξ, dU[ξ][c][k]
/// accumulates over the block's samples s V[ξ][c][s] (broadcast) times D[ξ][s][k-vectors]: a
/// register tile of CB input channels × KV vectors of output channels against a thread-private
/// dU in memory. (Chunks of two to eight tiles per accumulation, whose V and D left L1,
/// measured 1.3–1.6× slower.)

#include "ltlearn/backends/cpu/conv/winograd_sample_lane.hpp"

#include <algorithm>
#include <array>
#include <vector>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace ltl::detail::winograd::sample_lane_weight_grad {

/// Work space of one thread: the forward pass's (its xs and V), the channels-last output
/// gradient, one tile's D [ξ][s][k], and dU [ξ][c][k].
struct weight_grad_workspace {
  sample_lane::sample_lane_workspace fw;
  std::vector<float> ds, D, dU;
  weight_grad_workspace(index_t C, index_t K, index_t h, index_t w, index_t mt = 2)
      : fw(C, 0, h, w, mt),
        ds(static_cast<std::size_t>(h * w * lanes * K)),
        D(static_cast<std::size_t>((mt + 2) * (mt + 2) * lanes * K)),
        dU(static_cast<std::size_t>((mt + 2) * (mt + 2) * C * K)),
        key{C, K, h, w, mt} {}
  std::array<index_t, 5> key;

  /// The calling thread's work space for this geometry, kept between calls like the forward
  /// pass's (sample_lane::sample_lane_workspace::of_thread), with dU zeroed.
  static weight_grad_workspace& of_thread(index_t C, index_t K, index_t h, index_t w, index_t mt = 2) {
    thread_local weight_grad_workspace ws(0, 0, 0, 0);
    if (ws.key != std::array<index_t, 5>{C, K, h, w, mt}) ws = weight_grad_workspace(C, K, h, w, mt);
    std::fill(ws.dU.begin(), ws.dU.end(), 0.0f);
    return ws;
  }
};

/// ds[p][s][k] = dy_s[k][p] for the ns samples at dy (sample stride `stride`, K a multiple of
/// 16); entries of samples ns … 15 are left as they are (never read).
inline void gather_channels_last(const float* dy, index_t ns, index_t stride, index_t K, index_t len,
                                 weight_grad_workspace& ws) {
  for (index_t s = 0; s < ns; ++s)
    for (index_t k0 = 0; k0 < K; k0 += lanes)
      transpose_runs(
          len, lanes, [&](int q, index_t p0) { return dy + s * stride + (k0 + q) * len + p0; },
          [&](int j, index_t p0, vf v) { store(ws.ds.data() + ((p0 + j) * lanes + s) * K + k0, v); });
}

/// D[ξ][s][k] = (A δ Aᵀ)[ξ] of tile t for the ns samples (δ the tile's Mt × Mt output
/// gradients, A the transpose of the forward pass's Aᵀ); outputs past H, W count as zero.
template <int Mt = 2>
inline void transform_grads(index_t t, index_t ns, index_t K, index_t H, index_t W, weight_grad_workspace& ws) {
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
                  weight_grad_workspace& ws) {
  constexpr int XI = tile<Mt>::a * tile<Mt>::a;
  sample_lane::gather(x, ns, C * H * W, C, H, W, ws.fw);
  gather_channels_last(dy, ns, K * H * W, K, H * W, ws);
  const float* V = ws.fw.V.data();
  for (index_t t = 0, T = ws.fw.th * ws.fw.tw; t < T; ++t) {
    sample_lane::transform_inputs<Mt>(t, C, ws.fw, ws.fw.V.data(), C * lanes);
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

}  // namespace ltl::detail::winograd::sample_lane_weight_grad

namespace ltl::cpu::winograd {

/// Weight gradient dW [K, C·9] of a stride-1, padding-1 3×3 convolution from dy [N, K, H, W]
/// and x [N, C, H, W] in the sample-lane form (detail::winograd::sample_lane_weight_grad),
/// F(Mt×Mt, 3×3): K a multiple of 16, planes of at least 16 values (else shape_error). Blocks
/// of 16 samples are split over the threads; each thread's dU is added in thread order (in
/// double), so the result depends on the thread count only. That sum and the inverse
/// transform are split over input channels.
template <int Mt = 2, class ForEachChunk>
cpu::host_tensor<float> weight_grad_sample_lane(const ltl::detail::conv3x3_weight_grad_args<float>& args,
                                                ForEachChunk&& for_each_chunk) {
  const float* dy = args.dy;
  const float* x = args.x;
  const index_t n = args.samples, cin = args.in_channels, cout = args.out_channels, h = args.height, w = args.width;
  const int threads = args.threads;
  namespace wg = ltl::detail::winograd::sample_lane_weight_grad;
  constexpr index_t L = ltl::detail::winograd::lanes;
  LTL_CHECK(h * w >= L && cout % L == 0, shape_error,
            "conv2d_backward: Winograd's sample-lane weight gradient needs planes of at least {} values and output "
            "channels in multiples of {}, got {}x{} and {}",
            L, L, h, w, cout);
  const index_t blocks = (n + L - 1) / L, in_sample = cin * h * w, out_sample = cout * h * w;
  std::vector<std::vector<float>> partial(static_cast<std::size_t>(std::max(threads, 1)));
  for_each_chunk(blocks, [&](int t, index_t b0, index_t b1) {
    wg::weight_grad_workspace& ws = wg::weight_grad_workspace::of_thread(cin, cout, h, w, Mt);
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

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
