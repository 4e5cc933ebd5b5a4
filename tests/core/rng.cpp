// Tests of core/rng.hpp's distributions used by the mixing policies.
#include <catch2/catch.hpp>

#include <ltlearn/core/rng.hpp>

#include <utility>

TEST_CASE("Beta sampling has the right mean and variance", "[mixing][rng]") {
  for (auto [a, b] : {std::pair{0.2, 0.2}, std::pair{1.0, 1.0}, std::pair{2.0, 5.0}}) {
    ltl::rng g(17);
    double s = 0, s2 = 0;
    const int n = 200000;
    for (int i = 0; i < n; ++i) {
      const double x = g.beta(a, b);
      REQUIRE((x >= 0 && x <= 1));
      s += x;
      s2 += x * x;
    }
    const double mean = s / n, var = s2 / n - mean * mean;
    INFO("Beta(" << a << ", " << b << ")");
    REQUIRE(mean == Approx(a / (a + b)).margin(0.004));
    REQUIRE(var == Approx(a * b / ((a + b) * (a + b) * (a + b + 1))).margin(0.002));
  }
}
