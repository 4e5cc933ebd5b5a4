#pragma once
/// \file
/// Direct 3×3, stride-1, padding-1 convolution kernels on the CPU (the ResNet "same" conv),
/// without a column matrix. Shapes: x [N, Cin, H, W], weight [Cout, Cin, 3, 3], y [N, Cout, H, W].
///
/// Each input plane is copied once into a zero-bordered plane of width Wp = W + 2. On that
/// grid, output position q = oh·Wp + ow (ow < W are real, the two others are discarded) reads
/// tap (ki, kj) at q + ki·Wp + kj: every tap is a contiguous, shifted run of the padded plane,
/// so the inner loops are unit-stride vector loads and FMAs, with no im2col copy (9× the input)
/// and no packing of the GEMM operands. Three products share the layout:
///  - forward: register tiles of 8 output channels × NV·lanes positions, summed over Cin·9 taps;
///  - input gradient: the same kernel on dy with the flipped, transposed weights (a stride-1
///    3×3 convolution with padding 1 is its own adjoint up to that permutation);
///  - weight gradient: dW[co, ci, t] = Σ_q dy[co, q]·x̃[ci, q + off_t], three output channels ×
///    nine taps of dot products accumulated over a group of samples, then reduced.
/// Vectors are the 64-byte vector extensions of simd.hpp. Work is split over samples; the
/// weight gradient's per-thread partial sums are added in thread order, so results are
/// deterministic for a given thread count.

#include "ltlearn/backends/cpu/conv/kernel_args.hpp"
#include "ltlearn/backends/cpu/simd.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

// 64-byte vectors passed by value between these inline helpers: GCC's note that their ABI
// differs without AVX-512 (-Wpsabi) concerns only non-inline interfaces.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace ltl::detail::direct3x3 {

using ltl::detail::load;
using ltl::detail::simd;

/// Output channels per register tile.
inline constexpr int tile_rows = 8;

/// Sum of per-thread partial buffers (undefined ones skipped) in thread order, so a reduction
/// is deterministic for a given thread count; zeros of `empty` when every part is undefined.
template <class T>
cpu::host_tensor<T> sum_in_thread_order(std::vector<cpu::host_tensor<T>>& partial, const shape& empty) {
  cpu::host_tensor<T> total;
  for (auto& p : partial) {
    if (!p.defined()) continue;
    if (!total.defined()) {
      total = std::move(p);
    } else {
      T* a = total.data();
      const T* b = p.data();
      for (index_t i = 0; i < total.numel(); ++i) a[i] += b[i];
    }
  }
  return total.defined() ? total : cpu::host_tensor<T>::zeros(empty);
}

/// Geometry of one sample on the padded grid.
struct grid {
  index_t h, w;   ///< real plane
  index_t wp;     ///< padded width W + 2
  index_t q;      ///< grid positions holding outputs: H·Wp
  index_t qr;     ///< q rounded up to whole tiles of nv·lanes
  index_t len;    ///< stride between padded channel planes (≥ qr + 2·Wp + 2: the farthest tap read)
  int nv;         ///< vectors per tile row
};

/// Picks the tile width (1–3 vectors) that wastes the fewest positions, preferring wide tiles.
inline grid make_grid(index_t h, index_t w, int lanes) {
  grid g{h, w, w + 2, h * (w + 2), 0, 0, 1};
  double best = 1e300;
  for (int nv = 3; nv >= 1; --nv) {
    const index_t nb = nv * lanes, qr = (g.q + nb - 1) / nb * nb;
    const double cost = static_cast<double>(qr) * (1.0 + 0.08 * (3 - nv));  // narrow tiles reuse loads less
    if (cost < best) best = cost, g.nv = nv, g.qr = qr;
  }
  g.len = (g.qr + 2 * g.wp + 2 + lanes - 1) / lanes * lanes;
  return g;
}

