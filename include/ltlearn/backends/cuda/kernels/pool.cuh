#pragma once
/// \file
/// CUDA kernels of 2-D max/average pooling and global average pooling over contiguous
/// x [N, C, H, W] (planes numbered n·C + c). Needs nvcc.
///
/// The window arithmetic lives in pool_dims, callable from host and device, so host tests run
/// it against backends/cpu/pool.hpp. No kernel scatters with atomics:
///  - forwards run one thread per output element, each reading its window as the CPU does;
///  - avg_pool2d's backward runs one thread per input element, gathering the windows that
///    cover it in increasing (oh, ow) order — the order in which the CPU's scatter adds them,
///    so dx is the CPU's bit for bit;
///  - max_pool2d's backward (given only the argmax indices, not the window geometry) runs one
///    thread per plane, adding dy into its plane in output order, again the CPU's order.

#include "ltlearn/backends/cuda/kernels/block.cuh"

#include <cstdint>

namespace ltl::cuda::kernels {

/// Validated pooling geometry in plain integers (pool2d_geometry without pair2d).
struct pool_dims {
  index_t planes, h, w, ho, wo, kh, kw, sh, sw, ph, pw;

  /// Input rows [h0, h1) of output row oh (clipped to the input).
  __host__ __device__ void rows(index_t oh, index_t& h0, index_t& h1) const {
    h0 = max_of<index_t>(0, oh * sh - ph);
    h1 = min_of(h, oh * sh - ph + kh);
  }
  /// Input columns [w0, w1) of output column ow.
  __host__ __device__ void cols(index_t ow, index_t& w0, index_t& w1) const {
    w0 = max_of<index_t>(0, ow * sw - pw);
    w1 = min_of(w, ow * sw - pw + kw);
  }
  /// Output rows [o0, o1) whose windows contain input row ih (empty when none does).
  __host__ __device__ void covering_rows(index_t ih, index_t& o0, index_t& o1) const {
    covering(ih, ph, kh, sh, ho, o0, o1);
  }
  /// Output columns [o0, o1) whose windows contain input column iw.
  __host__ __device__ void covering_cols(index_t iw, index_t& o0, index_t& o1) const {
    covering(iw, pw, kw, sw, wo, o0, o1);
  }

