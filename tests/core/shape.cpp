// Tests of core/shape.hpp: sizes, strides, formatting and bounds checks.
#include <catch2/catch.hpp>
#include <ltlearn/core/shape.hpp>

#include <fmt/format.h>

using ltl::shape;

TEST_CASE("shape basics and formatting", "[core]") {
  shape s{2, 3, 4};
  REQUIRE(s.numel() == 24);
  REQUIRE(fmt::format("{}", s) == "[2, 3, 4]");
  REQUIRE(ltl::contiguous_strides(s) == shape{12, 4, 1});
  REQUIRE_THROWS_AS(s.at(3), ltl::shape_error);
}
