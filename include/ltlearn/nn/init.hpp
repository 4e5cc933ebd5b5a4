#pragma once
/// \file
/// Parameter initialisers (as torch.nn.init), driven by an explicit ltl::rng for reproducibility.
/// They fill host tensors; layers draw their parameters on the host and move them to their
/// device, so that a model draws the same numbers whatever device it lives on.

#include "ltlearn/core/rng.hpp"
#include "ltlearn/tensor/tensor.hpp"

#include <cmath>

namespace ltl::nn::init {

/// Fills a host tensor with U(lo, hi).
template <class T>
void uniform(tensor<T, host_device>& t, double lo, double hi, rng& g) {
  LTL_CHECK(t.is_contiguous(), value_error, "init::uniform: tensor must be contiguous");
  T* p = t.data();
  for (index_t i = 0; i < t.numel(); ++i) p[i] = static_cast<T>(g.uniform(lo, hi));
}
/// Fills a host tensor with N(mean, std²).
template <class T>
void normal(tensor<T, host_device>& t, double mean, double stddev, rng& g) {
  LTL_CHECK(t.is_contiguous(), value_error, "init::normal: tensor must be contiguous");
  T* p = t.data();
  for (index_t i = 0; i < t.numel(); ++i) p[i] = static_cast<T>(g.normal(mean, stddev));
}
/// He et al. normal init in fan-in mode with the ReLU gain √2: N(0, 2/fan_in)
/// (torch.nn.init.kaiming_normal_ defaults; used by the reference CIFAR ResNets).
template <class T>
void kaiming_normal(tensor<T, host_device>& t, index_t fan_in, rng& g) {
  LTL_CHECK(fan_in > 0, value_error, "init::kaiming_normal: fan_in must be positive");
  normal(t, 0.0, std::sqrt(2.0 / static_cast<double>(fan_in)), g);
}
/// He et al. normal init in fan-out mode (torchvision's ImageNet ResNets).
template <class T>
void kaiming_normal_fan_out(tensor<T, host_device>& t, index_t fan_out, rng& g) {
  kaiming_normal(t, fan_out, g);
}
/// PyTorch's default Linear/Conv weight init, kaiming_uniform(a = √5): U(±1/√fan_in).
template <class T>
void default_weight(tensor<T, host_device>& t, index_t fan_in, rng& g) {
  LTL_CHECK(fan_in > 0, value_error, "init::default_weight: fan_in must be positive");
  const double b = 1.0 / std::sqrt(static_cast<double>(fan_in));
  uniform(t, -b, b, g);
}

}  // namespace ltl::nn::init
