#pragma once
/// \file
/// Channel-vectorised direct 3×3 convolution (padding 1, stride 1 or 2) for small output planes
/// and strided layers, where the row-vectorised kernels of direct3x3.hpp lose: on a 7×7 or 8×8
/// plane their padded grid wastes a quarter of every vector, and a stride of 2 breaks their
/// unit-stride runs (the im2col fallback copies 9× the input).
///
/// Here the vector lanes run over output channels: a register tile holds CV vectors of output
/// channels × P output positions, and every (input channel, tap) step loads CV vectors of packed
/// weights and broadcasts P input values. Positions are a list of offsets into the sample's
/// zero-bordered planes (position (i, j) reads tap (ki, kj) at (s·i + ki)·Wp + s·j + kj), so
/// only real outputs are computed, at either stride. Each accumulator sums Σ_ci Σ_t in the same
/// order as direct3x3.hpp's tile, so a stride-1 output is bit-identical to the row kernel's.
/// The same kernel gives a stride-1 layer's input gradient with the adjoint weights, and, phase
/// by phase, a stride-2 layer's; the weight gradient vectorises over output channels too.

#include "ltlearn/backends/cpu/conv/direct3x3.hpp"
#include "ltlearn/backends/cpu/simd.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace ltl::detail::channel_vectorised3x3 {

using ltl::detail::load;
using ltl::detail::simd;
using ltl::detail::store;

/// Output-channel vectors per tile (1, 2 or 4) for `rows` output channels.
template <class T>
constexpr int vectors_for(index_t rows) noexcept {
  const index_t v = (rows + simd<T>::lanes - 1) / simd<T>::lanes;
  return v >= 3 ? 4 : static_cast<int>(v);
}

/// Whether the channel-vectorised gradients pay for `rows` vector-lane channels (input channels
/// of the stride-2 input gradient, output channels of the stride-1 weight gradient): with a
/// single vector the tiles need a load per broadcast, and on ResNet-32's 16-channel layers they
/// measured slower than im2col + GEMM + col2im and the row kernel (benchmarks/README.md).
template <class T>
constexpr bool wide_rows(index_t rows) noexcept {
  return vectors_for<T>(rows) >= 2;
}

/// Positions per tile: CV·P accumulators fill 28 of the 32 vector registers.
template <int CV>
inline constexpr int positions = 28 / CV;

/// Packs weights as wp[block][ci][t][CV·lanes] (direct3x3::pack_weights with blocks of CV
/// vectors of output rows).
template <class T>
std::vector<T> pack_weights(const T* weight, index_t a, index_t b, bool adjoint, int cv) {
  return ltl::detail::direct3x3::pack_weights(weight, a, b, adjoint, cv * simd<T>::lanes);
}

/// out[p][v·lanes + l] = Σ_ci Σ_t w[ci][t][v·lanes + l] · xp[ci·len + off[t] + pos[p]] over NT taps.
template <class T, int CV, int P, int NT = 9>
void tile(const T* xp, index_t len, index_t cin, const T* w, const index_t* off, const index_t* pos, T* out) {
  using V = typename simd<T>::type;
  constexpr int L = simd<T>::lanes;
  V acc[P][CV] = {};
  for (index_t ci = 0; ci < cin; ++ci) {
    const T* xc = xp + ci * len;
    const T* wc = w + ci * NT * CV * L;
    for (int t = 0; t < NT; ++t) {
      V wv[CV];
      for (int v = 0; v < CV; ++v) wv[v] = load(wc + (t * CV + v) * L);
      const T* xt = xc + off[t];
      for (int p = 0; p < P; ++p) {
        const T s = xt[pos[p]];
        for (int v = 0; v < CV; ++v) acc[p][v] += wv[v] * s;
      }
    }
  }
  for (int p = 0; p < P; ++p)
    for (int v = 0; v < CV; ++v) store(out + (p * CV + v) * L, acc[p][v]);
}

/// Geometry of one sample: padded planes and the output positions as offsets into them.
struct layout {
  index_t h, w, wp, len;         ///< input plane, padded width W + 2, padded plane stride
  index_t ho, wo;                ///< output plane
  std::vector<index_t> pos;      ///< padded-plane offset of every output position, padded to whole tiles with 0
};

