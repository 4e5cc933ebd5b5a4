#pragma once
/// \file
/// Differentiable 2-D convolution (PyTorch's F.conv2d).
/// Shapes: x [N, Cin, H, W], weight [Cout, Cin/groups, KH, KW], bias [Cout] or undefined
/// → y [N, Cout, Ho, Wo]. Kernels are reached by argument-dependent lookup on the device.

#include "ltlearn/backends/contract/conv.hpp"
#include "ltlearn/backends/cpu/conv.hpp"
#include "ltlearn/ops/elementwise.hpp"

#include <cmath>
#include <concepts>
#include <span>
#include <utility>
#include <vector>

namespace ltl {

/// 2-D cross-correlation with stride, padding, dilation and groups, plus an optional bias:
/// `conv2d(x, w, {}, {.stride = 2, .padding = 1})`. Backward computes only the gradients whose
/// inputs require them, and saves x (resp. weight) only when weight (resp. x) needs a gradient.
template <real_scalar T, device D>
variable<T, D> conv2d(const variable<T, D>& x, const variable<T, D>& weight, const variable<T, D>& bias = {},
                      const conv2d_options& opt = {}) {
  (void)make_conv2d_geometry(x.sizes(), weight.sizes(), opt);  // validate before touching data
  if (bias.defined()) check_conv2d_bias(bias.sizes(), weight.sizes());
  auto y = conv2d_forward(x.value(), weight.value(), bias.defined() ? bias.value() : tensor<T, D>(), opt);
  // An absent bias still occupies input slot 2 as a constant that never asks for a gradient.
  const variable<T, D> no_bias(tensor<T, D>(), false);
  const variable<T, D>& b = bias.defined() ? bias : no_bias;
  const bool need_x = x.requires_grad(), need_w = weight.requires_grad();
  auto bw = [vx = need_w ? x.value() : tensor<T, D>(), vw = need_x ? weight.value() : tensor<T, D>(), sx = x.sizes(),
             sw = weight.sizes(), opt](const tensor<T, D>& g, const std::vector<bool>& need) {
    grads_t<T, D> r(3);
    if (need[0]) r[0] = conv2d_backward_input(g, vw, sx, opt);
    if (need[1]) r[1] = conv2d_backward_weight(g, vx, sw, opt);
    if (need[2]) r[2] = conv2d_backward_bias(g);
    return r;
  };
  return make_result<T, D>(std::move(y), "conv2d", {&x, &weight, &b}, std::move(bw));
}

/// Whether device D provides the fused convolution kernel conv2d_forward_epilogue (x, weight,
/// options, scale, shift, residual, relu → y; backends/cpu/conv.hpp), found like every kernel
/// by argument-dependent lookup on the tensor's device.
template <class T, class D>
concept conv_epilogue_device = requires(const tensor<T, D>& t, const conv2d_options& opt, bool relu) {
  { conv2d_forward_epilogue(t, t, opt, t, t, t, relu) } -> std::same_as<tensor<T, D>>;
};

/// Inference only (no gradient): act(bn(conv2d(x, weight) + conv_bias) + residual) with batch
/// norm in evaluation mode, i.e. its running statistics: the batch norm folds into a scale and
/// shift per output channel, s = γ/√(var + ε) and t = β + (b − mean)·s, which the convolution
/// applies as it stores its sums, together with the residual and the ReLU — one pass over the
/// output instead of two. conv_bias, bn_weight (γ), bn_bias (β) and residual may be undefined.
/// The fold runs on the host over the [Cout] vectors; the convolution on D's epilogue kernel.
/// Throws value_error if gradients are enabled and an input requires one.
template <real_scalar T, device D>
  requires conv_epilogue_device<T, D>
variable<T, D> conv2d_bn_inference(const variable<T, D>& x, const variable<T, D>& weight,
                                   const variable<T, D>& conv_bias, const variable<T, D>& bn_weight,
                                   const variable<T, D>& bn_bias, const tensor<T, D>& running_mean,
                                   const tensor<T, D>& running_var, double eps, const conv2d_options& opt, bool relu,
                                   const variable<T, D>& residual = {}) {
  const bool wants_grad = x.requires_grad() || weight.requires_grad() ||
                          (conv_bias.defined() && conv_bias.requires_grad()) ||
                          (bn_weight.defined() && bn_weight.requires_grad()) ||
                          (bn_bias.defined() && bn_bias.requires_grad()) ||
                          (residual.defined() && residual.requires_grad());
  LTL_CHECK(!(grad_enabled() && wants_grad), value_error,
            "conv2d_bn_inference: computes no gradients; call it under no_grad (input {})", x.sizes());
  const index_t cout = weight.size(0);
  LTL_CHECK(running_mean.defined() && running_var.defined() && running_mean.dim() == 1 && running_var.dim() == 1 &&
                running_mean.size(0) == cout && running_var.size(0) == cout,
            shape_error, "conv2d_bn_inference: running statistics {} and {} do not match weight {} (expects [Cout])",
            running_mean.defined() ? running_mean.sizes() : shape{}, running_var.defined() ? running_var.sizes() : shape{},
            weight.sizes());
  LTL_CHECK(eps > 0 && std::isfinite(eps), value_error, "conv2d_bn_inference: eps must be positive, got {}", eps);
  // Host copies of the [Cout] vectors (empty where undefined).
  auto per_channel = [&](const variable<T, D>& v, const char* what) {
    if (!v.defined()) return std::vector<T>();
    LTL_CHECK(v.dim() == 1 && v.size(0) == cout, shape_error, "conv2d_bn_inference: {} {} does not match weight {}",
              what, v.sizes(), weight.sizes());
    return v.value().to_vector();
  };
  const auto cb = per_channel(conv_bias, "conv bias"), g = per_channel(bn_weight, "bn weight"),
             b = per_channel(bn_bias, "bn bias");
  const auto rm = running_mean.to_vector(), rv = running_var.to_vector();
  std::vector<T> scale(static_cast<std::size_t>(cout)), shift(static_cast<std::size_t>(cout));
  for (std::size_t c = 0; c < scale.size(); ++c) {
    auto val = [c](const std::vector<T>& t, double neutral) { return t.empty() ? neutral : static_cast<double>(t[c]); };
    const double s = val(g, 1.0) / std::sqrt(static_cast<double>(rv[c]) + eps);
    scale[c] = static_cast<T>(s);
    shift[c] = static_cast<T>(val(b, 0.0) + (val(cb, 0.0) - static_cast<double>(rm[c])) * s);
  }
  auto y = conv2d_forward_epilogue(x.value(), weight.value(), opt,
                                   tensor<T, D>::from(shape{cout}, std::span<const T>(scale)),
                                   tensor<T, D>::from(shape{cout}, std::span<const T>(shift)),
                                   residual.defined() ? residual.value() : tensor<T, D>(), relu);
  return variable<T, D>(std::move(y), false);
}

}  // namespace ltl
