#pragma once
/// \file
/// Activation layers: nn::relu, nn::leaky_relu (shape-preserving).

#include "ltlearn/nn/module.hpp"
#include "ltlearn/ops/elementwise.hpp"

namespace ltl::nn {

/// max(x, 0).
template <real_scalar T, device D = cpu::device>
class relu : public unary_module<T, D> {
 public:
  using typename module<T, D>::var;
  var forward(const var& x) override { return ltl::relu(x); }
};

/// max(x, 0) + slope·min(x, 0).
template <real_scalar T, device D = cpu::device>
class leaky_relu : public unary_module<T, D> {
 public:
  using typename module<T, D>::var;
  explicit leaky_relu(double slope = 0.01) : slope_(slope) {}
  var forward(const var& x) override { return ltl::leaky_relu(x, static_cast<T>(slope_)); }

 private:
  double slope_;
};

}  // namespace ltl::nn