inline layout make_layout(index_t h, index_t w, index_t stride, int p_tile, int lanes) {
  layout g{h, w, w + 2, 0, (h - 1) / stride + 1, (w - 1) / stride + 1, {}};
  // Planes hold H + 2 rows of Wp; the rounding keeps every plane's start vector-aligned.
  g.len = ((h + 2) * g.wp + lanes - 1) / lanes * lanes;
  const index_t n = g.ho * g.wo, padded = (n + p_tile - 1) / p_tile * p_tile;
  g.pos.assign(static_cast<std::size_t>(padded), 0);
  for (index_t i = 0; i < g.ho; ++i)
    for (index_t j = 0; j < g.wo; ++j) g.pos[static_cast<std::size_t>(i * g.wo + j)] = i * stride * g.wp + j * stride;
  return g;
}

/// Copies x [C, H, W] into the interiors of the padded planes xp [C, len] (borders stay zero).
template <class T>
void pad_planes(const T* x, T* xp, index_t c, const layout& g) {
  for (index_t ch = 0; ch < c; ++ch)
    for (index_t i = 0; i < g.h; ++i)
      ltl::detail::direct3x3::copy_row(x + (ch * g.h + i) * g.w, xp + ch * g.len + (i + 1) * g.wp + 1, g.w);
}

/// One sample: y [rows, Ho, Wo] = epilogue(conv) from padded planes xp [cin, len]; `res` is the
/// sample's residual (if the epilogue has one). `buf` holds P·CV·lanes.
template <class T, int CV>
void sample_forward(const T* xp, index_t cin, const T* wpk, index_t rows, const conv_epilogue<T>& ep, const T* res,
                    T* y, T* buf, const layout& g) {
  constexpr int L = simd<T>::lanes, P = positions<CV>, width = CV * L;
  index_t off[9];
  for (int t = 0; t < 9; ++t) off[t] = (t / 3) * g.wp + t % 3;
  const index_t plane = g.ho * g.wo, npos = static_cast<index_t>(g.pos.size());
  for (index_t r0 = 0; r0 < rows; r0 += width) {
    const T* wb = wpk + (r0 / width) * cin * 9 * width;
    const index_t nr = std::min<index_t>(width, rows - r0);
    for (index_t p0 = 0; p0 < npos; p0 += P) {
      tile<T, CV, P>(xp, g.len, cin, wb, off, g.pos.data() + p0, buf);
      const index_t np = std::min<index_t>(P, plane - p0);
      for (index_t r = 0; r < nr; ++r)
        ep.store(y + (r0 + r) * plane + p0, buf + r, width, np, r0 + r, res ? res + (r0 + r) * plane + p0 : nullptr);
    }
  }
}

/// The input gradient of a stride-2, padding-1 3×3 convolution, split by the parity (pa, pb)
/// of the input position: a = 2u + pa receives tap ki from dy row u when pa = 0 (ki = 1), or
/// u + 1 (ki = 0) and u (ki = 2) when pa = 1; columns likewise. Each of the four phases is a
/// small correlation of the padded dy planes with 1, 2, 2 or 4 taps, so every product is one
/// the gradient needs (no zero-inserted grid), and every dx element is written exactly once.
struct phase {
  int nt = 0;                      ///< taps of this phase
  int ki[4], kj[4];                ///< their kernel positions
  std::vector<index_t> off;        ///< tap offsets into a padded dy plane (row stride Wo + 2)
  std::vector<index_t> pos, out;   ///< per position: padded-plane offset and dx plane index (tiles padded)
};

inline std::vector<phase> stride2_phases(index_t h, index_t w, index_t wop, int p_tile) {
  std::vector<phase> ph;
  for (int pa = 0; pa < 2; ++pa)
    for (int pb = 0; pb < 2; ++pb) {
      phase f;
      const int nr = pa == 0 ? 1 : 2, nc = pb == 0 ? 1 : 2;
      for (int r = 0; r < nr; ++r)
        for (int c = 0; c < nc; ++c) {
          const int ki = pa == 0 ? 1 : (r == 0 ? 0 : 2), kj = pb == 0 ? 1 : (c == 0 ? 0 : 2);
          const int di = pa == 0 ? 0 : (ki == 0 ? 1 : 0), dj = pb == 0 ? 0 : (kj == 0 ? 1 : 0);
          f.ki[f.nt] = ki, f.kj[f.nt] = kj;
          f.off.push_back(di * wop + dj);
          ++f.nt;
        }
      for (index_t a = pa; a < h; a += 2)
        for (index_t b = pb; b < w; b += 2) {
          f.pos.push_back((a / 2 + 1) * wop + (b / 2 + 1));
          f.out.push_back(a * w + b);
        }
      const std::size_t n = f.pos.size(), padded = (n + p_tile - 1) / p_tile * p_tile;
      f.pos.resize(padded, 0);
      ph.push_back(std::move(f));
    }
  return ph;
}