/// dst[0, n) = src[0, n). Rows here are 7–32 elements, too short for a memcpy call to pay off
/// (and compilers turn a plain copy loop back into one): whole vectors, then fixed-size pieces.
template <class T>
inline void copy_row(const T* src, T* dst, index_t n) noexcept {
  constexpr index_t L = simd<T>::lanes;
  index_t j = 0;
  for (; j + L <= n; j += L) std::memcpy(dst + j, src + j, L * sizeof(T));
  for (index_t piece = L / 2; piece >= 1; piece /= 2)
    if ((n - j) & piece) {
      switch (piece) {  // constant sizes, so each copy is inlined
        case 8: std::memcpy(dst + j, src + j, 8 * sizeof(T)); break;
        case 4: std::memcpy(dst + j, src + j, 4 * sizeof(T)); break;
        case 2: std::memcpy(dst + j, src + j, 2 * sizeof(T)); break;
        default: std::memcpy(dst + j, src + j, sizeof(T)); break;
      }
      j += piece;
    }
}

/// Copies x [C, H, W] into the interiors of the padded planes xp [C, len] (borders stay zero).
template <class T>
void pad_planes(const T* x, T* xp, index_t c, const grid& g) {
  for (index_t ch = 0; ch < c; ++ch)
    for (index_t i = 0; i < g.h; ++i) copy_row(x + (ch * g.h + i) * g.w, xp + ch * g.len + (i + 1) * g.wp + 1, g.w);
}

/// Tap t of the 3×3 kernel from input channel ci to output row r: weight[r, ci, t], or with
/// `adjoint` (the input gradient's flipped, transposed kernel) weight[ci, r, 8 − t]; weight is
/// [A, B, 3, 3] contiguous.
template <class T>
inline T kernel_tap(const T* weight, index_t b, index_t r, index_t ci, int t, bool adjoint) noexcept {
  return adjoint ? weight[(ci * b + r) * 9 + (8 - t)] : weight[(r * b + ci) * 9 + t];
}

/// Packs weights in blocks of `width` output rows: wp[block][ci][t][r] = kernel_tap(r = block·
/// width + r', ci, t), zero for rows past `rows` (rows = B with `adjoint`, else A). The row
/// kernel uses tile_rows, the channel-vectorised kernel CV vectors.
template <class T>
std::vector<T> pack_weights(const T* weight, index_t a, index_t b, bool adjoint, index_t width = tile_rows) {
  const index_t rows = adjoint ? b : a, cin = adjoint ? a : b;
  const index_t blocks = (rows + width - 1) / width;
  std::vector<T> wp(static_cast<std::size_t>(blocks * cin * 9 * width), T(0));
  for (index_t r = 0; r < rows; ++r)
    for (index_t ci = 0; ci < cin; ++ci)
      for (int t = 0; t < 9; ++t)
        wp[static_cast<std::size_t>((((r / width) * cin + ci) * 9 + t) * width + r % width)] =
            kernel_tap(weight, b, r, ci, t, adjoint);
  return wp;
}

/// out[r][j] (r < 8, j < NV·lanes, row stride `os`) = Σ_ci Σ_t w[ci][t][r]·xp[ci·len + off[t] + j].
template <class T, int NV>
void tile(const T* xp, index_t len, index_t cin, const T* w, const index_t* off, T* out, index_t os) {
  using V = typename simd<T>::type;
  constexpr int L = simd<T>::lanes;
  V acc[tile_rows][NV] = {};
  for (index_t ci = 0; ci < cin; ++ci) {
    const T* xc = xp + ci * len;
    const T* wc = w + ci * 9 * tile_rows;
    for (int t = 0; t < 9; ++t) {
      V b[NV];
      for (int j = 0; j < NV; ++j) b[j] = load(xc + off[t] + j * L);
      for (int r = 0; r < tile_rows; ++r) {
        const T a = wc[t * tile_rows + r];
        for (int j = 0; j < NV; ++j) acc[r][j] += a * b[j];
      }
    }
  }
  for (int r = 0; r < tile_rows; ++r)
    for (int j = 0; j < NV; ++j) store(out + r * os + j * L, acc[r][j]);
}

