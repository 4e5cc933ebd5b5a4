// Tests of the autograd engine (autograd/variable.hpp, autograd/node.hpp, autograd/grad_mode.hpp):
// accumulation, graph release, misuse errors and the in-place gradient sums.
#include <catch2/catch.hpp>
#include <ltlearn/autograd/grad_mode.hpp>
#include <ltlearn/autograd/variable.hpp>
#include <ltlearn/ops/elementwise.hpp>
#include <ltlearn/ops/reduce.hpp>
#include <ltlearn/tensor/allocator.hpp>

#include "support.hpp"

using V = ltl::variable<double>;
using TD = ltl::tensor<double>;

using ltl_test::leaf;

TEST_CASE("autograd accumulates, releases and reports misuse", "[autograd]") {
  auto x = leaf({3}, 1);
  auto y = ltl::sum(x * x + x);  // x used three times
  y.backward();
  const auto g = x.grad().to_vector();
  for (int i = 0; i < 3; ++i) REQUIRE(g[i] == Approx(2 * x.value().data()[i] + 1));
  REQUIRE_THROWS_AS(y.backward(), ltl::autograd_error);
  auto z = ltl::sum(x * x);
  z.backward({.retain_graph = true});
  z.backward();
  for (int i = 0; i < 3; ++i) REQUIRE(x.grad().data()[i] == Approx(g[i] + 4 * x.value().data()[i]));
  {
    ltl::no_grad_guard ng;
    auto w = x * x;
    REQUIRE_FALSE(w.requires_grad());
  }
  auto c = V(TD::ones({3}));
  REQUIRE_THROWS_AS(ltl::sum(c).backward(), ltl::autograd_error);
}

TEST_CASE("gradients summed in place never write into a buffer another input still holds", "[autograd]") {
  // add's backward hands the same gradient to both inputs; x then receives a second
  // contribution. Summing it into the shared buffer would give y the gradient c + 5.
  // Both orders of the sum, so that either contribution reaches x first.
  auto x = leaf({4}, 11), y = leaf({4}, 12), c = leaf({4}, 13);
  for (int order = 0; order < 2; ++order) {
    x.zero_grad();
    y.zero_grad();
    // y also takes a long path (so its gradient is still pending while x's completes).
    auto ylong = ltl::sum(((((y * 2.0) * 2.0) * 2.0) * 2.0) * 0.5);
    auto loss = order == 0 ? ltl::sum((x + y) * c) + ltl::sum(x * 5.0) + ylong
                           : ylong + ltl::sum(x * 5.0) + ltl::sum((x + y) * c);
    loss.backward();
    for (int i = 0; i < 4; ++i) {
      REQUIRE(y.grad().data()[i] == Approx(c.value().data()[i] + 8));
      REQUIRE(x.grad().data()[i] == Approx(c.value().data()[i] + 5));
    }
  }
  // A fan-out of fresh gradients (the in-place path): a = 2x feeds three products.
  auto a = x * 2.0;
  auto l2 = ltl::sum(a * a) + ltl::sum(a * 3.0) + ltl::sum(a * c);
  x.zero_grad();
  l2.backward();
  for (int i = 0; i < 4; ++i) {
    const double xi = x.value().data()[i], ci = c.value().data()[i];
    REQUIRE(x.grad().data()[i] == Approx(2 * (2 * 2 * xi + 3 + ci)));
  }
}

TEST_CASE("saved buffers are released as soon as backward used them", "[autograd]") {
  auto& alloc = ltl::caching_allocator<ltl::cpu::device>::instance();
  V x(TD::zeros({256, 1024}), true);  // 2 MiB
  const auto before = alloc.stats().bytes_in_use;
  auto y = ltl::sum(ltl::exp(x));  // exp saves its 2 MiB output for backward
  const auto held = alloc.stats().bytes_in_use;
  REQUIRE(held >= before + 2 * 1024 * 1024);
  y.backward();
  // the gradient of x (2 MiB) is alive, exp's saved output is not
  REQUIRE(alloc.stats().bytes_in_use <= before + 2 * 1024 * 1024 + 4096);
  REQUIRE(x.grad().to_vector()[7] == 1.0);
}

