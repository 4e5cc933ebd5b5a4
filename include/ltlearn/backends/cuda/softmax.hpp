#pragma once
/// \file
/// CUDA kernels of the contract's softmax_kernels (backends/contract/kernels.hpp): softmax,
/// log-softmax and L2 normalisation along one dimension, forward and backward, with the
/// semantics of backends/cpu/softmax.hpp (max subtraction, sums in double, PyTorch's
/// F.normalize clamp rule). Results are new contiguous tensors; inputs of any layout are made
/// contiguous first. Needs nvcc: include it (through <ltlearn/cuda.hpp>) from .cu files.

#include "ltlearn/backends/contract/softmax.hpp"
#include "ltlearn/backends/cuda/elementwise.hpp"
#include "ltlearn/backends/cuda/kernels/softmax.cuh"
#include "ltlearn/backends/cuda/op_scope.hpp"

#include <utility>

namespace ltl::cuda {

namespace detail {
/// Runs line kernel `Op` over the lines of dimension `dim` of `sizes` (one thread per short
/// line, one block per long line). `op` names the caller in launch errors.
template <kernels::line_op Op, class T>
void run_lines(const kernels::line_args<T>& p, const shape& sizes, int dim, const char* op) {
  const kernels::line_space L = kernels::make_line_space(sizes, dim);
  if (L.lines() == 0 || L.n == 0) return;
  const cudaStream_t s = context::current().stream();
  if (L.n >= kernels::block_line_threshold) {
    kernels::lines_per_block<Op><<<kernels::blocks_for(L.lines()), kernels::block_size, 0, s>>>(p, L);
  } else {
    kernels::lines_per_thread<Op><<<kernels::grid_for(L.lines()), kernels::block_size, 0, s>>>(p, L);
  }
  check_launch(op);
}
}  // namespace detail

/// Softmax of x along `dim`: exp(x − max) / Σ exp(x − max).
template <class T>
device_tensor<T> softmax_forward(const device_tensor<T>& x, int dim) {
  const op_scope scope("softmax_forward", x);
  dim = normalize_dim(dim, x.dim(), "softmax");
  const device_tensor<T> xc = x.contiguous();
  device_tensor<T> y(x.sizes());
  detail::run_lines<kernels::line_op::softmax>(kernels::line_args<T>{xc.data(), nullptr, y.data()}, x.sizes(), dim,
                                               "softmax");
  return y;
}

/// Log-softmax of x along `dim`: (x − max) − log Σ exp(x − max).
template <class T>
device_tensor<T> log_softmax_forward(const device_tensor<T>& x, int dim) {
  const op_scope scope("log_softmax_forward", x);
  dim = normalize_dim(dim, x.dim(), "log_softmax");
  const device_tensor<T> xc = x.contiguous();
  device_tensor<T> y(x.sizes());
  detail::run_lines<kernels::line_op::log_softmax>(kernels::line_args<T>{xc.data(), nullptr, y.data()}, x.sizes(),
                                                   dim, "log_softmax");
  return y;
}

/// Gradient of softmax: dx = y ⊙ (g − Σ g ⊙ y), y the forward output.
template <class T>
device_tensor<T> softmax_backward(const device_tensor<T>& g, const device_tensor<T>& y, int dim) {
  const op_scope scope("softmax_backward", g, y);
  dim = normalize_dim(dim, y.dim(), "softmax_backward");
  check_softmax_grad(g.sizes(), y.sizes(), "softmax_backward");
  const device_tensor<T> gc = g.contiguous(), yc = y.contiguous();
  device_tensor<T> dx(y.sizes());
  detail::run_lines<kernels::line_op::softmax_grad>(kernels::line_args<T>{gc.data(), yc.data(), dx.data()},
                                                    y.sizes(), dim, "softmax_backward");
  return dx;
}

/// Gradient of log-softmax: dx = g − exp(y)·Σ g, y the forward output.
template <class T>
device_tensor<T> log_softmax_backward(const device_tensor<T>& g, const device_tensor<T>& y, int dim) {
  const op_scope scope("log_softmax_backward", g, y);
  dim = normalize_dim(dim, y.dim(), "log_softmax_backward");
  check_softmax_grad(g.sizes(), y.sizes(), "log_softmax_backward");
  const device_tensor<T> gc = g.contiguous(), yc = y.contiguous();
  device_tensor<T> dx(y.sizes());
  detail::run_lines<kernels::line_op::log_softmax_grad>(kernels::line_args<T>{gc.data(), yc.data(), dx.data()},
                                                        y.sizes(), dim, "log_softmax_backward");
  return dx;
}

/// L2 normalisation along `dim` (F.normalize): y = x / max(‖x‖, eps). Returns {y, norms},
/// norms the unclamped ‖x‖ with extent 1 along `dim`.
template <class T>
std::pair<device_tensor<T>, device_tensor<T>> l2_normalize_forward(const device_tensor<T>& x, int dim, T eps) {
  const op_scope scope("l2_normalize_forward", x);
  dim = normalize_dim(dim, x.dim(), "l2_normalize");
  const device_tensor<T> xc = x.contiguous();
  device_tensor<T> y(x.sizes());
  shape ns = x.sizes();
  ns[dim] = 1;
  device_tensor<T> norms(ns);
  detail::run_lines<kernels::line_op::l2_normalize>(
      kernels::line_args<T>{xc.data(), nullptr, y.data(), norms.data(), nullptr, eps}, x.sizes(), dim, "l2_normalize");
  if (x.size(dim) == 0 && norms.numel() > 0) norms.zero_();  // the norm of an empty line is 0, as on the CPU
  return {std::move(y), std::move(norms)};
}

/// Gradient of l2_normalize: (g − y·Σ g ⊙ y) / ‖x‖ where ‖x‖ ≥ eps, g / eps where it was clamped.
template <class T>
device_tensor<T> l2_normalize_backward(const device_tensor<T>& g, const device_tensor<T>& y,
                                       const device_tensor<T>& norms, int dim, T eps) {
  const op_scope scope("l2_normalize_backward", g, y, norms);
  dim = normalize_dim(dim, y.dim(), "l2_normalize_backward");
  check_softmax_grad(g.sizes(), y.sizes(), "l2_normalize_backward");
  const kernels::line_space L = kernels::make_line_space(y.sizes(), dim);
  check_l2_normalize_norms(norms.numel(), L.lines(), y.sizes(), dim);
  const device_tensor<T> gc = g.contiguous(), yc = y.contiguous(), nc = norms.contiguous();
  device_tensor<T> dx(y.sizes());
  detail::run_lines<kernels::line_op::l2_normalize_grad>(
      kernels::line_args<T>{gc.data(), yc.data(), dx.data(), nullptr, nc.data(), eps}, y.sizes(), dim,
      "l2_normalize_backward");
  return dx;
}

}  // namespace ltl::cuda
