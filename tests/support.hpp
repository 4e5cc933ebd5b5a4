#pragma once
// Helpers shared by the test binaries: seeded random tensors, gradient checks, error checks.

#include <catch2/catch.hpp>
#include <ltlearn/autograd/gradcheck.hpp>
#include <ltlearn/core/rng.hpp>

#include <functional>
#include <string>
#include <vector>

namespace ltl_test {

/// A tensor of shape s with entries U(lo, hi) from ltl::rng(seed).
template <class T = double>
ltl::tensor<T> random_tensor(const ltl::shape& s, std::uint64_t seed, double lo = -1, double hi = 1) {
  ltl::rng g(seed);
  ltl::tensor<T> t(s);
  for (ltl::index_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<T>(g.uniform(lo, hi));
  return t;
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

}  // namespace ltl_test
