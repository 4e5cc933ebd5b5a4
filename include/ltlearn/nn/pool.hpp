#pragma once
/// \file
/// Pooling layers: nn::max_pool2d, nn::avg_pool2d ([N, C, H, W] → [N, C, Ho, Wo]) and
/// nn::global_avg_pool ([N, C, H, W] → [N, C], the pooled feature f(x) of the ResNets).

#include "ltlearn/nn/module.hpp"
#include "ltlearn/ops/pool.hpp"

namespace ltl::nn {

template <real_scalar T, device D = cpu::device>
class max_pool2d : public unary_module<T, D> {
 public:
  using typename module<T, D>::var;
  explicit max_pool2d(pool2d_options o) : opt_(o) {}
  var forward(const var& x) override { return ltl::max_pool2d(x, opt_); }

 private:
  pool2d_options opt_;
};

template <real_scalar T, device D = cpu::device>
class avg_pool2d : public unary_module<T, D> {
 public:
  using typename module<T, D>::var;
  explicit avg_pool2d(pool2d_options o) : opt_(o) {}
  var forward(const var& x) override { return ltl::avg_pool2d(x, opt_); }

 private:
  pool2d_options opt_;
};

template <real_scalar T, device D = cpu::device>
class global_avg_pool : public unary_module<T, D> {
 public:
  using typename module<T, D>::var;
  var forward(const var& x) override { return ltl::global_avg_pool(x); }
};

}  // namespace ltl::nn
