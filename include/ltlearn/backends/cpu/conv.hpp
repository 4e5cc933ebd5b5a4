#pragma once
/// \file
/// 2-D convolution on the CPU: the public entry points (forward, forward with a fused
/// epilogue, input, weight and bias gradients). Each validates its shapes, asks the algorithm
/// table (conv/dispatch.hpp) which kernel computes its pass — or checks the kernel that
/// conv2d_options::algorithm forces — and runs it:
///  - im2col + GEMM (conv/im2col.hpp): every geometry;
///  - direct 3×3 kernels (conv/direct3x3.hpp): 3×3 stride-1 padding-1 ungrouped layers, most of
///    a ResNet;
///  - channel-vectorised 3×3 kernels (conv/channel_vectorised.hpp): such layers with small
///    output planes, and at stride 2;
///  - Winograd in float (conv/winograd_*.hpp): channels-last, planar and sample-lane F(2×2),
///    sample-lane F(4×4).
///
/// Shapes: x [N, Cin, H, W], weight [Cout, Cin/groups, KH, KW], bias [Cout] or undefined,
/// y [N, Cout, Ho, Wo] (backends/contract/conv.hpp).

#include "ltlearn/backends/contract/conv.hpp"
#include "ltlearn/backends/cpu/conv/channel_vectorised.hpp"
#include "ltlearn/backends/cpu/conv/direct3x3.hpp"
#include "ltlearn/backends/cpu/conv/dispatch.hpp"
#include "ltlearn/backends/cpu/conv/im2col.hpp"
#include "ltlearn/backends/cpu/conv/winograd_channels_last.hpp"
#include "ltlearn/backends/cpu/conv/winograd_planar.hpp"
#include "ltlearn/backends/cpu/conv/winograd_sample_lane.hpp"
#include "ltlearn/backends/cpu/conv/winograd_sample_lane_weight_grad.hpp"
#include "ltlearn/backends/cpu/reduce.hpp"

#include <type_traits>

