#pragma once
/// \file
/// conv → batch norm (→ + residual → ReLU), the unit of the ResNet blocks, through the fastest
/// path the mode allows.

#include "ltlearn/autograd/grad_mode.hpp"
#include "ltlearn/nn/batchnorm.hpp"
#include "ltlearn/nn/conv.hpp"

#include <memory>

namespace ltl::nn {

/// relu(bn(conv(x)) + residual) if `relu`, else bn(conv(x)) + residual (`residual` may be
/// undefined). Training, or gradients enabled: the convolution, then batch norm with the
/// residual add and the ReLU fused into it (batch_norm2d::forward_fused). Inference (batch norm
/// in eval mode, no_grad) on a device with the fused epilogue kernel (conv_epilogue_device):
/// batch norm folds into the convolution, which applies it with the residual and the ReLU as it
/// stores its output (ltl::conv2d_bn_inference).
template <real_scalar T, device D>
variable<T, D> conv_bn(conv2d<T, D>& conv, batch_norm2d<T, D>& bn, const variable<T, D>& x, bool relu,
                       const variable<T, D>& residual = {}) {
  if constexpr (conv_epilogue_device<T, D>) {
    if (!bn.is_training() && !grad_enabled()) {
      const auto& o = conv.options();
      return ltl::conv2d_bn_inference(x, conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean,
                                      bn.running_var, bn.eps(),
                                      {.stride = o.stride, .padding = o.padding, .groups = o.groups}, relu, residual);
    }
  }
  return bn.forward_fused(conv.forward(x), residual, relu);
}

/// conv → batch norm → ReLU as one module (a ResNet stem) through nn::conv_bn. Its children
/// are named as a sequential of the three would name them ("0" the convolution, "1" the batch
/// norm; the ReLU holds no state), so its tensors keep the same checkpoint names.
template <real_scalar T, device D = cpu::device>
class conv_bn_relu : public unary_module<T, D> {
 public:
  using typename module<T, D>::var;
  conv_bn_relu(const conv2d_layer_options& o, rng& g) {
    conv = this->register_module("0", std::make_shared<conv2d<T, D>>(o, g));
    bn = this->register_module("1", std::make_shared<batch_norm2d<T, D>>(o.out_channels));
  }
  var forward(const var& x) override { return conv_bn(*conv, *bn, x, true); }

  std::shared_ptr<conv2d<T, D>> conv;
  std::shared_ptr<batch_norm2d<T, D>> bn;
};

}  // namespace ltl::nn
