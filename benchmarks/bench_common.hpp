#pragma once
// Shared fixtures of the ltlearn benchmarks: the ResNet-32 training and evaluation steps, the
// loss variants and deterministic random inputs. compare_pytorch.py runs the same workloads.

#include <ltlearn/ltlearn.hpp>
#include <ltlearn/losses/fused_loss.hpp>
#include <ltlearn/losses/policies.hpp>
#include <ltlearn/nn/models/resnet_cifar.hpp>
#include <ltlearn/optim/sgd.hpp>

#include <algorithm>
#include <cmath>

#include <cstdint>
#include <string>
#include <vector>

namespace ltl_bench {

using ltl::index_t;

/// Standard-normal tensor of shape `s` from a fixed seed.
inline ltl::tensor<float> randn(const ltl::shape& s, std::uint64_t seed, double sd = 1.0) {
  ltl::rng g(seed);
  ltl::tensor<float> t(s);
  for (index_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<float>(g.normal(0.0, sd));
  return t;
}

/// Labels [B] uniform in [0, C).
inline ltl::tensor<std::int64_t> labels(index_t B, index_t C, std::uint64_t seed) {
  ltl::rng g(seed);
  ltl::tensor<std::int64_t> y(ltl::shape{B});
  for (index_t i = 0; i < B; ++i) y.data()[i] = static_cast<std::int64_t>(g.below(static_cast<std::uint64_t>(C)));
  return y;
}

/// Exponential long-tail class counts N_c = 5000·0.01^{c/(C−1)} (ρ = 100), as in the tests.
inline std::vector<double> lt_counts(index_t C) {
  std::vector<double> n(static_cast<std::size_t>(C));
  for (index_t c = 0; c < C; ++c)
    n[static_cast<std::size_t>(c)] =
        std::floor(5000.0 * std::pow(0.01, double(c) / double(std::max<index_t>(1, C - 1)))) + 1;
  return n;
}

/// The six loss variants of the benchmark, by index: CE, CDT, LDAM, logit-adjusted, CB-focal, DRW.
inline const char* loss_variant_name(int v) {
  static const char* names[] = {"ce", "cdt", "ldam", "la", "cb_focal", "drw"};
  return names[v];
}
inline ltl::loss_terms loss_variant_terms(int v, index_t C) {
  namespace l = ltl::losses;
  const auto n = lt_counts(C);
  switch (v) {
    case 0: return l::make_terms(l::cross_entropy{}, n, 0);
    case 1: return l::make_terms(l::cdt{.gamma = 0.2}, n, 0);
    case 2: return l::make_terms(l::ldam{}, n, 0);
    case 3: return l::make_terms(l::logit_adjust{.tau = 1.0}, n, 0);
    case 4: return l::make_terms(l::compose(l::class_balanced_weights{.beta = 0.9999}, l::focal{.gamma = 1.0}), n, 0);
    default: return l::make_terms(l::drw(0), n, 1);  // DRW after its start epoch: class-balanced weights
  }
}

/// ResNet-32 (option-A shortcuts) with SGD (momentum 0.9, weight decay 2e-4) and a fixed batch.
struct resnet_step {
  ltl::nn::resnet_cifar<float> model;
  ltl::optim::sgd<float> opt;
  ltl::tensor<float> x;
  ltl::tensor<std::int64_t> y;

  resnet_step(index_t batch, index_t channels, index_t hw)
      : model({.depth = 32, .num_classes = 10, .in_channels = channels, .seed = 1}),
        opt(model.named_parameters(), {.momentum = 0.9, .weight_decay = 2e-4}),
        x(randn(ltl::shape{batch, channels, hw, hw}, 7)),
        y(labels(batch, 10, 8)) {}

  /// Forward, loss, backward and the SGD update; returns the loss.
  float train() {
    model.train();
    ltl::variable<float> xv(x);
    auto loss = ltl::cross_entropy(model.forward(xv), y);
    opt.zero_grad();
    loss.backward();
    opt.step(0.01);
    return loss.value().item();
  }
  /// Inference forward (eval mode, no graph); returns one logit.
  float eval() {
    model.eval();
    ltl::no_grad_guard ng;
    auto z = model.forward(ltl::variable<float>(x));
    return z.value().data()[0];
  }
};

}  // namespace ltl_bench
