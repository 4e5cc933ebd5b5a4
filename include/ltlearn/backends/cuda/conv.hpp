#pragma once
/// \file
/// 2-D convolution on CUDA with the signatures of the contract's conv_kernels
/// (backends/contract/kernels.hpp): the passes run through cuDNN (cudnn_conv.hpp's
/// conv_engine); the per-channel epilogue (bias, or the folded batch norm of inference: scale,
/// shift, residual, ReLU) is a kernel of its own after the convolution, in the CPU's order
/// (v·scale + shift, + residual, then ReLU; products rounded separately, as the CPU stores
/// them); the bias gradient is the deterministic double-accumulating sum of reduce.hpp.
/// Needs nvcc: include it (through <ltlearn/cuda.hpp>) from .cu files.
///
/// Shapes: x [N, Cin, H, W], weight [Cout, Cin/groups, KH, KW], bias/scale/shift [Cout] or
/// undefined, y and residual [N, Cout, Ho, Wo]. Grouped and dilated convolutions are cuDNN's.
/// `conv2d_options::algorithm` names CPU kernels; here only `automatic` is accepted.

#include "ltlearn/backends/contract/conv.hpp"
#include "ltlearn/backends/cuda/cudnn_conv.hpp"
#include "ltlearn/backends/cuda/elementwise.hpp"
#include "ltlearn/backends/cuda/reduce.hpp"
#include "ltlearn/backends/cuda/op_scope.hpp"

#include <type_traits>

namespace ltl::cuda {

namespace kernels {
/// y[i] = act(y[i]·scale[c] + shift[c] + residual[i]) for i in [0, n), c = (i / plane) % channels;
/// null pointers leave their term out. Products use _rn intrinsics so that nvcc does not
/// contract them into an FMA the CPU does not compute.
template <class T>
__global__ void conv_epilogue(T* y, index_t n, index_t plane, index_t channels, const T* scale, const T* shift,
                              const T* residual, bool relu) {
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<index_t>(gridDim.x) * blockDim.x) {
    const index_t c = (i / plane) % channels;
    T v = y[i];
    if (scale) {
      if constexpr (std::is_same_v<T, float>) v = __fmul_rn(v, scale[c]);
      else v = __dmul_rn(v, scale[c]);
    }
    if (shift) v += shift[c];
    if (residual) v += residual[i];
    if (relu) v = v > T(0) ? v : T(0);
    y[i] = v;
  }
}
}  // namespace kernels

namespace detail {
template <class T>
constexpr cudnnDataType_t cudnn_type() noexcept {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "cuDNN convolution supports float and double");
  return std::is_same_v<T, float> ? CUDNN_DATA_FLOAT : CUDNN_DATA_DOUBLE;
}

/// Throws value_error unless the options leave the kernel choice to the backend.
inline void require_automatic(const conv2d_options& opt, const char* op) {
  LTL_CHECK(opt.algorithm == conv2d_algorithm::automatic, value_error,
            "{}: algorithm '{}' is a CPU kernel; the CUDA backend runs cuDNN's choice (use automatic)", op,
            to_string(opt.algorithm));
}

/// Contiguous version of `t` after checking that its memory is on the current device.
template <class T>
device_tensor<T> operand(const device_tensor<T>& t, const char* op, const char* what) {
  if (t.numel() > 0) require_device_memory(t.data(), op, what);
  return t.contiguous();
}
}  // namespace detail

