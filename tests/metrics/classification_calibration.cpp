// Issue 20 finding 1 in metrics/classification.hpp and metrics/calibration.hpp: non-finite logits
// are a value_error naming the meter, the sample and the class; large finite ones are measured.
#include <catch2/catch.hpp>
#include <ltlearn/metrics/calibration.hpp>
#include <ltlearn/metrics/classification.hpp>

#include "support.hpp"

#include <cstdint>
#include <limits>

using ltl_test::require_error;

TEST_CASE("non-finite logits are a value_error in the meters, not a crash", "[reliability][finding1]") {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const ltl::tensor<std::int64_t> y = ltl::tensor<std::int64_t>::from({2}, {0, 1});
  for (const float bad : {nan, inf, -inf}) {
    INFO("bad logit " << bad);
    const auto z = ltl::tensor<float>::from({2, 3}, {1.f, 2.f, 0.f, 0.5f, bad, 0.f});
    ltl::metrics::classification_meter m(3, 1);
    require_error<ltl::value_error>([&] { m.add(z, y); }, {"classification_meter", "sample 1", "not finite", "class 1"});
    ltl::metrics::calibration_meter cal({10, 5, 1});
    require_error<ltl::value_error>([&] { cal.add(z, y); }, {"calibration_meter", "sample 1", "not finite"});
  }
  // Finite logits, however large, are still measured (the softmax is shifted by the maximum).
  ltl::metrics::classification_meter m(3, 1);
  m.add(ltl::tensor<float>::from({1, 3}, {3e38f, -3e38f, 0.f}), ltl::tensor<std::int64_t>::from({1}, {0}));
  REQUIRE(m.top1() == 1.0);
  REQUIRE(m.ece() == 0.0);
}
