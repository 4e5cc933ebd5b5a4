#pragma once
/// \file
/// ImageNet ResNets (He et al. 2016) and ResNeXt (Xie et al. 2017) exactly as torchvision
/// builds them (v1.5: the bottleneck strides on its 3×3 conv):
///
///   stem   conv 7×7/2 pad 3 → BN → ReLU → max-pool 3×3/2 pad 1          [N, 64, H/4, W/4]
///   stage1 … stage4: blocks with 64/128/256/512 planes (× 4 for bottlenecks); stages 2–4
///          start with a stride-2 block                                      [N, 512·e, H/32, W/32]
///   pool   global average pool                                              [N, F = 512·e]
///   fc     linear F → C (or a cosine classifier)                            [N, C]
///
/// Input [N, in_channels, H, W] (224×224 ImageNet/iNaturalist, 64×64 Tiny-ImageNet).
/// Depths: 10 [1,1,1,1] and 18 [2,2,2,2] and 34 [3,4,6,3] with basic blocks; 50 [3,4,6,3],
/// 101 [3,4,23,3] and 152 [3,8,36,3] with bottlenecks. ResNeXt-50 32×4d is depth 50 with
/// groups = 32, width_per_group = 4 (`resnext50_32x4d_options`). Parameter names follow
/// torchvision with layerK → stageK and conv1/bn1 → stem.0/stem.1, so weights port by renaming.

#include "ltlearn/nn/activation.hpp"
#include "ltlearn/nn/batchnorm.hpp"
#include "ltlearn/nn/conv.hpp"
#include "ltlearn/nn/conv_bn.hpp"
#include "ltlearn/nn/init.hpp"
#include "ltlearn/nn/linear.hpp"
#include "ltlearn/nn/pool.hpp"
#include "ltlearn/nn/sequential.hpp"
#include "ltlearn/nn/staged_model.hpp"
#include "ltlearn/ops/elementwise.hpp"

#include <array>
#include <cstdint>
#include <memory>
#include <string>

namespace ltl::nn {

/// Residual block kind of an ImageNet ResNet.
enum class resnet_block_kind {
  basic,       ///< two 3×3 convs, expansion 1 (ResNet-10/18/34)
  bottleneck,  ///< 1×1 → 3×3 (strided, grouped) → 1×1, expansion 4 (ResNet-50/101/152, ResNeXt)
};

/// Options of nn::resnet.
struct resnet_options {
  int depth = 50;                   ///< 10, 18, 34, 50, 101 or 152
  index_t num_classes = 1000;
  index_t in_channels = 3;
  index_t groups = 1;               ///< cardinality of the bottleneck 3×3 conv (ResNeXt: 32)
  index_t width_per_group = 64;     ///< bottleneck width at 64 planes per group (ResNeXt 32×4d: 4)
  bool zero_init_residual = false;  ///< last BN weight of every block = 0 (Goyal et al. 2017)
  bool normed_classifier = false;   ///< cosine classifier (LDAM) instead of a linear one
  std::uint64_t seed = 0;           ///< initialisation seed
};

/// torchvision's resnext50_32x4d: depth 50, 32 groups of width 4 at the first stage.
[[nodiscard]] inline resnet_options resnext50_32x4d_options(index_t num_classes = 1000, std::uint64_t seed = 0) {
  return resnet_options{.depth = 50, .num_classes = num_classes, .groups = 32, .width_per_group = 4, .seed = seed};
}

/// Block kind and blocks per stage of a depth.
struct resnet_layout {
  resnet_block_kind kind = resnet_block_kind::basic;
  std::array<int, 4> blocks{};
  /// Output channels of a block per plane (1 basic, 4 bottleneck).
  [[nodiscard]] index_t expansion() const noexcept { return kind == resnet_block_kind::basic ? 1 : 4; }
};

/// The layout of ResNet-`depth`; value_error for a depth not in {10, 18, 34, 50, 101, 152}.
[[nodiscard]] inline resnet_layout resnet_layout_for(int depth) {
  using k = resnet_block_kind;
  switch (depth) {
    case 10: return {k::basic, {1, 1, 1, 1}};
    case 18: return {k::basic, {2, 2, 2, 2}};
    case 34: return {k::basic, {3, 4, 6, 3}};
    case 50: return {k::bottleneck, {3, 4, 6, 3}};
    case 101: return {k::bottleneck, {3, 4, 23, 3}};
    case 152: return {k::bottleneck, {3, 8, 36, 3}};
    default: break;
  }
  throw value_error(fmt::format("resnet: depth {} is not one of 10, 18, 34, 50, 101, 152", depth));
}

namespace detail {

/// A torchvision-style convolution: padding k/2, no bias, Kaiming-normal in fan-out mode.
template <real_scalar T, device D>
std::shared_ptr<conv2d<T, D>> torchvision_conv(index_t in, index_t out, index_t kernel, index_t stride,
                                               index_t groups, rng& g) {
  return std::make_shared<conv2d<T, D>>(
      conv2d_layer_options{.in_channels = in, .out_channels = out, .kernel = kernel, .stride = stride,
                           .padding = kernel / 2, .groups = groups, .init = conv_init::kaiming_fan_out},
      g);
}

/// torchvision's `downsample`: 1×1 conv (stride) → BN, registered as children "0" and "1".
template <real_scalar T, device D>
std::shared_ptr<sequential<T, D>> projection_shortcut(index_t in, index_t out, index_t stride, rng& g) {
  auto s = std::make_shared<sequential<T, D>>();
  s->push_back(torchvision_conv<T, D>(in, out, 1, stride, 1, g));
  s->template emplace<batch_norm2d<T, D>>(out);
  return s;
}

}  // namespace detail

/// BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)); conv1 carries the stride.
/// x [N, in, H, W] → [N, planes, H/stride, W/stride].
template <real_scalar T, device D = cpu::device>
class basic_block : public unary_module<T, D> {
 public:
  using typename module<T, D>::var;
  static constexpr index_t expansion = 1;

