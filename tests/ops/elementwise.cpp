// Tests of the elementwise, reduction and linear-algebra ops (ops/elementwise.hpp, ops/reduce.hpp,
// ops/linalg.hpp): forwards with broadcasting and double-precision gradient checks.
#include <catch2/catch.hpp>
#include <ltlearn/ops/activation.hpp>
#include <ltlearn/ops/elementwise.hpp>
#include <ltlearn/ops/linalg.hpp>
#include <ltlearn/ops/reduce.hpp>

#include "support.hpp"

#include <vector>

using V = ltl::variable<double>;
using TD = ltl::tensor<double>;

using ltl_test::leaf;
using ltl_test::require_gradcheck;

TEST_CASE("leaky_relu forward", "[ops]") {
  auto y = ltl::leaky_relu(V(TD::from({4}, {-2, -0.5, 0, 3})), 0.1);
  REQUIRE(y.value().to_vector() == std::vector<double>{-0.2, -0.05, 0, 3});
}

TEST_CASE("broadcasting add and mul forward", "[ops]") {
  auto a = V(TD::from({2, 3}, {1, 2, 3, 4, 5, 6}));
  auto b = V(TD::from({3}, {10, 20, 30}));
  REQUIRE((a + b).value().to_vector() == std::vector<double>{11, 22, 33, 14, 25, 36});
  auto c = V(TD::from({2, 1}, {2, 3}));
  REQUIRE((a * c).value().to_vector() == std::vector<double>{2, 4, 6, 12, 15, 18});
  auto bad = V(TD::from({2}, {1, 2}));
  try {
    (void)(a + bad);
    FAIL("expected a shape error");
  } catch (const ltl::shape_error& e) {
    REQUIRE_THAT(e.what(), Catch::Contains("add") && Catch::Contains("[2, 3]") && Catch::Contains("[2]"));
  }
}

TEST_CASE("elementwise gradients", "[ops][grad]") {
  require_gradcheck([](const auto& x) { return x[0] + x[1]; }, {leaf({2, 3, 4}, 1), leaf({3, 1}, 2)});
  require_gradcheck([](const auto& x) { return x[0] - x[1]; }, {leaf({4, 3}, 3), leaf({3}, 4)});
  require_gradcheck([](const auto& x) { return x[0] * x[1]; }, {leaf({2, 3, 2, 2}, 5), leaf({1, 3, 1, 1}, 6)});
  require_gradcheck([](const auto& x) { return x[0] / x[1]; }, {leaf({2, 3}, 7), leaf({2, 3}, 8, 0.5, 2)});
  require_gradcheck([](const auto& x) { return 2.0 * x[0] - 1.0; }, {leaf({5}, 9)});
  require_gradcheck([](const auto& x) { return ltl::relu(x[0]); }, {leaf({3, 4}, 10)});
  require_gradcheck([](const auto& x) { return ltl::leaky_relu(x[0], 0.1); }, {leaf({3, 4}, 15)});
  require_gradcheck([](const auto& x) { return ltl::exp(x[0]); }, {leaf({3, 4}, 11)});
  require_gradcheck([](const auto& x) { return ltl::log(x[0]); }, {leaf({3, 4}, 12, 0.5, 2)});
  require_gradcheck([](const auto& x) { return ltl::pow(x[0], 2.5); }, {leaf({3, 4}, 13, 0.5, 2)});
  require_gradcheck([](const auto& x) { return -x[0]; }, {leaf({3}, 14)});
}

TEST_CASE("reductions and matmul gradients", "[ops][grad]") {
  require_gradcheck([](const auto& x) { return ltl::sum(x[0], {1}); }, {leaf({2, 3, 4}, 1)});
  require_gradcheck([](const auto& x) { return ltl::sum(x[0], {0, 2}, true); }, {leaf({2, 3, 4}, 2)});
  require_gradcheck([](const auto& x) { return ltl::mean(x[0]); }, {leaf({2, 3, 4}, 3)});
  require_gradcheck([](const auto& x) { return ltl::matmul(x[0], x[1]); }, {leaf({3, 4}, 4), leaf({4, 5}, 5)});
  require_gradcheck([](const auto& x) { return ltl::linear(x[0], x[1], x[2]); },
                    {leaf({3, 4}, 6), leaf({5, 4}, 7), leaf({5}, 8)});
  require_gradcheck([](const auto& x) { return ltl::linear(x[0], x[1]); }, {leaf({3, 4}, 6), leaf({5, 4}, 7)});
}