/// Packs a phase's weights as wp[block][co][t][CV·lanes] with row r = input channel:
/// w(r, co, t) = weight[co, r, ki_t, kj_t]; weight is [cout, cin, 3, 3] contiguous.
template <class T>
std::vector<T> pack_phase(const T* weight, index_t cout, index_t cin, const phase& f, int cv) {
  const index_t width = cv * simd<T>::lanes, blocks = (cin + width - 1) / width;
  std::vector<T> wp(static_cast<std::size_t>(blocks * cout * f.nt * width), T(0));
  for (index_t r = 0; r < cin; ++r)
    for (index_t co = 0; co < cout; ++co)
      for (int t = 0; t < f.nt; ++t)
        wp[static_cast<std::size_t>((((r / width) * cout + co) * f.nt + t) * width + r % width)] =
            weight[(co * cin + r) * 9 + f.ki[t] * 3 + f.kj[t]];
  return wp;
}

/// Weight gradient tile: acc[c][t][v] = Σ_samples Σ_p dyT[p][v·lanes + l] · x̃[c][pos[p] + off[t]]
/// for NCI input channels × 9 taps × CV vectors of output channels; no horizontal sums (the
/// lanes are output channels). Adds into out[c][t][CV·lanes].
template <class T, int CV, int NCI>
void wtile(const T* dyt, index_t dyt_row, index_t dyt_sample, const T* xp, index_t len, index_t x_sample,
           index_t group, const index_t* pos, index_t npos, const index_t* off, T* out) {
  using V = typename simd<T>::type;
  constexpr int L = simd<T>::lanes;
  V acc[NCI][9][CV] = {};
  for (index_t s = 0; s < group; ++s) {
    const T* d = dyt + s * dyt_sample;
    const T* x = xp + s * x_sample;
    for (index_t p = 0; p < npos; ++p) {
      V dv[CV];
      for (int v = 0; v < CV; ++v) dv[v] = load(d + p * dyt_row + v * L);
      for (int c = 0; c < NCI; ++c) {
        const T* xc = x + c * len + pos[p];
        for (int t = 0; t < 9; ++t) {
          const T xs = xc[off[t]];
          for (int v = 0; v < CV; ++v) acc[c][t][v] += dv[v] * xs;
        }
      }
    }
  }
  for (int c = 0; c < NCI; ++c)
    for (int t = 0; t < 9; ++t)
      for (int v = 0; v < CV; ++v) {
        T* o = out + (c * 9 + t) * CV * L + v * L;
        store(o, load(o) + acc[c][t][v]);
      }
}

}  // namespace ltl::detail::channel_vectorised3x3

