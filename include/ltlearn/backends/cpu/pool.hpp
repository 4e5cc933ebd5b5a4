#pragma once
/// \file
/// 2-D max/average pooling and global average pooling on the CPU (options, geometry and result
/// types: backends/contract/pool.hpp).
///
/// Shapes: x [N, C, H, W] → y [N, C, Ho, Wo] with Ho = (H + 2·ph − KH) / sh + 1 (floor mode),
/// global pooling [N, C, H, W] → [N, C]. Max pooling treats padding as −∞ and saves the argmax
/// as an index into the H·W input plane (int64, PyTorch's convention); average pooling counts
/// padded zeros in the divisor (PyTorch's default count_include_pad = true). Every (n, c)
/// plane is independent, so the kernels parallelise over planes.

#include "ltlearn/backends/contract/pool.hpp"
#include "ltlearn/backends/cpu/elementwise.hpp"

#include <cmath>
#include <cstdint>

namespace ltl {

namespace cpu {

namespace pool_detail {
inline index_t plane_grain(index_t work) { return std::max<index_t>(1, parallel_grain / std::max<index_t>(1, work)); }
}  // namespace pool_detail

/// Max pooling of x [N, C, H, W]; NaN propagates as in PyTorch.
template <class T>
max_pool2d_result<T, device> max_pool2d_forward(const host_tensor<T>& x_in, const pool2d_options& opt) {
  const pool2d_geometry g = make_pool2d_geometry(x_in.sizes(), opt, "max_pool2d");
  const host_tensor<T> x = x_in.contiguous();
  max_pool2d_result<T, device> r{host_tensor<T>(g.output_shape()), tensor<std::int64_t, device>(g.output_shape())};
  const T* px = x.data();
  T* py = r.y.data();
  std::int64_t* pi = r.indices.data();
  const index_t in_plane = g.h * g.w, out_plane = g.ho * g.wo;
  parallel_for(
      g.n * g.c,
      [&](index_t b, index_t e) {
        for (index_t pl = b; pl < e; ++pl) {
          const T* src = px + pl * in_plane;
          for (index_t oh = 0; oh < g.ho; ++oh) {
            const index_t h0 = std::max<index_t>(0, oh * g.stride.h - g.padding.h);
            const index_t h1 = std::min(g.h, oh * g.stride.h - g.padding.h + g.kernel.h);
            for (index_t ow = 0; ow < g.wo; ++ow) {
              const index_t w0 = std::max<index_t>(0, ow * g.stride.w - g.padding.w);
              const index_t w1 = std::min(g.w, ow * g.stride.w - g.padding.w + g.kernel.w);
              // The window holds at least one real element (padding ≤ kernel / 2); start from it.
              index_t best_i = h0 * g.w + w0;
              T best = src[best_i];
              for (index_t ih = h0; ih < h1 && !std::isnan(best); ++ih) {
                for (index_t iw = w0; iw < w1; ++iw) {
                  const T v = src[ih * g.w + iw];
                  if (v > best || std::isnan(v)) {
                    best = v;
                    best_i = ih * g.w + iw;
                    if (std::isnan(v)) break;  // the first NaN wins, as in PyTorch
                  }
                }
              }
              py[pl * out_plane + oh * g.wo + ow] = best;
              pi[pl * out_plane + oh * g.wo + ow] = best_i;
            }
          }
        }
      },
      pool_detail::plane_grain(out_plane * g.kernel.h * g.kernel.w));
  return r;
}

/// Gradient of max pooling: dy [N, C, Ho, Wo] routed to the saved argmax positions of dx [N, C, H, W]
/// (summed where windows overlap).
template <class T>
host_tensor<T> max_pool2d_backward(const host_tensor<T>& dy_in, const tensor<std::int64_t, device>& indices_in,
                                   const shape& x_shape) {
  check_max_pool2d_backward(dy_in.sizes(), indices_in.sizes(), x_shape);
  const host_tensor<T> dy = dy_in.contiguous();
  const tensor<std::int64_t, device> idx = indices_in.contiguous();
  host_tensor<T> dx = host_tensor<T>::zeros(x_shape);
  const index_t in_plane = x_shape[2] * x_shape[3], out_plane = dy.size(2) * dy.size(3);
  const T* pg = dy.data();
  const std::int64_t* pi = idx.data();
  T* pd = dx.data();
  parallel_for(
      dy.size(0) * dy.size(1),
      [&](index_t b, index_t e) {
        for (index_t pl = b; pl < e; ++pl)
          for (index_t o = 0; o < out_plane; ++o) pd[pl * in_plane + pi[pl * out_plane + o]] += pg[pl * out_plane + o];
      },
      pool_detail::plane_grain(out_plane));
  return dx;
}

/// Average pooling of x [N, C, H, W]; the divisor is always KH·KW (padding counts as zeros).
template <class T>
host_tensor<T> avg_pool2d_forward(const host_tensor<T>& x_in, const pool2d_options& opt) {
  const pool2d_geometry g = make_pool2d_geometry(x_in.sizes(), opt, "avg_pool2d");
  const host_tensor<T> x = x_in.contiguous();
  host_tensor<T> y(g.output_shape());
  const T* px = x.data();
  T* py = y.data();
  const index_t in_plane = g.h * g.w, out_plane = g.ho * g.wo;
  const double inv_area = 1.0 / static_cast<double>(g.kernel.h * g.kernel.w);
  parallel_for(
      g.n * g.c,
      [&](index_t b, index_t e) {
        for (index_t pl = b; pl < e; ++pl) {
          const T* src = px + pl * in_plane;
          for (index_t oh = 0; oh < g.ho; ++oh) {
            const index_t h0 = std::max<index_t>(0, oh * g.stride.h - g.padding.h);
            const index_t h1 = std::min(g.h, oh * g.stride.h - g.padding.h + g.kernel.h);
            for (index_t ow = 0; ow < g.wo; ++ow) {
              const index_t w0 = std::max<index_t>(0, ow * g.stride.w - g.padding.w);
              const index_t w1 = std::min(g.w, ow * g.stride.w - g.padding.w + g.kernel.w);
              double s = 0;
              for (index_t ih = h0; ih < h1; ++ih)
                for (index_t iw = w0; iw < w1; ++iw) s += static_cast<double>(src[ih * g.w + iw]);
              py[pl * out_plane + oh * g.wo + ow] = static_cast<T>(s * inv_area);
            }
          }
        }
      },
      pool_detail::plane_grain(out_plane * g.kernel.h * g.kernel.w));
  return y;
}

/// Gradient of average pooling: each dy element spread evenly (÷ KH·KW) over its window.
template <class T>
host_tensor<T> avg_pool2d_backward(const host_tensor<T>& dy_in, const shape& x_shape, const pool2d_options& opt) {
  const pool2d_geometry g = make_pool2d_geometry(x_shape, opt, "avg_pool2d");
  check_avg_pool2d_backward(dy_in.sizes(), g);
  const host_tensor<T> dy = dy_in.contiguous();
  host_tensor<T> dx = host_tensor<T>::zeros(x_shape);
  const T* pg = dy.data();
  T* pd = dx.data();
  const index_t in_plane = g.h * g.w, out_plane = g.ho * g.wo;
  const T inv_area = static_cast<T>(1.0 / static_cast<double>(g.kernel.h * g.kernel.w));
  parallel_for(
      g.n * g.c,
      [&](index_t b, index_t e) {
        for (index_t pl = b; pl < e; ++pl) {
          T* dst = pd + pl * in_plane;
          for (index_t oh = 0; oh < g.ho; ++oh) {
            const index_t h0 = std::max<index_t>(0, oh * g.stride.h - g.padding.h);
            const index_t h1 = std::min(g.h, oh * g.stride.h - g.padding.h + g.kernel.h);
            for (index_t ow = 0; ow < g.wo; ++ow) {
              const index_t w0 = std::max<index_t>(0, ow * g.stride.w - g.padding.w);
              const index_t w1 = std::min(g.w, ow * g.stride.w - g.padding.w + g.kernel.w);
              const T v = pg[pl * out_plane + oh * g.wo + ow] * inv_area;
              for (index_t ih = h0; ih < h1; ++ih)
                for (index_t iw = w0; iw < w1; ++iw) dst[ih * g.w + iw] += v;
            }
          }
        }
      },
      pool_detail::plane_grain(out_plane * g.kernel.h * g.kernel.w));
  return dx;
}

/// Mean of each plane: x [N, C, H, W] → [N, C], accumulated in double.
template <class T>
host_tensor<T> global_avg_pool_forward(const host_tensor<T>& x_in) {
  check_global_avg_pool(x_in.sizes());
  const host_tensor<T> x = x_in.contiguous();
  const index_t planes = x.size(0) * x.size(1), hw = x.size(2) * x.size(3);
  host_tensor<T> y(shape{x.size(0), x.size(1)});
  const T* px = x.data();
  T* py = y.data();
  parallel_for(
      planes,
      [&](index_t b, index_t e) {
        for (index_t pl = b; pl < e; ++pl) {
          double s = 0;
          for (index_t j = 0; j < hw; ++j) s += static_cast<double>(px[pl * hw + j]);
          py[pl] = static_cast<T>(s / static_cast<double>(hw));
        }
      },
      pool_detail::plane_grain(hw));
  return y;
}

/// Gradient of global average pooling: dy [N, C] → dx [N, C, H, W] = dy / (H·W) broadcast.
template <class T>
host_tensor<T> global_avg_pool_backward(const host_tensor<T>& dy_in, const shape& x_shape) {
  check_global_avg_pool_backward(dy_in.sizes(), x_shape);
  const host_tensor<T> dy = dy_in.contiguous();
  host_tensor<T> dx(x_shape);
  const index_t planes = x_shape[0] * x_shape[1], hw = x_shape[2] * x_shape[3];
  const T inv = static_cast<T>(1.0 / static_cast<double>(hw));
  const T* pg = dy.data();
  T* pd = dx.data();
  parallel_for(
      planes,
      [&](index_t b, index_t e) {
        for (index_t pl = b; pl < e; ++pl) std::fill(pd + pl * hw, pd + (pl + 1) * hw, pg[pl] * inv);
      },
      pool_detail::plane_grain(hw));
  return dx;
}

}  // namespace cpu
}  // namespace ltl
