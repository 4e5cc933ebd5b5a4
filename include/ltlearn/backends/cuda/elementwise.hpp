#pragma once
/// \file
/// CUDA elementwise kernels with the names and signatures of the contract's elementwise_kernels
/// (backends/contract/kernels.hpp):
/// the op layer and the autograd engine reach them by argument-dependent lookup on
/// `tensor<T, cuda::device>`. Also the `fill_device` / `strided_copy` hooks tensor.hpp calls
/// for non-host devices. Needs nvcc: include it (through <ltlearn/cuda.hpp>) from .cu files.
///
/// Broadcasting follows NumPy, as on the CPU; results are new contiguous tensors.

#include "ltlearn/backends/contract/broadcast.hpp"
#include "ltlearn/backends/cuda/context.hpp"
#include "ltlearn/backends/cuda/device.hpp"
#include "ltlearn/backends/cuda/kernels/elementwise.cuh"
#include "ltlearn/tensor/tensor.hpp"
#include "ltlearn/backends/cuda/op_scope.hpp"

namespace ltl::cuda {

/// A tensor in CUDA device memory.
template <class T>
using device_tensor = tensor<T, device>;

/// out[i] = f(x[i]) into a new contiguous tensor. `f` must be callable in device code: a
/// struct with a `__device__` call operator (or an `__device__` lambda with --extended-lambda).
template <class T, class F>
device_tensor<T> map(const device_tensor<T>& x, F f) {
  device_tensor<T> out(x.sizes());
  const index_t n = x.numel();
  if (n == 0) return out;
  const cudaStream_t s = context::current().stream();
  if (x.is_contiguous()) {
    kernels::map_contiguous<<<kernels::grid_for(n), kernels::block_size, 0, s>>>(x.data(), out.data(), n, f);
  } else {
    const auto sp = kernels::make_space<1>(x.sizes(), {x.strides()});
    kernels::map_strided<<<kernels::grid_for(n), kernels::block_size, 0, s>>>(x.data(), sp, out.data(), n, f);
  }
  detail::check_launch("map");
  return out;
}

/// out = f(a, b) with broadcasting, into a new contiguous tensor. `op` names the caller in errors.
template <class T, class F>
device_tensor<T> zip(const device_tensor<T>& a, const device_tensor<T>& b, F f, const char* op) {
  const shape sh = broadcast_shapes(a.sizes(), b.sizes(), op);
  device_tensor<T> out(sh);
  const index_t n = out.numel();
  if (n == 0) return out;
  const cudaStream_t s = context::current().stream();
  if (a.sizes() == sh && b.sizes() == sh && a.is_contiguous() && b.is_contiguous()) {
    kernels::zip_contiguous<<<kernels::grid_for(n), kernels::block_size, 0, s>>>(a.data(), b.data(), out.data(),
                                                                                  n, f);
  } else {
    const auto sp = kernels::make_space<2>(sh, {a.expand(sh).strides(), b.expand(sh).strides()});
    kernels::zip_strided<<<kernels::grid_for(n), kernels::block_size, 0, s>>>(a.data(), b.data(), sp, out.data(),
                                                                               n, f);
  }
  detail::check_launch(op);
  return out;
}

/// dst[i] = f(dst[i], src[i]) in place; `src` broadcasts to dst's shape.
template <class T, class F>
void update(device_tensor<T>& dst, const device_tensor<T>& src, F f, const char* op) {
  LTL_CHECK(broadcast_shapes(dst.sizes(), src.sizes(), op) == dst.sizes(), shape_error,
            "{}: cannot broadcast {} into {}", op, src.sizes(), dst.sizes());
  const index_t n = dst.numel();
  if (n == 0) return;
  const auto sp = kernels::make_space<2>(dst.sizes(), {dst.strides(), src.expand(dst.sizes()).strides()});
  kernels::update_strided<<<kernels::grid_for(n), kernels::block_size, 0, context::current().stream()>>>(
      dst.data(), src.data(), sp, n, f);
  detail::check_launch(op);
}

// Named kernels: same names and signatures as ltl::cpu.

template <class T>
device_tensor<T> add(const device_tensor<T>& a, const device_tensor<T>& b) {
  const op_scope scope("add", a, b);
  return cuda::zip(a, b, kernels::plus{}, "add");
}
template <class T>
device_tensor<T> sub(const device_tensor<T>& a, const device_tensor<T>& b) {
  const op_scope scope("sub", a, b);
  return cuda::zip(a, b, kernels::minus{}, "sub");
}
template <class T>
device_tensor<T> mul(const device_tensor<T>& a, const device_tensor<T>& b) {
  const op_scope scope("mul", a, b);
  return cuda::zip(a, b, kernels::multiplies{}, "mul");
}
template <class T>
device_tensor<T> div(const device_tensor<T>& a, const device_tensor<T>& b) {
  const op_scope scope("div", a, b);
  return cuda::zip(a, b, kernels::divides{}, "div");
}
/// dst += src (src broadcasts into dst).
template <class T>
void accumulate(device_tensor<T>& dst, const device_tensor<T>& src) {
  const op_scope scope("accumulate", dst, src);
  cuda::update(dst, src, kernels::plus{}, "accumulate");
}
/// y = alpha * x + beta
template <class T>
device_tensor<T> affine(const device_tensor<T>& x, T alpha, T beta) {
  const op_scope scope("affine", x);
  return cuda::map(x, kernels::affine_fn<T>{alpha, beta});
}
template <class T>
device_tensor<T> relu_forward(const device_tensor<T>& x) {
  const op_scope scope("relu_forward", x);
  return cuda::map(x, kernels::relu_fn{});
}
/// dx = dy where y > 0 (y is relu's output).
template <class T>
device_tensor<T> relu_backward(const device_tensor<T>& dy, const device_tensor<T>& y) {
  const op_scope scope("relu_backward", dy, y);
  return cuda::zip(dy, y, kernels::relu_grad_fn{}, "relu_backward");
}
/// e^x
template <class T>
device_tensor<T> exp_forward(const device_tensor<T>& x) {
  const op_scope scope("exp_forward", x);
  return cuda::map(x, kernels::exp_fn{});
}
/// Natural logarithm (no clamping, as on the CPU).
template <class T>
device_tensor<T> log_forward(const device_tensor<T>& x) {
  const op_scope scope("log_forward", x);
  return cuda::map(x, kernels::log_fn{});
}
/// x^p
template <class T>
device_tensor<T> pow_forward(const device_tensor<T>& x, T p) {
  const op_scope scope("pow_forward", x);
  return cuda::map(x, kernels::pow_fn<T>{p});
}
/// dx = dy·p·x^(p−1) (x is pow's input).
template <class T>
device_tensor<T> pow_backward(const device_tensor<T>& dy, const device_tensor<T>& x, T p) {
  const op_scope scope("pow_backward", dy, x);
  return cuda::zip(dy, x, kernels::pow_grad_fn<T>{p}, "pow_backward");
}
/// max(x, 0) + slope·min(x, 0)
template <class T>
device_tensor<T> leaky_relu_forward(const device_tensor<T>& x, T slope) {
  const op_scope scope("leaky_relu_forward", x);
  return cuda::map(x, kernels::leaky_relu_fn<T>{slope});
}
/// dx = dy where x > 0, slope·dy elsewhere (x is leaky_relu's input).
template <class T>
device_tensor<T> leaky_relu_backward(const device_tensor<T>& dy, const device_tensor<T>& x, T slope) {
  const op_scope scope("leaky_relu_backward", dy, x);
  return cuda::zip(dy, x, kernels::leaky_relu_grad_fn<T>{slope}, "leaky_relu_backward");
}

/// Sets every element of the (possibly strided) view `t` to `value`. Called by tensor::fill_.
template <class T>
void fill_device(device_tensor<T>& t, T value) {
  const op_scope scope("fill_device", t);
  const index_t n = t.numel();
  if (n == 0) return;
  const auto sp = kernels::make_space<1>(t.sizes(), {t.strides()});
  kernels::fill_strided<<<kernels::grid_for(n), kernels::block_size, 0, context::current().stream()>>>(t.data(), sp,
                                                                                                        n, value);
  detail::check_launch("fill_");
}

/// dst = src elementwise for views of one shape with any strides (src may be a stride-0
/// broadcast). Called by tensor::copy_ when either side is not contiguous.
template <class T>
void strided_copy(device_tensor<T>& dst, const device_tensor<T>& src) {
  const op_scope scope("strided_copy", dst, src);
  LTL_CHECK(dst.sizes() == src.sizes(), shape_error, "copy_: source shape {} differs from destination {}",
            src.sizes(), dst.sizes());
  const index_t n = dst.numel();
  if (n == 0) return;
  const auto sp = kernels::make_space<2>(dst.sizes(), {dst.strides(), src.strides()});
  kernels::copy_strided<<<kernels::grid_for(n), kernels::block_size, 0, context::current().stream()>>>(
      dst.data(), src.data(), sp, n);
  detail::check_launch("copy_");
}

}  // namespace ltl::cuda