namespace ltl::cpu::channel_vectorised3x3 {

namespace cv3 = ltl::detail::channel_vectorised3x3;

/// y [N, rows, Ho, Wo] = epilogue(conv3x3(x [N, cin, H, W], padding 1, `stride`)), from
/// `weight` [A, B, 3, 3] (forward: A = rows = Cout; with `adjoint`, the input gradient of a
/// stride-1 layer: x = dy, B = rows = Cin, no epilogue). Work is split over samples.
template <class T, class ForEachChunk>
void run(const ltl::detail::conv3x3_args<T>& args, ForEachChunk&& for_each_chunk) {
  const T* x = args.input;
  const T* weight = args.weight;
  const index_t n = args.samples, cin = args.in_channels, h = args.height, w = args.width, stride = args.stride;
  const index_t a = args.weight_out, b = args.weight_in, rows = args.out_channels;
  const bool adjoint = args.adjoint;
  const ltl::detail::conv_epilogue<T>& ep = args.epilogue;
  T* y = args.output;
  constexpr int L = cv3::simd<T>::lanes;
  auto go = [&]<int CV>() {
    const cv3::layout g = cv3::make_layout(h, w, stride, cv3::positions<CV>, L);
    const auto wpk = cv3::pack_weights(weight, a, b, adjoint, CV);
    const index_t out_sample = rows * g.ho * g.wo;
    for_each_chunk(n, [&](int, index_t n0, index_t n1) {
      host_tensor<T> xp = host_tensor<T>::zeros(shape{cin * g.len});
      host_tensor<T> buf(shape{cv3::positions<CV> * CV * L});
      for (index_t s = n0; s < n1; ++s) {
        cv3::pad_planes(x + s * cin * h * w, xp.data(), cin, g);
        const index_t at = s * out_sample;
        cv3::sample_forward<T, CV>(xp.data(), cin, wpk.data(), rows, ep, ep.residual ? ep.residual + at : nullptr,
                                   y + at, buf.data(), g);
      }
    });
  };
  switch (cv3::vectors_for<T>(rows)) {
    case 4: go.template operator()<4>(); break;
    case 2: go.template operator()<2>(); break;
    default: go.template operator()<1>(); break;
  }
}

/// dx [N, cin, H, W] of a 3×3, padding-1, stride-2 convolution from dy [N, cout, Ho, Wo]
/// (args.input) and weight [cout, cin, 3, 3], phase by phase (see
/// detail::channel_vectorised3x3::phase); args.adjoint and the epilogue are not read. Split
/// over samples.
template <class T, class ForEachChunk>
void input_grad_stride2(const ltl::detail::conv3x3_args<T>& args, ForEachChunk&& for_each_chunk) {
  const T* dy = args.input;
  const T* weight = args.weight;
  const index_t n = args.samples, cout = args.weight_out, cin = args.weight_in, h = args.height, w = args.width;
  T* dx = args.output;
  constexpr int L = cv3::simd<T>::lanes;
  const index_t ho = (h - 1) / 2 + 1, wo = (w - 1) / 2 + 1, wop = wo + 2;
  const index_t lenp = ((ho + 2) * wop + L - 1) / L * L;
  auto go = [&]<int CV>() {
    constexpr int P = cv3::positions<CV>, width = CV * L;
    const auto phases = cv3::stride2_phases(h, w, wop, P);
    std::vector<std::vector<T>> packed;
    for (const auto& f : phases) packed.push_back(cv3::pack_phase(weight, cout, cin, f, CV));
    for_each_chunk(n, [&](int, index_t n0, index_t n1) {
      host_tensor<T> dyp = host_tensor<T>::zeros(shape{cout * lenp});
      host_tensor<T> buf(shape{P * width});
      for (index_t s = n0; s < n1; ++s) {
        const T* src = dy + s * cout * ho * wo;
        for (index_t co = 0; co < cout; ++co)
          for (index_t i = 0; i < ho; ++i)
            ltl::detail::direct3x3::copy_row(src + (co * ho + i) * wo, dyp.data() + co * lenp + (i + 1) * wop + 1, wo);
        T* dxs = dx + s * cin * h * w;
        for (std::size_t k = 0; k < phases.size(); ++k) {
          const auto& f = phases[k];
          const index_t npos = static_cast<index_t>(f.out.size());
          for (index_t r0 = 0; r0 < cin; r0 += width) {
            const T* wb = packed[k].data() + (r0 / width) * cout * f.nt * width;
            const index_t nr = std::min<index_t>(width, cin - r0);
            for (index_t p0 = 0; p0 < npos; p0 += P) {
              const index_t* pos = f.pos.data() + p0;
              switch (f.nt) {
                case 1: cv3::tile<T, CV, P, 1>(dyp.data(), lenp, cout, wb, f.off.data(), pos, buf.data()); break;
                case 2: cv3::tile<T, CV, P, 2>(dyp.data(), lenp, cout, wb, f.off.data(), pos, buf.data()); break;
                default: cv3::tile<T, CV, P, 4>(dyp.data(), lenp, cout, wb, f.off.data(), pos, buf.data()); break;
              }
              const index_t np = std::min<index_t>(P, npos - p0);
              for (index_t r = 0; r < nr; ++r) {
                T* dst = dxs + (r0 + r) * h * w;
                const index_t* out = f.out.data() + p0;
                for (index_t p = 0; p < np; ++p) dst[out[p]] = buf.data()[p * width + r];
              }
            }
          }
        }
      }
    });
  };
  switch (cv3::vectors_for<T>(cin)) {
    case 4: go.template operator()<4>(); break;
    case 2: go.template operator()<2>(); break;
    default: go.template operator()<1>(); break;
  }
}

/// dW [cout, cin·9] of a 3×3, padding-1 convolution at `stride` from dy [N, cout, Ho, Wo] and
/// x [N, cin, H, W]. Each thread sums its samples (in groups that stay in cache) into a private
/// buffer; the buffers are added in thread order, so results are deterministic for a given
/// thread count.
template <class T, class ForEachChunk>
host_tensor<T> weight_grad(const ltl::detail::conv3x3_weight_grad_args<T>& args, ForEachChunk&& for_each_chunk) {
  const T* dy = args.dy;
  const T* x = args.x;
  const index_t n = args.samples, cin = args.in_channels, cout = args.out_channels, h = args.height, w = args.width;
  const index_t stride = args.stride;
  const int threads = args.threads;
  constexpr int L = cv3::simd<T>::lanes;
  const int cv = cv3::vectors_for<T>(cout) >= 2 ? 2 : 1;  // 2 × 9 or 1 × 9 × 3 accumulators
  const index_t width = cv * L, rows_pad = (cout + width - 1) / width * width;
  const cv3::layout g = cv3::make_layout(h, w, stride, 1, L);
  const index_t npos = g.ho * g.wo;
  index_t off[9];
  for (int t = 0; t < 9; ++t) off[t] = (t / 3) * g.wp + t % 3;
  // Samples per group: dy (transposed) and padded x of the group within ~512 KiB.
  const index_t per_sample = (npos * rows_pad + cin * g.len) * static_cast<index_t>(sizeof(T));
  const index_t group_max = std::max<index_t>(1, (512 << 10) / per_sample);
  const int nci = cv == 2 ? 1 : 3;
  std::vector<host_tensor<T>> partial(static_cast<std::size_t>(std::max(threads, 1)));
  for_each_chunk(n, [&](int tid, index_t n0, index_t n1) {
    const index_t gcap = std::min(group_max, n1 - n0);
    host_tensor<T> xp = host_tensor<T>::zeros(shape{gcap * cin * g.len});
    host_tensor<T> dyt = host_tensor<T>::zeros(shape{gcap * npos * rows_pad});  // padding rows stay zero
    // acc[ci][t][row] over the whole chunk, transposed into dW at the end.
    host_tensor<T> acc = host_tensor<T>::zeros(shape{cin * 9 * rows_pad});
    for (index_t s0 = n0; s0 < n1; s0 += gcap) {
      const index_t gs = std::min(gcap, n1 - s0);
      for (index_t s = 0; s < gs; ++s) {
        cv3::pad_planes(x + (s0 + s) * cin * h * w, xp.data() + s * cin * g.len, cin, g);
        const T* src = dy + (s0 + s) * cout * npos;
        T* dst = dyt.data() + s * npos * rows_pad;
        for (index_t co = 0; co < cout; ++co)
          for (index_t p = 0; p < npos; ++p) dst[p * rows_pad + co] = src[co * npos + p];
      }
      for (index_t r0 = 0; r0 < rows_pad; r0 += width) {
        const T* d = dyt.data() + r0;
        for (index_t ci = 0; ci < cin; ci += nci) {
          // acc block of (ci, r0): [nci][9][width] at ((r0 / width) · cin + ci) · 9 · width.
          T* out = acc.data() + ((r0 / width) * cin + ci) * 9 * width;
          const T* xc = xp.data() + ci * g.len;
          if (cv == 2) {
            cv3::wtile<T, 2, 1>(d, rows_pad, npos * rows_pad, xc, g.len, cin * g.len, gs, g.pos.data(), npos, off, out);
          } else if (ci + 3 <= cin) {
            cv3::wtile<T, 1, 3>(d, rows_pad, npos * rows_pad, xc, g.len, cin * g.len, gs, g.pos.data(), npos, off, out);
          } else {
            for (index_t c = ci; c < cin; ++c)
              cv3::wtile<T, 1, 1>(d, rows_pad, npos * rows_pad, xp.data() + c * g.len, g.len, cin * g.len, gs,
                                  g.pos.data(), npos, off, out + (c - ci) * 9 * width);
          }
        }
      }
    }
    host_tensor<T> dw(shape{cout, cin * 9});
    for (index_t co = 0; co < cout; ++co)
      for (index_t ci = 0; ci < cin; ++ci)
        for (int t = 0; t < 9; ++t)
          dw.data()[(co * cin + ci) * 9 + t] = acc.data()[(((co / width) * cin + ci) * 9 + t) * width + co % width];
    partial[static_cast<std::size_t>(tid)] = std::move(dw);
  });
  return ltl::detail::direct3x3::sum_in_thread_order(partial, shape{cout, cin * 9});
}

}  // namespace ltl::cpu::channel_vectorised3x3

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
