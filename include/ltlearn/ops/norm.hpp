#pragma once
/// \file
/// Differentiable 2-D batch normalisation (PyTorch's F.batch_norm on [N, C, H, W]).
/// weight, bias, running_mean, running_var: [C]. Kernels are reached by argument-dependent lookup.

#include "ltlearn/backends/cpu/batchnorm.hpp"
#include "ltlearn/ops/elementwise.hpp"

#include <array>
#include <utility>
#include <vector>

namespace ltl {

/// Batch normalisation of x [N, C, H, W] with optional affine weight/bias [C] (undefined = off).
///
/// Training (`.training = true`): normalises with the batch mean and biased variance and, when
/// the running tensors are defined, updates them in place: running_mean ← (1−m)·running_mean +
/// m·mean, running_var ← (1−m)·running_var + m·var·M/(M−1) with M = N·H·W. Evaluation
/// (`.training = false`, the default as in F.batch_norm) normalises with the running tensors.
/// The running tensors are plain buffers, not variables: the handles passed here alias the
/// caller's storage, so the update is visible to the caller.
///
/// Fused epilogue: a defined `residual` [N, C, H, W] is added to the normalised output, and
/// `.relu = true` applies max(0, ·) last — `relu(bn(x) + r)` of a ResNet block in one pass
/// forward and two backward, without the intermediate tensors.
template <real_scalar T, device D>
variable<T, D> batch_norm2d(const variable<T, D>& x, const variable<T, D>& weight, const variable<T, D>& bias,
                            tensor<T, D> running_mean, tensor<T, D> running_var, const batch_norm_options& opt = {},
                            const variable<T, D>& residual = {}) {
  const shape none;
  check_batch_norm2d(x.sizes(), weight.defined() ? weight.sizes() : none, weight.defined(),
                     bias.defined() ? bias.sizes() : none, bias.defined(),
                     running_mean.defined() ? running_mean.sizes() : none, running_mean.defined(),
                     running_var.defined() ? running_var.sizes() : none, running_var.defined(), opt);
  const tensor<T, D> w = weight.defined() ? weight.value() : tensor<T, D>();
  auto r = batch_norm2d_forward(x.value(), w, bias.defined() ? bias.value() : tensor<T, D>(), running_mean, running_var,
                                opt, residual.defined() ? residual.value() : tensor<T, D>());
  // Absent inputs occupy their slots as constants that never ask for gradients.
  const variable<T, D> absent(tensor<T, D>(), false);
  const variable<T, D>& win = weight.defined() ? weight : absent;
  const variable<T, D>& bin = bias.defined() ? bias : absent;
  const variable<T, D>& rin = residual.defined() ? residual : absent;
  // The ReLU mask is read from the output, which the next layer keeps alive anyway.
  auto bw = [vx = x.value(), w, mean = std::move(r.mean), invstd = std::move(r.invstd), training = opt.training,
             y = opt.relu ? r.y : tensor<T, D>()](const tensor<T, D>& g, const std::vector<bool>& need) {
    auto d = batch_norm2d_backward(g, vx, w, mean, invstd, training, std::array<bool, 3>{need[0], need[1], need[2]}, y,
                                   need[3]);
    return grads_t<T, D>{std::move(d.dx), std::move(d.dweight), std::move(d.dbias), std::move(d.dmasked)};
  };
  return make_result<T, D>(std::move(r.y), "batch_norm2d", {&x, &win, &bin, &rin}, std::move(bw));
}

}  // namespace ltl
