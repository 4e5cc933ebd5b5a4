#pragma once
/// \file
/// CIFAR ResNets (He et al. 2016, §4.2) as used by LDAM-DRW, CDT and MFW: a 3×3 stem conv to
/// 16 channels, three stages of n BasicBlocks with 16/32/64 channels (the first block of
/// stages 2 and 3 has stride 2), option-A shortcuts (stride-2 subsample + zero channel padding),
/// global average pooling and a 64 → C classifier. depth = 6n + 2: 20, 32, 44, 56, 110.
/// Input [N, in_channels, H, W] (32×32 CIFAR, 28×28 Fashion-MNIST) → logits [N, C].

#include "ltlearn/nn/activation.hpp"
#include "ltlearn/nn/batchnorm.hpp"
#include "ltlearn/nn/conv.hpp"
#include "ltlearn/nn/conv_bn.hpp"
#include "ltlearn/nn/linear.hpp"
#include "ltlearn/nn/pool.hpp"
#include "ltlearn/nn/sequential.hpp"
#include "ltlearn/nn/staged_model.hpp"
#include "ltlearn/ops/shape_ops.hpp"

#include <cstdint>

namespace ltl::nn {

/// Options of resnet_cifar.
struct resnet_cifar_options {
  int depth = 32;                  ///< 6n + 2
  index_t num_classes = 10;
  index_t in_channels = 3;
  index_t width = 16;              ///< channels of the first stage (doubled per stage)
  bool normed_classifier = false;  ///< cosine classifier (LDAM) instead of a linear one
  std::uint64_t seed = 0;          ///< initialisation seed
};

/// BasicBlock with an option-A shortcut: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).
template <real_scalar T, device D = cpu::device>
class basic_block_a : public unary_module<T, D> {
 public:
  using typename module<T, D>::var;
  basic_block_a(index_t in, index_t out, index_t stride, rng& g) : out_(out), stride_(stride) {
    conv1 = this->register_module("conv1", std::make_shared<conv2d<T, D>>(
                                               conv2d_layer_options{.in_channels = in, .out_channels = out, .kernel = 3,
                                                                    .stride = stride, .padding = 1},
                                               g));
    bn1 = this->register_module("bn1", std::make_shared<batch_norm2d<T, D>>(out));
    conv2 = this->register_module("conv2", std::make_shared<conv2d<T, D>>(
                                               conv2d_layer_options{.in_channels = out, .out_channels = out, .kernel = 3,
                                                                    .stride = 1, .padding = 1},
                                               g));
    bn2 = this->register_module("bn2", std::make_shared<batch_norm2d<T, D>>(out));
    identity_ = stride == 1 && in == out;
  }
  var forward(const var& x) override {
    // Batch norm, residual add and ReLU fused (nn::conv_bn: into batch norm in training, into
    // the convolution's store at inference).
    var h = conv_bn(*conv1, *bn1, x, true);
    return conv_bn(*conv2, *bn2, h, true, identity_ ? x : ltl::shortcut_a(x, out_, stride_));
  }

  std::shared_ptr<conv2d<T, D>> conv1, conv2;
  std::shared_ptr<batch_norm2d<T, D>> bn1, bn2;

 private:
  index_t out_, stride_;
  bool identity_ = true;
};

/// ResNet-{20, 32, 44, 56, 110} for small images, with points stem, stage1–3, pool, fc.
template <real_scalar T, device D = cpu::device>
class resnet_cifar : public staged_model<T, D> {
 public:
  explicit resnet_cifar(const resnet_cifar_options& o) : opt_(o) {
    LTL_CHECK(o.depth >= 8 && (o.depth - 2) % 6 == 0, value_error, "resnet_cifar: depth {} is not 6n + 2", o.depth);
    LTL_CHECK(o.num_classes > 0 && o.in_channels > 0 && o.width > 0, value_error,
              "resnet_cifar: classes {}, input channels {} and width {} must be positive", o.num_classes,
              o.in_channels, o.width);
    rng g(o.seed);
    const int n = (o.depth - 2) / 6;
    // conv → BN → ReLU; tensors named stem.0.* and stem.1.* as in the reference code's layout.
    this->add_stage("stem", std::make_shared<conv_bn_relu<T, D>>(
                                conv2d_layer_options{.in_channels = o.in_channels, .out_channels = o.width, .kernel = 3,
                                                     .padding = 1},
                                g));
    index_t in = o.width;
    for (int s = 0; s < 3; ++s) {
      const index_t out = o.width << s;
      auto stage = std::make_shared<sequential<T, D>>();
      for (int b = 0; b < n; ++b)
        stage->template emplace<basic_block_a<T, D>>(b == 0 ? in : out, out, (b == 0 && s > 0) ? 2 : 1, g);
      in = out;
      this->add_stage("stage" + std::to_string(s + 1), stage);
    }
    this->add_stage("pool", std::make_shared<global_avg_pool<T, D>>());
    if (o.normed_classifier) {
      this->add_stage("fc", std::make_shared<normed_linear<T, D>>(in, o.num_classes, g));
    } else {
      this->add_stage("fc", std::make_shared<linear<T, D>>(
                                linear_options{.in_features = in, .out_features = o.num_classes, .kaiming = true}, g));
    }
  }
  [[nodiscard]] const resnet_cifar_options& options() const noexcept { return opt_; }
  /// Dimension of the pooled feature f(x).
  [[nodiscard]] index_t feature_dim() const noexcept { return opt_.width << 2; }

 private:
  resnet_cifar_options opt_;
};

}  // namespace ltl::nn