/// y = act(conv2d(x, w)·scale + shift + residual), per output channel; scale, shift, residual
/// are each optional (undefined), relu false leaves the activation out.
template <class T>
device_tensor<T> conv2d_forward_epilogue(const device_tensor<T>& x_in, const device_tensor<T>& w_in,
                                         const conv2d_options& opt, const device_tensor<T>& scale,
                                         const device_tensor<T>& shift, const device_tensor<T>& residual, bool relu) {
  const op_scope scope("conv2d_forward_epilogue", x_in, w_in, scale, shift, residual);
  constexpr const char* op = "conv2d";
  detail::require_automatic(opt, op);
  const conv2d_geometry g = make_conv2d_geometry(x_in.sizes(), w_in.sizes(), opt);
  const shape sc_s = scale.defined() ? scale.sizes() : shape{}, sh_s = shift.defined() ? shift.sizes() : shape{};
  const shape res_s = residual.defined() ? residual.sizes() : shape{};
  check_conv2d_epilogue(g, w_in.sizes(), scale.defined() ? &sc_s : nullptr, shift.defined() ? &sh_s : nullptr,
                        residual.defined() ? &res_s : nullptr);
  device_tensor<T> y(g.output_shape());
  const index_t n = y.numel();
  if (n == 0) return y;
  const device_tensor<T> x = detail::operand(x_in, op, "input"), w = detail::operand(w_in, op, "weight");
  const device_tensor<T> sc = scale.defined() ? detail::operand(scale, op, "scale") : device_tensor<T>();
  const device_tensor<T> sh = shift.defined() ? detail::operand(shift, op, "bias/shift") : device_tensor<T>();
  const device_tensor<T> res = residual.defined() ? detail::operand(residual, op, "residual") : device_tensor<T>();
  auto& ctx = context::current();
  if (g.cin == 0) {
    y.zero_();  // an empty sum
  } else {
    conv_engine_for(ctx).forward(g, detail::cudnn_type<T>(), x.data(), w.data(), y.data());
  }
  if (sc.defined() || sh.defined() || res.defined() || relu) {
    kernels::conv_epilogue<T><<<kernels::grid_for(n), kernels::block_size, 0, ctx.stream()>>>(
        y.data(), n, g.out_plane(), g.cout, sc.defined() ? sc.data() : nullptr, sh.defined() ? sh.data() : nullptr,
        res.defined() ? res.data() : nullptr, relu);
    detail::check_launch("conv_epilogue");
  }
  return y;
}

/// y [N, Cout, Ho, Wo] = conv2d(x, weight) + bias [Cout] (bias may be undefined).
template <class T>
device_tensor<T> conv2d_forward(const device_tensor<T>& x, const device_tensor<T>& w, const device_tensor<T>& bias,
                                const conv2d_options& opt) {
  const op_scope scope("conv2d_forward", x, w, bias);
  return cuda::conv2d_forward_epilogue(x, w, opt, device_tensor<T>(), bias, device_tensor<T>(), false);
}

/// Gradient of conv2d with respect to its input: dx [N, Cin, H, W] from dy [N, Cout, Ho, Wo].
template <class T>
device_tensor<T> conv2d_backward_input(const device_tensor<T>& dy_in, const device_tensor<T>& w_in,
                                       const shape& x_shape, const conv2d_options& opt) {
  const op_scope scope("conv2d_backward_input", dy_in, w_in);
  constexpr const char* op = "conv2d_backward_input";
  detail::require_automatic(opt, op);
  const conv2d_geometry g = make_conv2d_geometry(x_shape, w_in.sizes(), opt);
  check_conv2d_output_grad(dy_in.sizes(), g);
  device_tensor<T> dx(x_shape);
  if (dx.numel() == 0) return dx;
  if (dy_in.numel() == 0) {
    dx.zero_();
    return dx;
  }
  const device_tensor<T> dy = detail::operand(dy_in, op, "output gradient"), w = detail::operand(w_in, op, "weight");
  conv_engine_for(context::current()).backward_data(g, detail::cudnn_type<T>(), dy.data(), w.data(), dx.data());
  return dx;
}

/// Gradient of conv2d with respect to its weight: dW [Cout, Cin/groups, KH, KW].
template <class T>
device_tensor<T> conv2d_backward_weight(const device_tensor<T>& dy_in, const device_tensor<T>& x_in,
                                        const shape& w_shape, const conv2d_options& opt) {
  const op_scope scope("conv2d_backward_weight", dy_in, x_in);
  constexpr const char* op = "conv2d_backward_weight";
  detail::require_automatic(opt, op);
  const conv2d_geometry g = make_conv2d_geometry(x_in.sizes(), w_shape, opt);
  check_conv2d_output_grad(dy_in.sizes(), g);
  device_tensor<T> dw(w_shape);
  if (dw.numel() == 0) return dw;
  if (dy_in.numel() == 0) {
    dw.zero_();
    return dw;
  }
  const device_tensor<T> dy = detail::operand(dy_in, op, "output gradient"), x = detail::operand(x_in, op, "input");
  conv_engine_for(context::current()).backward_filter(g, detail::cudnn_type<T>(), x.data(), dy.data(), dw.data());
  return dw;
}

/// Gradient of conv2d with respect to its bias: db [Cout] = Σ over N, Ho, Wo of dy (in double).
template <class T>
device_tensor<T> conv2d_backward_bias(const device_tensor<T>& dy) {
  const op_scope scope("conv2d_backward_bias", dy);
  check_conv2d_bias_grad(dy.sizes());
  if (dy.numel() > 0) require_device_memory(dy.data(), "conv2d_backward_bias", "output gradient");
  return cuda::sum_dims_keep(dy, {true, false, true, true}).reshape(shape{dy.size(1)});
}

}  // namespace ltl::cuda
