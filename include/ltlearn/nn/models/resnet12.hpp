#pragma once
/// \file
/// ResNet-12 of few-shot learning (Lee et al. 2019, MetaOptNet; Ye et al. 2020, FEAT), the
/// backbone the MFW paper (Chou et al., §5.1 and App. C.5) uses for Step Tiered-ImageNet (84×84).
///
///   stage1 … stage4: one residual block each with 64/160/320/640 channels       [N, w_k, H/2^k, W/2^k]
///     block: 3 × (conv 3×3 → BN → LeakyReLU 0.1), the last LeakyReLU after the residual add
///            with a 1×1 conv + BN shortcut, then max-pool 2×2/2
///   pool   global average pool                                                   [N, 640]
///   fc     linear 640 → C (or a cosine classifier)                               [N, C]
///
/// Input [N, in_channels, H, W]; H and W must survive four halvings (84 → 5, 32 → 2).
///
/// Points and groups: there is no convolution before the first residual block, so the points
/// are {"stage1", …, "stage4", "pool", "fc"} and, following the paper's definition of a group
/// ("a residual block and the convolutional layers before the first residual block each as a
/// group", §5.1), group k is block k: `group_point(2)` is "stage2", MFW's default.
///
/// Differences from the reference code, on purpose: DropBlock is omitted (MetaOptNet/FEAT apply
/// DropBlock after blocks 3–4 and dropout 0.1 after blocks 1–2) — both are training-time
/// regularisers, not part of the architecture, and the MFW paper mentions neither; the 5×5
/// average pool of the 84×84 reference is a global average pool, the same for 84×84 inputs and
/// defined for others. Init as the reference: convs kaiming normal fan_out with gain √2 (the
/// reference's leaky_relu gain √(2/(1 + 0.01²)) differs by 0.005 %), BN weight 1 / bias 0, fc
/// PyTorch's default.

#include "ltlearn/nn/batchnorm.hpp"
#include "ltlearn/nn/conv.hpp"
#include "ltlearn/nn/linear.hpp"
#include "ltlearn/nn/pool.hpp"
#include "ltlearn/nn/sequential.hpp"
#include "ltlearn/nn/staged_model.hpp"
#include "ltlearn/ops/elementwise.hpp"
#include "ltlearn/ops/pool.hpp"

#include <array>
#include <cstdint>
#include <memory>
#include <string>

namespace ltl::nn {

/// Options of resnet12.
struct resnet12_options {
  index_t num_classes = 351;                          ///< Tiered-ImageNet's many-shot (training) classes
  index_t in_channels = 3;
  std::array<index_t, 4> widths{64, 160, 320, 640};  ///< channels of the four blocks
  double slope = 0.1;                                 ///< LeakyReLU negative slope
  bool normed_classifier = false;                     ///< cosine classifier instead of a linear one
  std::uint64_t seed = 0;                             ///< initialisation seed
};

/// One ResNet-12 block: x [N, in, H, W] → [N, out, ⌊H/2⌋, ⌊W/2⌋].
template <real_scalar T, device D = cpu::device>
class resnet12_block : public unary_module<T, D> {
 public:
  using typename module<T, D>::var;
  resnet12_block(index_t in, index_t out, double slope, rng& g) : slope_(static_cast<T>(slope)) {
    auto conv3x3 = [&](index_t cin) {
      return std::make_shared<conv2d<T, D>>(
          conv2d_layer_options{.in_channels = cin, .out_channels = out, .kernel = 3, .stride = 1, .padding = 1,
                               .init = conv_init::kaiming_fan_out},
          g);
    };
    conv1 = this->register_module("conv1", conv3x3(in));
    bn1 = this->register_module("bn1", std::make_shared<batch_norm2d<T, D>>(out));
    conv2 = this->register_module("conv2", conv3x3(out));
    bn2 = this->register_module("bn2", std::make_shared<batch_norm2d<T, D>>(out));
    conv3 = this->register_module("conv3", conv3x3(out));
    bn3 = this->register_module("bn3", std::make_shared<batch_norm2d<T, D>>(out));
    // The reference always projects: every block changes the width and (through its pool) the size.
    downsample = this->register_module("downsample", std::make_shared<sequential<T, D>>());
    downsample->template emplace<conv2d<T, D>>(
        conv2d_layer_options{.in_channels = in, .out_channels = out, .kernel = 1, .init = conv_init::kaiming_fan_out},
        g);
    downsample->template emplace<batch_norm2d<T, D>>(out);
  }
  var forward(const var& x) override {
    var h = ltl::leaky_relu(bn1->forward(conv1->forward(x)), slope_);
    h = ltl::leaky_relu(bn2->forward(conv2->forward(h)), slope_);
    h = bn3->forward(conv3->forward(h));
    h = ltl::leaky_relu(h + downsample->forward(x), slope_);
    return ltl::max_pool2d(h, pool2d_options{.kernel = 2, .stride = 2});
  }

  std::shared_ptr<conv2d<T, D>> conv1, conv2, conv3;
  std::shared_ptr<batch_norm2d<T, D>> bn1, bn2, bn3;
  std::shared_ptr<sequential<T, D>> downsample;  ///< 1×1 conv → BN

 private:
  T slope_;
};

/// ResNet-12 with points stage1–4, pool, fc (group k = block k).
template <real_scalar T, device D = cpu::device>
class resnet12 : public staged_model<T, D> {
 public:
  explicit resnet12(const resnet12_options& o) : opt_(o) {
    LTL_CHECK(o.num_classes > 0 && o.in_channels > 0, value_error,
              "resnet12: classes {} and input channels {} must be positive", o.num_classes, o.in_channels);
    for (index_t w : o.widths) LTL_CHECK(w > 0, value_error, "resnet12: block widths must be positive, got {}", w);
    LTL_CHECK(o.slope >= 0.0, value_error, "resnet12: LeakyReLU slope must be non-negative, got {}", o.slope);
    rng g(o.seed);
    index_t in = o.in_channels;
    for (std::size_t s = 0; s < 4; ++s) {
      this->add_stage("stage" + std::to_string(s + 1),
                      std::make_shared<resnet12_block<T, D>>(in, o.widths[s], o.slope, g));
      in = o.widths[s];
    }
    this->add_stage("pool", std::make_shared<global_avg_pool<T, D>>());
    if (o.normed_classifier) {
      this->add_stage("fc", std::make_shared<normed_linear<T, D>>(in, o.num_classes, g));
    } else {
      this->add_stage("fc", std::make_shared<linear<T, D>>(
                                linear_options{.in_features = in, .out_features = o.num_classes}, g));
    }
  }
  [[nodiscard]] const resnet12_options& options() const noexcept { return opt_; }
  /// Dimension of the pooled feature f(x) (the last block's width, 640 by default).
  [[nodiscard]] index_t feature_dim() const noexcept { return opt_.widths[3]; }

 private:
  resnet12_options opt_;
};

}  // namespace ltl::nn
