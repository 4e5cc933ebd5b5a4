#pragma once
/// \file
/// CUDA kernels of the contract's pooling_kernels (backends/contract/kernels.hpp): 2-D max and
/// average pooling and global average pooling, forward and backward, with the semantics of
/// backends/cpu/pool.hpp (floor mode, padding as −∞ for max and as zeros counted in the divisor
/// for average, int64 argmax indices into the H·W input plane, first NaN wins). Deterministic,
/// without atomics (kernels/pool.cuh). Needs nvcc: include it (through <ltlearn/cuda.hpp>) from
/// .cu files.

#include "ltlearn/backends/contract/pool.hpp"
#include "ltlearn/backends/cuda/elementwise.hpp"
#include "ltlearn/backends/cuda/kernels/pool.cuh"
#include "ltlearn/backends/cuda/op_scope.hpp"

#include <cstdint>

namespace ltl::cuda {

namespace detail {
inline kernels::pool_dims pool_dims_of(const pool2d_geometry& g) {
  return {g.n * g.c,       g.h,      g.w,      g.ho,     g.wo,     g.kernel.h,
          g.kernel.w,      g.stride.h, g.stride.w, g.padding.h, g.padding.w};
}
}  // namespace detail

/// Max pooling of x [N, C, H, W] → {y [N, C, Ho, Wo], argmax indices [N, C, Ho, Wo]}.
template <class T>
max_pool2d_result<T, device> max_pool2d_forward(const device_tensor<T>& x_in, const pool2d_options& opt) {
  const op_scope scope("max_pool2d_forward", x_in);
  const pool2d_geometry g = make_pool2d_geometry(x_in.sizes(), opt, "max_pool2d");
  max_pool2d_result<T, device> r{device_tensor<T>(g.output_shape()), tensor<std::int64_t, device>(g.output_shape())};
  const index_t total = r.y.numel();
  if (total == 0) return r;
  const device_tensor<T> x = x_in.contiguous();
  kernels::max_pool_forward<<<kernels::grid_for(total), kernels::block_size, 0, context::current().stream()>>>(
      x.data(), r.y.data(), r.indices.data(), detail::pool_dims_of(g));
  detail::check_launch("max_pool2d");
  return r;
}

/// Gradient of max pooling: dy [N, C, Ho, Wo] added at the saved argmax positions of
/// dx [N, C, H, W] (summed where windows overlap, in output order).
template <class T>
device_tensor<T> max_pool2d_backward(const device_tensor<T>& dy_in, const tensor<std::int64_t, device>& indices_in,
                                     const shape& x_shape) {
  const op_scope scope("max_pool2d_backward", dy_in, indices_in);
  check_max_pool2d_backward(dy_in.sizes(), indices_in.sizes(), x_shape);
  device_tensor<T> dx(x_shape);
  if (dx.numel() == 0) return dx;
  dx.zero_();
  const index_t planes = x_shape[0] * x_shape[1], out_plane = dy_in.size(2) * dy_in.size(3);
  if (out_plane == 0) return dx;
  const device_tensor<T> dy = dy_in.contiguous();
  const tensor<std::int64_t, device> idx = indices_in.contiguous();
  kernels::max_pool_backward<<<kernels::grid_for(planes), kernels::block_size, 0, context::current().stream()>>>(
      dy.data(), idx.data(), dx.data(), planes, x_shape[2] * x_shape[3], out_plane);
  detail::check_launch("max_pool2d_backward");
  return dx;
}

/// Average pooling of x [N, C, H, W]; the divisor is always KH·KW.
template <class T>
device_tensor<T> avg_pool2d_forward(const device_tensor<T>& x_in, const pool2d_options& opt) {
  const op_scope scope("avg_pool2d_forward", x_in);
  const pool2d_geometry g = make_pool2d_geometry(x_in.sizes(), opt, "avg_pool2d");
  device_tensor<T> y(g.output_shape());
  const index_t total = y.numel();
  if (total == 0) return y;
  const device_tensor<T> x = x_in.contiguous();
  const double inv_area = 1.0 / static_cast<double>(g.kernel.h * g.kernel.w);
  kernels::avg_pool_forward<<<kernels::grid_for(total), kernels::block_size, 0, context::current().stream()>>>(
      x.data(), y.data(), detail::pool_dims_of(g), inv_area);
  detail::check_launch("avg_pool2d");
  return y;
}

/// Gradient of average pooling: each dy element spread evenly (÷ KH·KW) over its window.
template <class T>
device_tensor<T> avg_pool2d_backward(const device_tensor<T>& dy_in, const shape& x_shape, const pool2d_options& opt) {
  const op_scope scope("avg_pool2d_backward", dy_in);
  const pool2d_geometry g = make_pool2d_geometry(x_shape, opt, "avg_pool2d");
  check_avg_pool2d_backward(dy_in.sizes(), g);
  device_tensor<T> dx(x_shape);
  const index_t total = dx.numel();
  if (total == 0) return dx;
  const device_tensor<T> dy = dy_in.contiguous();
  const T inv_area = static_cast<T>(1.0 / static_cast<double>(g.kernel.h * g.kernel.w));
  kernels::avg_pool_backward<<<kernels::grid_for(total), kernels::block_size, 0, context::current().stream()>>>(
      dy.data(), dx.data(), detail::pool_dims_of(g), inv_area);
  detail::check_launch("avg_pool2d_backward");
  return dx;
}

/// Mean of each plane: x [N, C, H, W] → [N, C], accumulated in double.
template <class T>
device_tensor<T> global_avg_pool_forward(const device_tensor<T>& x_in) {
  const op_scope scope("global_avg_pool_forward", x_in);
  check_global_avg_pool(x_in.sizes());
  const index_t planes = x_in.size(0) * x_in.size(1), hw = x_in.size(2) * x_in.size(3);
  device_tensor<T> y(shape{x_in.size(0), x_in.size(1)});
  if (planes == 0) return y;
  const device_tensor<T> x = x_in.contiguous();
  const cudaStream_t s = context::current().stream();
  if (hw >= kernels::block_line_threshold) {
    kernels::global_avg_forward_block<<<kernels::blocks_for(planes), kernels::block_size, 0, s>>>(x.data(), y.data(),
                                                                                                   planes, hw);
  } else {
    kernels::global_avg_forward<<<kernels::grid_for(planes), kernels::block_size, 0, s>>>(x.data(), y.data(), planes,
                                                                                          hw);
  }
  detail::check_launch("global_avg_pool");
  return y;
}

/// Gradient of global average pooling: dy [N, C] → dx [N, C, H, W] = dy / (H·W) broadcast.
template <class T>
device_tensor<T> global_avg_pool_backward(const device_tensor<T>& dy_in, const shape& x_shape) {
  const op_scope scope("global_avg_pool_backward", dy_in);
  check_global_avg_pool_backward(dy_in.sizes(), x_shape);
  device_tensor<T> dx(x_shape);
  const index_t total = dx.numel(), hw = x_shape[2] * x_shape[3];
  if (total == 0) return dx;
  const device_tensor<T> dy = dy_in.contiguous();
  const T inv = static_cast<T>(1.0 / static_cast<double>(hw));
  kernels::global_avg_backward<<<kernels::grid_for(total), kernels::block_size, 0, context::current().stream()>>>(
      dy.data(), dx.data(), total, hw, inv);
  detail::check_launch("global_avg_pool_backward");
  return dx;
}

}  // namespace ltl::cuda