namespace ltl::cpu {

namespace conv_detail {

/// Runs the 3×3 kernel `a` (not im2col_gemm) on args: a forward pass or a stride-1 input
/// gradient (args.adjoint).
template <class T>
void run_conv3x3(conv2d_algorithm a, const ltl::detail::conv3x3_args<T>& args) {
  const ltl::detail::sample_chunks chunks;
  if constexpr (std::is_same_v<T, float>) {
    switch (a) {
      case conv2d_algorithm::winograd_f2_channels_last: return winograd::run_channels_last(args, chunks);
      case conv2d_algorithm::winograd_f2_planar: return winograd::run_planar(args, chunks);
      case conv2d_algorithm::winograd_f2_sample_lane: return winograd::run_sample_lane<2>(args, chunks);
      case conv2d_algorithm::winograd_f4_sample_lane: return winograd::run_sample_lane<4>(args, chunks);
      default: break;
    }
  }
  if (a == conv2d_algorithm::channel_vectorised3x3) return channel_vectorised3x3::run(args, chunks);
  direct3x3::run(args, chunks);
}

}  // namespace conv_detail

/// y [N, Cout, Ho, Wo] = act(conv2d(x [N, Cin, H, W], weight [Cout, Cin/groups, KH, KW])·scale
/// + shift + residual), per output channel (detail::conv_epilogue): scale and shift [Cout],
/// residual [N, Cout, Ho, Wo] and ReLU are each optional (undefined tensors, relu false). The
/// direct 3×3 kernels apply the epilogue as they store their sums; the im2col path after each
/// sample's GEMM, while the sample's output is in cache.
template <class T>
host_tensor<T> conv2d_forward_epilogue(const host_tensor<T>& x_in, const host_tensor<T>& w_in,
                                       const conv2d_options& opt, const host_tensor<T>& scale,
                                       const host_tensor<T>& shift, const host_tensor<T>& residual, bool relu) {
  const conv2d_geometry g = make_conv2d_geometry(x_in.sizes(), w_in.sizes(), opt);
  const shape sc_s = scale.defined() ? scale.sizes() : shape{}, sh_s = shift.defined() ? shift.sizes() : shape{};
  const shape res_s = residual.defined() ? residual.sizes() : shape{};
  check_conv2d_epilogue(g, w_in.sizes(), scale.defined() ? &sc_s : nullptr, shift.defined() ? &sh_s : nullptr,
                        residual.defined() ? &res_s : nullptr);
  const conv2d_algorithm algorithm = resolve_algorithm<T>(opt.algorithm, conv2d_pass::forward, g);
  const host_tensor<T> x = x_in.contiguous(), w = w_in.contiguous();
  const host_tensor<T> sc = scale.defined() ? scale.contiguous() : host_tensor<T>();
  const host_tensor<T> sh = shift.defined() ? shift.contiguous() : host_tensor<T>();
  const host_tensor<T> res = residual.defined() ? residual.contiguous() : host_tensor<T>();
  const ltl::detail::conv_epilogue<T> ep{sc.defined() ? sc.data() : nullptr, sh.defined() ? sh.data() : nullptr,
                                         res.defined() ? res.data() : nullptr, relu};
  host_tensor<T> y(g.output_shape());
  if (algorithm == conv2d_algorithm::im2col_gemm) {
    im2col_gemm::forward(x, w, g, ep, y);
    return y;
  }
  conv_detail::run_conv3x3<T>(algorithm, {.input = x.data(),
                                          .samples = g.n,
                                          .in_channels = g.cin,
                                          .height = g.h,
                                          .width = g.w,
                                          .stride = g.stride.h,
                                          .weight = w.data(),
                                          .weight_out = g.cout,
                                          .weight_in = g.cin,
                                          .adjoint = false,
                                          .out_channels = g.cout,
                                          .epilogue = ep,
                                          .output = y.data()});
  return y;
}

/// y [N, Cout, Ho, Wo] = conv2d(x [N, Cin, H, W], weight [Cout, Cin/groups, KH, KW]) + bias [Cout]
/// (bias may be undefined).
template <class T>
host_tensor<T> conv2d_forward(const host_tensor<T>& x_in, const host_tensor<T>& w_in, const host_tensor<T>& bias,
                              const conv2d_options& opt) {
  return conv2d_forward_epilogue(x_in, w_in, opt, host_tensor<T>(), bias, host_tensor<T>(), false);
}

/// Gradient of conv2d with respect to its input: dx [N, Cin, H, W] from dy [N, Cout, Ho, Wo].
template <class T>
host_tensor<T> conv2d_backward_input(const host_tensor<T>& dy_in, const host_tensor<T>& w_in, const shape& x_shape,
                                     const conv2d_options& opt) {
  const conv2d_geometry g = make_conv2d_geometry(x_shape, w_in.sizes(), opt);
  check_conv2d_output_grad(dy_in.sizes(), g);
  const conv2d_algorithm algorithm = resolve_algorithm<T>(opt.algorithm, conv2d_pass::backward_input, g);
  const host_tensor<T> dy = dy_in.contiguous(), w = w_in.contiguous();
  if (algorithm == conv2d_algorithm::im2col_gemm) return im2col_gemm::input_grad(dy, w, g, x_shape);
  host_tensor<T> dx(x_shape);
  // At stride 1 the input gradient is the same 3×3 convolution of dy with the adjoint weights.
  const ltl::detail::conv3x3_args<T> args{.input = dy.data(),
                                          .samples = g.n,
                                          .in_channels = g.cout,
                                          .height = g.h,
                                          .width = g.w,
                                          .stride = g.stride.h,
                                          .weight = w.data(),
                                          .weight_out = g.cout,
                                          .weight_in = g.cin,
                                          .adjoint = true,
                                          .out_channels = g.cin,
                                          .epilogue = {},
                                          .output = dx.data()};
  if (algorithm == conv2d_algorithm::channel_vectorised3x3 && g.stride == pair2d(2)) {
    channel_vectorised3x3::input_grad_stride2(args, ltl::detail::sample_chunks{});
    return dx;
  }
  conv_detail::run_conv3x3<T>(algorithm, args);
  return dx;
}

/// Gradient of conv2d with respect to its weight: dW [Cout, Cin/groups, KH, KW]. Each thread
/// sums its samples into a private buffer; the buffers are then added in thread order, so the
/// result is deterministic for a given thread count.
template <class T>
host_tensor<T> conv2d_backward_weight(const host_tensor<T>& dy_in, const host_tensor<T>& x_in, const shape& w_shape,
                                      const conv2d_options& opt) {
  const conv2d_geometry g = make_conv2d_geometry(x_in.sizes(), w_shape, opt);
  check_conv2d_output_grad(dy_in.sizes(), g);
  const conv2d_algorithm algorithm = resolve_algorithm<T>(opt.algorithm, conv2d_pass::backward_weight, g);
  const host_tensor<T> dy = dy_in.contiguous(), x = x_in.contiguous();
  if (algorithm == conv2d_algorithm::im2col_gemm) return im2col_gemm::weight_grad(dy, x, g, w_shape);
  const ltl::detail::conv3x3_weight_grad_args<T> args{.dy = dy.data(),
                                                      .x = x.data(),
                                                      .samples = g.n,
                                                      .in_channels = g.cin,
                                                      .out_channels = g.cout,
                                                      .height = g.h,
                                                      .width = g.w,
                                                      .stride = g.stride.h,
                                                      .threads = num_threads()};
  const ltl::detail::sample_chunks chunks;
  if constexpr (std::is_same_v<T, float>) {
    if (algorithm == conv2d_algorithm::winograd_f4_sample_lane)
      return winograd::weight_grad_sample_lane<4>(args, chunks).reshape(w_shape);
    if (algorithm == conv2d_algorithm::winograd_f2_sample_lane)
      return winograd::weight_grad_sample_lane<2>(args, chunks).reshape(w_shape);
  }
  if (algorithm == conv2d_algorithm::channel_vectorised3x3)
    return channel_vectorised3x3::weight_grad(args, chunks).reshape(w_shape);
  return direct3x3::weight_grad(args, chunks).reshape(w_shape);
}

/// Gradient of conv2d with respect to its bias: db [Cout] = Σ over N, Ho, Wo of dy (in double).
template <class T>
host_tensor<T> conv2d_backward_bias(const host_tensor<T>& dy) {
  check_conv2d_bias_grad(dy.sizes());
  return sum_dims_keep(dy, {true, false, true, true}).reshape(shape{dy.size(1)});
}

}  // namespace ltl::cpu
