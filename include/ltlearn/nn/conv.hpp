#pragma once
/// \file
/// nn::conv2d: a 2-D convolution layer. x [N, Cin, H, W] → [N, Cout, Ho, Wo]; weight
/// [Cout, Cin/groups, KH, KW].

#include "ltlearn/nn/init.hpp"
#include "ltlearn/nn/module.hpp"
#include "ltlearn/ops/conv.hpp"

namespace ltl::nn {

/// Weight initialisation of a convolution.
enum class conv_init {
  kaiming_fan_in,   ///< N(0, 2/fan_in): the reference CIFAR ResNets
  kaiming_fan_out,  ///< N(0, 2/fan_out): torchvision's ImageNet ResNets
  pytorch_default,  ///< U(±1/√fan_in)
};

/// Options of nn::conv2d.
struct conv2d_layer_options {
  index_t in_channels = 0;
  index_t out_channels = 0;
  pair2d kernel = 3;
  pair2d stride = 1;
  pair2d padding = 0;
  index_t groups = 1;
  bool bias = false;
  conv_init init = conv_init::kaiming_fan_in;
};

/// Convolution layer with its weight (and optional bias) as parameters.
template <real_scalar T, device D = cpu::device>
class conv2d : public unary_module<T, D> {
 public:
  using typename module<T, D>::var;
  conv2d(const conv2d_layer_options& o, rng& g) : opt_(o) {
    LTL_CHECK(o.in_channels > 0 && o.out_channels > 0 && o.groups > 0 && o.in_channels % o.groups == 0 &&
                  o.out_channels % o.groups == 0,
              value_error, "conv2d layer: channels {} -> {} with groups {} are invalid", o.in_channels, o.out_channels,
              o.groups);
    const index_t kh = o.kernel.h, kw = o.kernel.w;
    tensor<T, host_device> w(shape{o.out_channels, o.in_channels / o.groups, kh, kw});
    // As torch.nn.init: fan_in = (Cin/groups)·k², fan_out = Cout·k² (weight.size(0)·receptive field).
    const index_t fan_in = (o.in_channels / o.groups) * kh * kw, fan_out = o.out_channels * kh * kw;
    switch (o.init) {
      case conv_init::kaiming_fan_in: init::kaiming_normal(w, fan_in, g); break;
      case conv_init::kaiming_fan_out: init::kaiming_normal_fan_out(w, fan_out, g); break;
      case conv_init::pytorch_default: init::default_weight(w, fan_in, g); break;
    }
    weight = this->register_parameter("weight", w.template to<D>());
    if (o.bias) {
      tensor<T, host_device> b(shape{o.out_channels});
      init::default_weight(b, fan_in, g);
      bias = this->register_parameter("bias", b.template to<D>());
    }
  }
  var forward(const var& x) override {
    return ltl::conv2d(x, weight, bias, {.stride = opt_.stride, .padding = opt_.padding, .groups = opt_.groups});
  }
  [[nodiscard]] const conv2d_layer_options& options() const noexcept { return opt_; }

  var weight;  ///< [Cout, Cin/groups, KH, KW]
  var bias;    ///< [Cout] or undefined

 private:
  conv2d_layer_options opt_;
};

}  // namespace ltl::nn