  /// `groups` and `width_per_group` exist for a uniform block interface; like torchvision, a
  /// basic block accepts only 1 and 64.
  basic_block(index_t in, index_t planes, index_t stride, index_t groups, index_t width_per_group, rng& g) {
    LTL_CHECK(groups == 1 && width_per_group == 64, value_error,
              "basic_block: supports only groups = 1 and width_per_group = 64, got {} and {}", groups,
              width_per_group);
    conv1 = this->register_module("conv1", detail::torchvision_conv<T, D>(in, planes, 3, stride, 1, g));
    bn1 = this->register_module("bn1", std::make_shared<batch_norm2d<T, D>>(planes));
    conv2 = this->register_module("conv2", detail::torchvision_conv<T, D>(planes, planes, 3, 1, 1, g));
    bn2 = this->register_module("bn2", std::make_shared<batch_norm2d<T, D>>(planes));
    if (stride != 1 || in != planes)
      downsample = this->register_module("downsample", detail::projection_shortcut<T, D>(in, planes, stride, g));
  }
  var forward(const var& x) override {
    var h = conv_bn(*conv1, *bn1, x, true);  // batch norm, residual add and ReLU fused (nn::conv_bn)
    return conv_bn(*conv2, *bn2, h, true, downsample ? downsample->forward(x) : x);
  }
  /// The BN whose output meets the shortcut (zeroed by zero_init_residual).
  [[nodiscard]] batch_norm2d<T, D>& last_bn() noexcept { return *bn2; }

  std::shared_ptr<conv2d<T, D>> conv1, conv2;
  std::shared_ptr<batch_norm2d<T, D>> bn1, bn2;
  std::shared_ptr<sequential<T, D>> downsample;  ///< null for an identity shortcut
};

/// Bottleneck (v1.5): relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x))))))) + shortcut(x)) with
/// conv1 1×1 in → w, conv2 3×3 w → w (stride, groups), conv3 1×1 w → 4·planes, where
/// w = ⌊planes·width_per_group/64⌋·groups. x [N, in, H, W] → [N, 4·planes, H/stride, W/stride].
template <real_scalar T, device D = cpu::device>
class bottleneck_block : public unary_module<T, D> {
 public:
  using typename module<T, D>::var;
  static constexpr index_t expansion = 4;

