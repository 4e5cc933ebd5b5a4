#pragma once
// Helpers shared by the test binaries: seeded random tensors, gradient checks, error checks.

#include <catch2/catch.hpp>
#include <ltlearn/autograd/gradcheck.hpp>
#include <ltlearn/ops/default_kernels.hpp>  // require_gradcheck instantiates the CPU kernels
#include <ltlearn/core/rng.hpp>

#include "support/random_tensor.hpp"  // ltl_test::random_tensor

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace ltl_test {

/// A double tensor of shape s holding start, start + step, start + 2·step, … in row-major order.
inline ltl::tensor<double> iota(const ltl::shape& s, double start = 1, double step = 1) {
  ltl::tensor<double> t(s);
  for (ltl::index_t i = 0; i < t.numel(); ++i) t.data()[i] = start + step * double(i);
  return t;
}

/// The float tensor `t` in double, element by element (exactly: every float is a double).
inline ltl::tensor<double> to_double(const ltl::tensor<float>& t) {
  const auto v = t.to_vector();
  ltl::tensor<double> d(t.sizes());
  std::copy(v.begin(), v.end(), d.data());
  return d;
}

/// A double leaf that requires grad, with random entries.
inline ltl::variable<double> leaf(const ltl::shape& s, std::uint64_t seed, double lo = -1, double hi = 1) {
  return ltl::variable<double>(random_tensor(s, seed, lo, hi), true);
}

/// Central-difference gradient check of f at `in`; prints the failing elements.
inline void require_gradcheck(
    const std::function<ltl::variable<double>(const std::vector<ltl::variable<double>>&)>& f,
    std::vector<ltl::variable<double>> in) {
  auto r = ltl::gradcheck<ltl::cpu::device>(f, std::move(in));
  INFO(r.report);
  REQUIRE(r.ok);
}

/// Runs f, which must throw E, and checks that the message contains every string in `parts`.
template <class E, class F>
void require_error(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
    FAIL("expected an error");
  } catch (const E& e) {
    const std::string msg = e.what();
    INFO("message: " << msg);
    for (const auto& p : parts) REQUIRE_THAT(msg, Catch::Contains(p));
  }
}

/// Elementwise |got − want| ≤ atol + rtol·|want|; reports the worst element.
template <class A, class B>
void require_close(const A& got, const B& want, double atol, double rtol = 0) {
  REQUIRE(got.sizes() == want.sizes());
  const auto g = got.to_vector();
  const auto w = want.to_vector();
  double worst = 0;
  std::size_t worst_i = 0;
  for (std::size_t i = 0; i < g.size(); ++i) {
    const double excess = std::abs(double(g[i]) - double(w[i])) - (atol + rtol * std::abs(double(w[i])));
    if (excess > worst) worst = excess, worst_i = i;
  }
  INFO("element " << worst_i << ": got " << double(g[worst_i]) << ", want " << double(w[worst_i]));
  REQUIRE(worst == 0);
}

inline void require_values(const ltl::tensor<double>& t, const std::vector<double>& want, double tol = 1e-12) {
  const auto v = t.to_vector();
  REQUIRE(v.size() == want.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    INFO("element " << i);
    REQUIRE(v[i] == Approx(want[i]).margin(tol));
  }
}

}  // namespace ltl_test
