#pragma once
/// \file
/// nn::batch_norm2d: batch normalisation over [N, C, H, W] with affine weight/bias [C] and
/// running statistics [C] (buffers), exactly as torch.nn.BatchNorm2d (momentum 0.1, eps 1e-5).
/// With a statistics reducer of more than one process (set_sync; dist::enable_sync_batch_norm
/// sets it on every layer of a model), training uses the global batch's statistics
/// (ops/sync_norm.hpp, PyTorch's SyncBatchNorm); with one process it is the plain layer.

#include "ltlearn/nn/module.hpp"
#include "ltlearn/ops/norm.hpp"
#include "ltlearn/ops/sync_norm.hpp"

#include <memory>
#include <utility>

namespace ltl::nn {

/// Batch normalisation layer; uses batch statistics in training mode, running ones in eval.
template <real_scalar T, device D = cpu::device>
class batch_norm2d : public unary_module<T, D> {
 public:
  using typename module<T, D>::var;
  explicit batch_norm2d(index_t channels, double momentum = 0.1, double eps = 1e-5) : momentum_(momentum), eps_(eps) {
    LTL_CHECK(channels > 0, value_error, "batch_norm2d layer: channels must be positive, got {}", channels);
    weight = this->register_parameter("weight", tensor<T, D>::ones(shape{channels}));
    bias = this->register_parameter("bias", tensor<T, D>::zeros(shape{channels}));
    running_mean = this->register_buffer("running_mean", tensor<T, D>::zeros(shape{channels}));
    running_var = this->register_buffer("running_var", tensor<T, D>::ones(shape{channels}));
  }
  var forward(const var& x) override { return forward_fused(x, var{}, false); }
  /// relu(bn(x) + residual) in one fused op (`residual` may be undefined): a ResNet block's
  /// epilogue without separate add and ReLU passes.
  var forward_relu(const var& x, const var& residual = {}) { return forward_fused(x, residual, true); }
  /// bn(x) + residual, then max(0, ·) if `relu`, in one fused op (`residual` may be undefined).
  var forward_fused(const var& x, const var& residual, bool relu) {
    if (sync_ && sync_->size() > 1 && this->is_training())
      return ltl::sync_batch_norm2d(x, weight, bias, running_mean, running_var,
                                    {.training = true, .momentum = momentum_, .eps = eps_, .relu = relu}, residual,
                                    sync_);
    return ltl::batch_norm2d(x, weight, bias, running_mean, running_var,
                             {.training = this->is_training(), .momentum = momentum_, .eps = eps_, .relu = relu},
                             residual);
  }

  [[nodiscard]] double eps() const noexcept { return eps_; }
  /// Shares training statistics with the processes of `reducer` (null: this process alone).
  void set_sync(std::shared_ptr<batch_stat_reducer> reducer) noexcept { sync_ = std::move(reducer); }
  /// The statistics reducer (null when the layer is not synchronised).
  [[nodiscard]] const std::shared_ptr<batch_stat_reducer>& sync() const noexcept { return sync_; }

  var weight, bias;                       ///< [C]
  tensor<T, D> running_mean, running_var;  ///< [C] buffers, updated in place in training mode

 private:
  double momentum_, eps_;
  std::shared_ptr<batch_stat_reducer> sync_;
};

}  // namespace ltl::nn
