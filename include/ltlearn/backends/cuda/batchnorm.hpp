#pragma once
/// \file
/// CUDA kernels of the contract's batch_norm_kernels (backends/contract/kernels.hpp): 2-D batch
/// normalisation with the fused residual + ReLU, forward (training and evaluation) and
/// backward, with the semantics of backends/cpu/batchnorm.hpp (PyTorch's: biased batch variance
/// for normalising, unbiased M/(M−1) for the running estimate, momentum, eps; sums of x − k
/// with k the channel's first value, in double). The launch plan is kernels/batchnorm.cuh's.
/// Needs nvcc: include it (through <ltlearn/cuda.hpp>) from .cu files.

#include "ltlearn/backends/contract/batchnorm.hpp"
#include "ltlearn/backends/cuda/elementwise.hpp"
#include "ltlearn/backends/cuda/kernels/batchnorm.cuh"
#include "ltlearn/backends/cuda/op_scope.hpp"

#include <array>

namespace ltl::cuda {

namespace detail {
/// Launch grid of a per-(chunk, channel) pass.
inline dim3 bn_sums_grid(const kernels::bn_plan& p) {
  LTL_CHECK(p.c <= 65535, shape_error, "batch_norm2d: {} channels exceed the CUDA grid's 65535", p.c);
  return dim3(static_cast<unsigned>(p.chunks), static_cast<unsigned>(p.c));
}
}  // namespace detail

/// Batch-norm forward over x [N, C, H, W]; updates `running_mean`/`running_var` [C] (may be
/// undefined) in place when training. `weight`/`bias` [C] may be undefined; `residual`
/// [N, C, H, W] (may be undefined) is added before the optional ReLU.
template <class T>
batch_norm_forward_result<T, device> batch_norm2d_forward(const device_tensor<T>& x_in, const device_tensor<T>& weight,
                                                          const device_tensor<T>& bias, device_tensor<T>& running_mean,
                                                          device_tensor<T>& running_var, const batch_norm_options& opt,
                                                          const device_tensor<T>& residual = {}) {
  const op_scope scope("batch_norm2d_forward", x_in, weight, bias, running_mean, running_var, residual);
  check_batch_norm2d_forward(x_in, weight, bias, running_mean, running_var, opt, residual);
  const index_t c = x_in.size(1);
  const auto p = kernels::make_bn_plan(x_in.size(0), c, x_in.size(2) * x_in.size(3));
  batch_norm_forward_result<T, device> r{device_tensor<T>(x_in.sizes()), device_tensor<T>(shape{c}),
                                         device_tensor<T>(shape{c})};
  if (c == 0) return r;
  // Evaluation of an empty batch still reports the running statistics; training needs M > 1.
  const device_tensor<T> x = x_in.contiguous();
  const device_tensor<T> res = residual.defined() ? residual.contiguous() : device_tensor<T>();
  device_tensor<T> coef(shape{2, c});
  tensor<double, device> partial(shape{opt.training ? c * p.chunks * 2 : 0});
  const bool has_running = running_mean.defined();
  kernels::bn_forward_args<T> a{x.data(),
                                res.defined() ? res.data() : nullptr,
                                r.y.data(),
                                weight.defined() ? weight.data() : nullptr,
                                bias.defined() ? bias.data() : nullptr,
                                has_running ? running_mean.data() : nullptr,
                                has_running ? running_var.data() : nullptr,
                                weight.defined() ? weight.strides()[0] : 0,
                                bias.defined() ? bias.strides()[0] : 0,
                                has_running ? running_mean.strides()[0] : 0,
                                has_running ? running_var.strides()[0] : 0,
                                r.mean.data(),
                                r.invstd.data(),
                                coef.data(),
                                coef.data() + c,
                                partial.data(),
                                opt.momentum,
                                opt.eps,
                                opt.training,
                                opt.relu};
  const cudaStream_t s = context::current().stream();
  if (opt.training) {
    kernels::bn_forward_sums<<<detail::bn_sums_grid(p), kernels::block_size, 0, s>>>(a, p);
    detail::check_launch("batch_norm2d (batch statistics)");
  }
  kernels::bn_forward_finalize<<<kernels::grid_for(c), kernels::block_size, 0, s>>>(a, p);
  detail::check_launch("batch_norm2d (channel statistics)");
  const index_t total = x.numel();
  if (total > 0) {
    kernels::bn_forward_apply<<<kernels::grid_for(total), kernels::block_size, 0, s>>>(a, p, total);
    detail::check_launch("batch_norm2d (normalise)");
  }
  return r;
}

/// Batch-norm backward from dy [N, C, H, W], the input x, weight [C] (may be undefined) and the
/// saved mean/invstd [C]; `need` = {dx, dweight, dbias}. With a fused ReLU pass its output
/// `relu_out`: dy is masked by relu_out > 0, and `need_masked` also returns the masked gradient
/// (the fused residual's gradient; dy itself when there is no ReLU output).
template <class T>
batch_norm_backward_result<T, device> batch_norm2d_backward(const device_tensor<T>& dy_in,
                                                            const device_tensor<T>& x_in,
                                                            const device_tensor<T>& weight,
                                                            const device_tensor<T>& mean,
                                                            const device_tensor<T>& invstd, bool training,
                                                            std::array<bool, 3> need,
                                                            const device_tensor<T>& relu_out = {},
                                                            bool need_masked = false) {
  const op_scope scope("batch_norm2d_backward", dy_in, x_in, weight, mean, invstd, relu_out);
  check_batch_norm2d_backward(dy_in, x_in, weight, mean, invstd, relu_out);
  const index_t c = x_in.size(1);
  const device_tensor<T> x = x_in.contiguous(), dy = dy_in.contiguous();
  const device_tensor<T> yr = relu_out.defined() ? relu_out.contiguous() : device_tensor<T>();
  const device_tensor<T> mu = mean.contiguous(), inv = invstd.contiguous();
  const auto p = kernels::make_bn_plan(x.size(0), c, x.size(2) * x.size(3));
  batch_norm_backward_result<T, device> r;
  if (need[0]) r.dx = device_tensor<T>(x.sizes());
  if (need[1]) r.dweight = device_tensor<T>(shape{c});
  if (need[2]) r.dbias = device_tensor<T>(shape{c});
  if (need_masked) r.dmasked = yr.defined() ? device_tensor<T>(x.sizes()) : dy;
  if (c == 0) return r;
  const bool need_sums = need[1] || need[2] || (need[0] && training);
  const bool write_masked = need_masked && yr.defined();
  device_tensor<T> coef(shape{3, c});
  tensor<double, device> partial(shape{need_sums ? c * p.chunks * 2 : 0});
  kernels::bn_backward_args<T> a{dy.data(),
                                 x.data(),
                                 yr.defined() ? yr.data() : nullptr,
                                 weight.defined() ? weight.data() : nullptr,
                                 weight.defined() ? weight.strides()[0] : 0,
                                 mu.data(),
                                 inv.data(),
                                 need[0] ? r.dx.data() : nullptr,
                                 need[1] ? r.dweight.data() : nullptr,
                                 need[2] ? r.dbias.data() : nullptr,
                                 write_masked ? r.dmasked.data() : nullptr,
                                 coef.data(),
                                 coef.data() + c,
                                 coef.data() + 2 * c,
                                 partial.data(),
                                 training};
  const cudaStream_t s = context::current().stream();
  const index_t total = x.numel();
  if (need_sums && p.m > 0) {
    kernels::bn_backward_sums<<<detail::bn_sums_grid(p), kernels::block_size, 0, s>>>(a, p);
    detail::check_launch("batch_norm2d_backward (sums)");
  } else if (write_masked && total > 0) {
    kernels::bn_mask_grad<<<kernels::grid_for(total), kernels::block_size, 0, s>>>(a, total);
    detail::check_launch("batch_norm2d_backward (mask)");
  }
  kernels::bn_backward_finalize<<<kernels::grid_for(c), kernels::block_size, 0, s>>>(a, p, need_sums && p.m > 0);
  detail::check_launch("batch_norm2d_backward (channel coefficients)");
  if (need[0] && total > 0) {
    kernels::bn_backward_apply<<<kernels::grid_for(total), kernels::block_size, 0, s>>>(a, p, total);
    detail::check_launch("batch_norm2d_backward (input gradient)");
  }
  return r;
}

}  // namespace ltl::cuda