/// One sample: y [rows, H, W] = epilogue(conv) from padded planes xp [cin, len] and packed
/// weights; `res` is the sample's residual (if the epilogue has one). `yg` is scratch of 8 × qr.
template <class T>
void sample_forward(const T* xp, index_t cin, const T* wpk, index_t rows, const conv_epilogue<T>& ep, const T* res,
                    T* y, T* yg, const grid& g) {
  constexpr int L = simd<T>::lanes;
  index_t off[9];
  for (int t = 0; t < 9; ++t) off[t] = (t / 3) * g.wp + t % 3;
  const index_t nb = g.nv * L, plane = g.h * g.w;
  for (index_t r0 = 0; r0 < rows; r0 += tile_rows) {
    const T* wb = wpk + (r0 / tile_rows) * cin * 9 * tile_rows;
    for (index_t q0 = 0; q0 < g.qr; q0 += nb) {
      switch (g.nv) {
        case 3: tile<T, 3>(xp + q0, g.len, cin, wb, off, yg + q0, g.qr); break;
        case 2: tile<T, 2>(xp + q0, g.len, cin, wb, off, yg + q0, g.qr); break;
        default: tile<T, 1>(xp + q0, g.len, cin, wb, off, yg + q0, g.qr); break;
      }
    }
    const index_t nr = std::min<index_t>(tile_rows, rows - r0);
    for (index_t r = 0; r < nr; ++r) {
      const T* src = yg + r * g.qr;
      T* dst = y + (r0 + r) * plane;
      const T* rr = res ? res + (r0 + r) * plane : nullptr;
      if (!ep.shift && !ep.scale && !rr && !ep.relu) {
        for (index_t i = 0; i < g.h; ++i) copy_row(src + i * g.wp, dst + i * g.w, g.w);
      } else {
        for (index_t i = 0; i < g.h; ++i)
          ep.store(dst + i * g.w, src + i * g.wp, 1, g.w, r0 + r, rr ? rr + i * g.w : nullptr);
      }
    }
  }
}

/// Output channels per weight-gradient tile: 3 × 9 accumulators fill 27 of 32 vector registers.
inline constexpr int wgrad_rows_max = 3;

