// Tests of core/shot_groups.hpp: many/medium/few groups from class counts, on the long-tailed
// profiles of data/long_tail.hpp.
#include <catch2/catch.hpp>
#include <ltlearn/core/shot_groups.hpp>
#include <ltlearn/data/long_tail.hpp>

#include <string>
#include <vector>

namespace ld = ltl::data;
using ltl::index_t;

TEST_CASE("shot groups from class counts", "[data][lt]") {
  const std::vector<index_t> counts{500, 101, 100, 20, 19, 0};
  const auto g = ltl::make_shot_groups(counts);
  REQUIRE(g.many == std::vector<index_t>{0, 1});
  REQUIRE(g.medium == std::vector<index_t>{2, 3});
  REQUIRE(g.few == std::vector<index_t>{4, 5});
  REQUIRE(g[ltl::shot_group::medium] == g.medium);
  REQUIRE(ltl::classify_shot(100) == ltl::shot_group::medium);
  REQUIRE(std::string(ltl::to_string(ltl::shot_group::few)) == "few");

  // Fashion-MNIST-LT ρ=100: 6000…166 many, 100 and 60 medium, no few-shot class — an empty group.
  const auto fm = ltl::make_shot_groups(ld::exponential_profile(6000, 10, 100));
  REQUIRE(fm.many.size() == 8);
  REQUIRE(fm.medium == std::vector<index_t>{8, 9});
  REQUIRE(fm.few.empty());
  // CIFAR-100-LT ρ=100 has all three.
  const auto c100 = ltl::make_shot_groups(ld::exponential_profile(500, 100, 100));
  REQUIRE(c100.many.size() + c100.medium.size() + c100.few.size() == 100);
  REQUIRE_FALSE(c100.few.empty());

  const auto custom = ltl::make_shot_groups(counts, {.many_above = 19, .few_below = 1});
  REQUIRE(custom.many == std::vector<index_t>{0, 1, 2, 3});
  REQUIRE(custom.medium == std::vector<index_t>{4});
  REQUIRE(custom.few == std::vector<index_t>{5});
  REQUIRE_THROWS_AS(ltl::make_shot_groups(std::vector<index_t>{-1}), ltl::value_error);
}