 private:
  // Window o spans [o·s − p, o·s − p + k): it holds i iff i + p − k < o·s ≤ i + p.
  __host__ __device__ static void covering(index_t i, index_t p, index_t k, index_t s, index_t count, index_t& o0,
                                           index_t& o1) {
    const index_t lo = i + p - k + 1;  // smallest o·s allowed
    o0 = lo <= 0 ? 0 : (lo + s - 1) / s;
    o1 = min_of(count, (i + p) / s + 1);
    if (o1 < o0) o1 = o0;
  }
};

/// Max over output (oh, ow)'s window of plane `src`: the CPU's scan (first maximum wins, the
/// first NaN wins and ends the scan). Returns the value; `best_i` gets its index ih·W + iw.
template <class T>
__host__ __device__ T max_window(const T* src, const pool_dims& g, index_t oh, index_t ow, std::int64_t& best_i) {
  index_t h0, h1, w0, w1;
  g.rows(oh, h0, h1);
  g.cols(ow, w0, w1);
  index_t bi = h0 * g.w + w0;
  T best = src[bi];
  for (index_t ih = h0; ih < h1 && !is_nan(best); ++ih) {
    for (index_t iw = w0; iw < w1; ++iw) {
      const T v = src[ih * g.w + iw];
      if (v > best || is_nan(v)) {
        best = v;
        bi = ih * g.w + iw;
        if (is_nan(v)) break;
      }
    }
  }
  best_i = bi;
  return best;
}

/// Mean over output (oh, ow)'s window, padding counted (divisor KH·KW), summed in double.
template <class T>
__host__ __device__ T avg_window(const T* src, const pool_dims& g, index_t oh, index_t ow, double inv_area) {
  index_t h0, h1, w0, w1;
  g.rows(oh, h0, h1);
  g.cols(ow, w0, w1);
  double s = 0;
  for (index_t ih = h0; ih < h1; ++ih)
    for (index_t iw = w0; iw < w1; ++iw) s += static_cast<double>(src[ih * g.w + iw]);
  return static_cast<T>(s * inv_area);
}

/// avg_pool2d's input gradient at (ih, iw) of plane `dy`: Σ dy[window]·(1/area) over the
/// windows covering it, in increasing (oh, ow) order, each term rounded as the CPU rounds it.
template <class T>
__host__ __device__ T avg_window_grad(const T* dy, const pool_dims& g, index_t ih, index_t iw, T inv_area) {
  index_t r0, r1, c0, c1;
  g.covering_rows(ih, r0, r1);
  g.covering_cols(iw, c0, c1);
  T acc = T(0);
  for (index_t oh = r0; oh < r1; ++oh)
    for (index_t ow = c0; ow < c1; ++ow) acc += mul_rn(dy[oh * g.wo + ow], inv_area);
  return acc;
}

template <class T>
__global__ void max_pool_forward(const T* __restrict__ x, T* __restrict__ y, std::int64_t* __restrict__ idx,
                                 pool_dims g) {
  const index_t plane = g.ho * g.wo;
  LTL_CUDA_GRID_STRIDE(e, g.planes * plane) {
    const index_t pl = e / plane, o = e % plane;
    y[e] = max_window(x + pl * g.h * g.w, g, o / g.wo, o % g.wo, idx[e]);
  }
}

/// One thread per plane: dx[plane][idx[o]] += dy[o] for o in output order (dx zeroed first).
template <class T>
__global__ void max_pool_backward(const T* __restrict__ dy, const std::int64_t* __restrict__ idx,
                                  T* __restrict__ dx, index_t planes, index_t in_plane, index_t out_plane) {
  LTL_CUDA_GRID_STRIDE(pl, planes) {
    T* d = dx + pl * in_plane;
    for (index_t o = 0; o < out_plane; ++o) d[idx[pl * out_plane + o]] += dy[pl * out_plane + o];
  }
}

template <class T>
__global__ void avg_pool_forward(const T* __restrict__ x, T* __restrict__ y, pool_dims g, double inv_area) {
  const index_t plane = g.ho * g.wo;
  LTL_CUDA_GRID_STRIDE(e, g.planes * plane) {
    const index_t pl = e / plane, o = e % plane;
    y[e] = avg_window(x + pl * g.h * g.w, g, o / g.wo, o % g.wo, inv_area);
  }
}

template <class T>
__global__ void avg_pool_backward(const T* __restrict__ dy, T* __restrict__ dx, pool_dims g, T inv_area) {
  const index_t plane = g.h * g.w;
  LTL_CUDA_GRID_STRIDE(e, g.planes * plane) {
    const index_t pl = e / plane, i = e % plane;
    dx[e] = avg_window_grad(dy + pl * g.ho * g.wo, g, i / g.w, i % g.w, inv_area);
  }
}

/// Mean of plane pl (hw values), in double in index order: one thread per plane.
template <class T>
__global__ void global_avg_forward(const T* __restrict__ x, T* __restrict__ y, index_t planes, index_t hw) {
  LTL_CUDA_GRID_STRIDE(pl, planes) {
    double s = 0;
    for (index_t j = 0; j < hw; ++j) s += static_cast<double>(x[pl * hw + j]);
    y[pl] = static_cast<T>(s / static_cast<double>(hw));
  }
}

/// Mean of plane pl for long planes: one block per plane, block_sum over its threads.
template <class T>
__global__ void global_avg_forward_block(const T* __restrict__ x, T* __restrict__ y, index_t planes, index_t hw) {
  __shared__ double scratch[block_size];
  for (index_t pl = blockIdx.x; pl < planes; pl += gridDim.x) {
    double s = 0;
    for (index_t j = threadIdx.x; j < hw; j += block_size) s += static_cast<double>(x[pl * hw + j]);
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) y[pl] = static_cast<T>(s / static_cast<double>(hw));
  }
}

/// dx[e] = dy[plane of e]·(1/HW).
template <class T>
__global__ void global_avg_backward(const T* __restrict__ dy, T* __restrict__ dx, index_t total, index_t hw, T inv) {
  LTL_CUDA_GRID_STRIDE(e, total) dx[e] = mul_rn(dy[e / hw], inv);
}

}  // namespace ltl::cuda::kernels
