#pragma once
/// \file
/// Fully connected layers: nn::linear (x·Wᵀ + b) and nn::normed_linear, the cosine classifier
/// used with LDAM (Cao et al.): z_c = ⟨x/‖x‖, w_c/‖w_c‖⟩. Shapes: x [N, in] → z [N, out].

#include "ltlearn/nn/init.hpp"
#include "ltlearn/nn/module.hpp"
#include "ltlearn/ops/activation.hpp"
#include "ltlearn/ops/linalg.hpp"

namespace ltl::nn {

/// Options of nn::linear.
struct linear_options {
  index_t in_features = 0;
  index_t out_features = 0;
  bool bias = true;
  /// "default": PyTorch's U(±1/√in) for weight and bias; "kaiming": N(0, 2/in) weight
  /// (the CIFAR ResNets of the LDAM/CDT code base), bias as default.
  bool kaiming = false;
};

/// y = x·Wᵀ + b with W [out, in], b [out].
template <real_scalar T, device D = cpu::device>
class linear : public unary_module<T, D> {
 public:
  using typename module<T, D>::var;
  linear(linear_options o, rng& g) : opt_(o) {
    LTL_CHECK(o.in_features > 0 && o.out_features > 0, value_error, "linear: features must be positive ({} -> {})",
              o.in_features, o.out_features);
    tensor<T, host_device> w(shape{o.out_features, o.in_features});
    if (o.kaiming) {
      init::kaiming_normal(w, o.in_features, g);
    } else {
      init::default_weight(w, o.in_features, g);
    }
    weight = this->register_parameter("weight", w.template to<D>());
    if (o.bias) {
      tensor<T, host_device> b(shape{o.out_features});
      init::default_weight(b, o.in_features, g);
      bias = this->register_parameter("bias", b.template to<D>());
    }
  }
  var forward(const var& x) override { return ltl::linear(x, weight, bias); }
  [[nodiscard]] const linear_options& options() const noexcept { return opt_; }

  var weight;  ///< [out, in]
  var bias;    ///< [out], undefined without bias

 private:
  linear_options opt_;
};

/// Cosine classifier: z = normalize(x)·normalize(W)ᵀ with W [out, in], no bias. Scale the
/// logits in the loss (LDAM's s = 30).
template <real_scalar T, device D = cpu::device>
class normed_linear : public unary_module<T, D> {
 public:
  using typename module<T, D>::var;
  normed_linear(index_t in_features, index_t out_features, rng& g) {
    LTL_CHECK(in_features > 0 && out_features > 0, value_error, "normed_linear: features must be positive ({} -> {})",
              in_features, out_features);
    tensor<T, host_device> w(shape{out_features, in_features});
    init::uniform(w, -1.0, 1.0, g);  // direction only matters: rows are normalised in forward
    weight = this->register_parameter("weight", w.template to<D>());
  }
  var forward(const var& x) override {
    return ltl::linear(ltl::l2_normalize(x, 1), ltl::l2_normalize(weight, 1));
  }

  var weight;  ///< [out, in]
};

}  // namespace ltl::nn