  bottleneck_block(index_t in, index_t planes, index_t stride, index_t groups, index_t width_per_group, rng& g) {
    LTL_CHECK(groups >= 1 && width_per_group >= 1 && planes * width_per_group >= 64, value_error,
              "bottleneck_block: groups {} and width_per_group {} give no channels at {} planes", groups,
              width_per_group, planes);
    const index_t width = planes * width_per_group / 64 * groups, out = planes * expansion;
    conv1 = this->register_module("conv1", detail::torchvision_conv<T, D>(in, width, 1, 1, 1, g));
    bn1 = this->register_module("bn1", std::make_shared<batch_norm2d<T, D>>(width));
    conv2 = this->register_module("conv2", detail::torchvision_conv<T, D>(width, width, 3, stride, groups, g));
    bn2 = this->register_module("bn2", std::make_shared<batch_norm2d<T, D>>(width));
    conv3 = this->register_module("conv3", detail::torchvision_conv<T, D>(width, out, 1, 1, 1, g));
    bn3 = this->register_module("bn3", std::make_shared<batch_norm2d<T, D>>(out));
    if (stride != 1 || in != out)
      downsample = this->register_module("downsample", detail::projection_shortcut<T, D>(in, out, stride, g));
  }
  var forward(const var& x) override {
    var h = conv_bn(*conv1, *bn1, x, true);  // batch norm, residual add and ReLU fused (nn::conv_bn)
    h = conv_bn(*conv2, *bn2, h, true);
    return conv_bn(*conv3, *bn3, h, true, downsample ? downsample->forward(x) : x);
  }
  /// The BN whose output meets the shortcut (zeroed by zero_init_residual).
  [[nodiscard]] batch_norm2d<T, D>& last_bn() noexcept { return *bn3; }

  std::shared_ptr<conv2d<T, D>> conv1, conv2, conv3;
  std::shared_ptr<batch_norm2d<T, D>> bn1, bn2, bn3;
  std::shared_ptr<sequential<T, D>> downsample;  ///< null for an identity shortcut
};

/// ResNet-{10, 18, 34, 50, 101, 152} and ResNeXt with points stem, stage1–4, pool, fc; the MFW
/// groups are the stem (group 1) and the four stages (groups 2–5).
template <real_scalar T, device D = cpu::device>
class resnet : public staged_model<T, D> {
 public:
  explicit resnet(const resnet_options& o) : opt_(o), layout_(resnet_layout_for(o.depth)) {
    LTL_CHECK(o.num_classes > 0 && o.in_channels > 0, value_error,
              "resnet: classes {} and input channels {} must be positive", o.num_classes, o.in_channels);
    LTL_CHECK(layout_.kind == resnet_block_kind::bottleneck || (o.groups == 1 && o.width_per_group == 64),
              value_error, "resnet-{}: basic blocks need groups = 1 and width_per_group = 64, got {} and {}", o.depth,
              o.groups, o.width_per_group);
    LTL_CHECK(o.groups >= 1 && o.width_per_group >= 1, value_error,
              "resnet: groups {} and width_per_group {} must be positive", o.groups, o.width_per_group);
    rng g(o.seed);
    auto stem = std::make_shared<sequential<T, D>>();
    stem->push_back(detail::torchvision_conv<T, D>(o.in_channels, 64, 7, 2, 1, g));
    stem->template emplace<batch_norm2d<T, D>>(64);
    stem->template emplace<relu<T, D>>();
    stem->template emplace<max_pool2d<T, D>>(pool2d_options{.kernel = 3, .stride = 2, .padding = 1});
    this->add_stage("stem", stem);
    if (layout_.kind == resnet_block_kind::basic) {
      add_stages<basic_block<T, D>>(g);
    } else {
      add_stages<bottleneck_block<T, D>>(g);
    }
    const index_t f = feature_dim();
    this->add_stage("pool", std::make_shared<global_avg_pool<T, D>>());
    if (o.normed_classifier) {
      this->add_stage("fc", std::make_shared<normed_linear<T, D>>(f, o.num_classes, g));
    } else {
      this->add_stage("fc", std::make_shared<linear<T, D>>(
                                linear_options{.in_features = f, .out_features = o.num_classes}, g));
    }
  }
  [[nodiscard]] const resnet_options& options() const noexcept { return opt_; }
  [[nodiscard]] const resnet_layout& layout() const noexcept { return layout_; }
  /// Dimension of the pooled feature f(x): 512 (basic) or 2048 (bottleneck).
  [[nodiscard]] index_t feature_dim() const noexcept { return 512 * layout_.expansion(); }

 private:
  template <class Block>
  void add_stages(rng& g) {
    index_t in = 64;
    for (int s = 0; s < 4; ++s) {
      const index_t planes = index_t{64} << s;
      auto stage = std::make_shared<sequential<T, D>>();
      for (int b = 0; b < layout_.blocks[static_cast<std::size_t>(s)]; ++b) {
        const index_t stride = (b == 0 && s > 0) ? 2 : 1;
        auto blk = stage->template emplace<Block>(in, planes, stride, opt_.groups, opt_.width_per_group, g);
        if (opt_.zero_init_residual) blk->last_bn().weight.value().zero_();
        in = planes * Block::expansion;
      }
      this->add_stage("stage" + std::to_string(s + 1), stage);
    }
  }

  resnet_options opt_;
  resnet_layout layout_;
};

}  // namespace ltl::nn