/// acc[R][9] += Σ over the group's samples and grid positions of dy rows × shifted x plane.
template <class T, int R>
void wgrad_rows(const T* dy, index_t dy_sample, index_t qr, const T* xc, index_t x_sample, index_t group,
                const index_t* off, T* dw /* R rows of stride `dws`, 9 taps */, index_t dws) {
  using V = typename simd<T>::type;
  constexpr int L = simd<T>::lanes;
  V acc[R][9] = {};
  for (index_t s = 0; s < group; ++s) {
    const T* d = dy + s * dy_sample;
    const T* x = xc + s * x_sample;
    for (index_t q = 0; q < qr; q += L) {
      V a[R];
      for (int r = 0; r < R; ++r) a[r] = load(d + r * qr + q);
      for (int t = 0; t < 9; ++t) {
        const V b = load(x + q + off[t]);
        for (int r = 0; r < R; ++r) acc[r][t] += a[r] * b;
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < 9; ++t) {
      T s = 0;
      for (int l = 0; l < L; ++l) s += acc[r][t][l];
      dw[r * dws + t] += s;
    }
}

}  // namespace ltl::detail::direct3x3

namespace ltl::cpu::direct3x3 {

namespace d3 = ltl::detail::direct3x3;

/// y [N, rows, H, W] = epilogue(conv3x3(x [N, cin, H, W])), stride 1: the forward pass
/// (rows = Cout) and the input gradient (`adjoint`: x = dy, rows = Cin, no epilogue). The
/// weights are packed (pack_weights) once per call.
template <class T, class ForEachChunk>
void run(const ltl::detail::conv3x3_args<T>& args, ForEachChunk&& for_each_chunk) {
  const auto wpk = d3::pack_weights(args.weight, args.weight_out, args.weight_in, args.adjoint);
  const T* x = args.input;
  const index_t n = args.samples, cin = args.in_channels, h = args.height, w = args.width, rows = args.out_channels;
  const ltl::detail::conv_epilogue<T>& ep = args.epilogue;
  T* y = args.output;
  const d3::grid g = d3::make_grid(h, w, d3::simd<T>::lanes);
  for_each_chunk(n, [&](int, index_t n0, index_t n1) {
    host_tensor<T> xp = host_tensor<T>::zeros(shape{cin * g.len});
    host_tensor<T> yg(shape{d3::tile_rows * g.qr});
    for (index_t s = n0; s < n1; ++s) {
      d3::pad_planes(x + s * cin * h * w, xp.data(), cin, g);
      const index_t at = s * rows * h * w;
      d3::sample_forward(xp.data(), cin, wpk.data(), rows, ep, ep.residual ? ep.residual + at : nullptr, y + at,
                         yg.data(), g);
    }
  });
}

/// dW [cout, cin·9] (added into each thread's zeroed partial, then summed in thread order)
/// from dy [N, cout, H, W] and x [N, cin, H, W], stride 1.
template <class T, class ForEachChunk>
host_tensor<T> weight_grad(const ltl::detail::conv3x3_weight_grad_args<T>& args, ForEachChunk&& for_each_chunk) {
  const T* dy = args.dy;
  const T* x = args.x;
  const index_t n = args.samples, cin = args.in_channels, cout = args.out_channels, h = args.height, w = args.width;
  const int threads = args.threads;
  constexpr int L = d3::simd<T>::lanes;
  const d3::grid g = d3::make_grid(h, w, L);
  index_t off[9];
  for (int t = 0; t < 9; ++t) off[t] = (t / 3) * g.wp + t % 3;
  // Samples per group: enough grid positions per reduction to amortise the horizontal sums.
  const index_t group_max = std::max<index_t>(1, 4096 / g.qr);
  std::vector<host_tensor<T>> partial(static_cast<std::size_t>(std::max(threads, 1)));
  for_each_chunk(n, [&](int tid, index_t n0, index_t n1) {
    const index_t gcap = std::min(group_max, n1 - n0);
    host_tensor<T> xp = host_tensor<T>::zeros(shape{gcap * cin * g.len});
    host_tensor<T> dg = host_tensor<T>::zeros(shape{gcap * cout * g.qr});
    host_tensor<T> dw = host_tensor<T>::zeros(shape{cout, cin * 9});
    for (index_t s0 = n0; s0 < n1; s0 += gcap) {
      const index_t gs = std::min(gcap, n1 - s0);
      for (index_t s = 0; s < gs; ++s) {
        d3::pad_planes(x + (s0 + s) * cin * h * w, xp.data() + s * cin * g.len, cin, g);
        T* dgs = dg.data() + s * cout * g.qr;  // dy on the grid: discarded columns stay zero
        const T* src = dy + (s0 + s) * cout * h * w;
        for (index_t co = 0; co < cout; ++co)
          for (index_t i = 0; i < g.h; ++i) d3::copy_row(src + (co * h + i) * w, dgs + co * g.qr + i * g.wp, w);
      }
      for (index_t ci = 0; ci < cin; ++ci) {
        const T* xc = xp.data() + ci * g.len;
        for (index_t co = 0; co < cout; co += d3::wgrad_rows_max) {
          T* out = dw.data() + co * cin * 9 + ci * 9;
          const T* d = dg.data() + co * g.qr;
          switch (std::min<index_t>(d3::wgrad_rows_max, cout - co)) {
            case 3: d3::wgrad_rows<T, 3>(d, cout * g.qr, g.qr, xc, cin * g.len, gs, off, out, cin * 9); break;
            case 2: d3::wgrad_rows<T, 2>(d, cout * g.qr, g.qr, xc, cin * g.len, gs, off, out, cin * 9); break;
            default: d3::wgrad_rows<T, 1>(d, cout * g.qr, g.qr, xc, cin * g.len, gs, off, out, cin * 9); break;
          }
        }
      }
    }
    partial[static_cast<std::size_t>(tid)] = std::move(dw);
  });
  return d3::sum_in_thread_order(partial, shape{cout, cin * 9});
}

}  // namespace ltl::cpu::direct3x3

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
