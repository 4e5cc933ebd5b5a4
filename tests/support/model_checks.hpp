#pragma once
// Checks shared by the model tests (nn/models/resnet.cpp, nn/models/torchvision.cpp): a seeded
// input, the walk through a staged model's named points, and a backward through every logit.

#include <catch2/catch.hpp>
#include <ltlearn/autograd/variable.hpp>
#include <ltlearn/core/rng.hpp>
#include <ltlearn/ops/elementwise.hpp>
#include <ltlearn/ops/reduce.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ltl_test {

/// A float input of shape `s` with N(0, 1) entries from ltl::rng(seed).
inline ltl::variable<float> random_input(const ltl::shape& s, std::uint64_t seed) {
  ltl::rng g(seed);
  ltl::tensor<float> x(s);
  for (ltl::index_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(g.normal());
  return ltl::variable<float>(x);
}

/// Runs `m` from `x` one named point at a time, requiring point p's output to have the shape
/// `expected[p]`; returns the last point's output (the logits).
template <class Model>
ltl::variable<float> run_points(Model& m, const ltl::variable<float>& x, const std::vector<ltl::shape>& expected) {
  ltl::variable<float> h = x;
  for (int p = 0; p <= m.last_point(); ++p) {
    h = m.run(h, p - 1, p);
    INFO("point " << m.points()[static_cast<std::size_t>(p)]);
    REQUIRE(h.sizes() == expected[static_cast<std::size_t>(p)]);
  }
  return h;
}

/// Backpropagates sum(logits²), a loss that depends on every logit, through `m`; every parameter
/// must receive a gradient, which `check_grad(parameter)` then checks further (a failure names
/// the parameter).
template <class Model, class CheckGrad>
void backward_through_logits(Model& m, const ltl::variable<float>& logits, CheckGrad&& check_grad) {
  auto loss = ltl::sum(logits * logits);
  loss.backward();
  for (auto& [name, param] : m.named_parameters()) {
    INFO(name);
    REQUIRE(param.grad().defined());
    check_grad(param);
  }
}

}  // namespace ltl_test
