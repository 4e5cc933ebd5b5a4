#pragma once
/// \file
/// Differentiable 2-D convolution (PyTorch's F.conv2d).
/// Shapes: x [N, Cin, H, W], weight [Cout, Cin/groups, KH, KW], bias [Cout] or undefined
/// → y [N, Cout, Ho, Wo]. Kernels are reached by argument-dependent lookup on the device.

#include "ltlearn/backends/cpu/conv.hpp"
#include "ltlearn/ops/elementwise.hpp"

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

}  // namespace ltl
