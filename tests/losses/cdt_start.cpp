// losses/policies.hpp: CDT's delayed temperatures (cdt::start_epoch, the trainers' --gamma-start;
// 45 of 90 epochs on iNaturalist, SPEC 4) — cross-entropy's terms before the start epoch, CDT's
// a_c = (N_max/N_c)^γ from it on, also through any_policy and composed with DRW.
#include <catch2/catch.hpp>

#include <ltlearn/losses/any_policy.hpp>
#include <ltlearn/losses/policies.hpp>

#include <cmath>
#include <vector>

namespace {

namespace l = ltl::losses;

bool same_terms(const ltl::loss_terms& a, const ltl::loss_terms& b) {
  return a.scale == b.scale && a.margins == b.margins && a.temperatures == b.temperatures && a.offsets == b.offsets &&
         a.weights == b.weights && a.focal == b.focal && a.normalizer == b.normalizer;
}

}  // namespace

TEST_CASE("cdt start epoch: cross-entropy terms before it, CDT's temperatures from it", "[losses][cdt]") {
  const std::vector<double> n{500, 120, 40, 7};
  const l::cdt delayed{.gamma = 0.3, .start_epoch = 45};
  const l::any_policy erased = delayed;
  for (ltl::index_t e : {0, 1, 44}) {
    REQUIRE(same_terms(l::make_terms(delayed, n, e), l::make_terms(l::cross_entropy{}, n, e)));
    REQUIRE(same_terms(l::make_terms(erased, n, e), l::make_terms(l::cross_entropy{}, n, e)));
  }
  for (ltl::index_t e : {45, 46, 89}) {
    const auto t = l::make_terms(delayed, n, e);
    REQUIRE(t.temperatures.size() == n.size());
    for (std::size_t c = 0; c < n.size(); ++c) REQUIRE(t.temperatures[c] == std::pow(500.0 / n[c], 0.3));
    REQUIRE(t.temperatures.front() == 1.0);
    REQUIRE(same_terms(t, l::make_terms(l::cdt{.gamma = 0.3}, n, e)));  // the undelayed policy's terms
    REQUIRE(same_terms(l::make_terms(erased, n, e), t));
    // Nothing else of CE changes: only the temperatures differ.
    auto only_temps = l::make_terms(l::cross_entropy{}, n, e);
    only_temps.temperatures = t.temperatures;
    REQUIRE(same_terms(only_temps, t));
  }
  // Composed with DRW (weights from epoch 60): each term switches on at its own epoch.
  const auto both = l::compose(delayed, l::drw(60));
  REQUIRE(l::make_terms(both, n, 44).temperatures.empty());
  REQUIRE(l::make_terms(both, n, 44).weights.empty());
  REQUIRE(l::make_terms(both, n, 45).temperatures.size() == n.size());
  REQUIRE(l::make_terms(both, n, 45).weights.empty());
  REQUIRE(l::make_terms(both, n, 60).weights.size() == n.size());
}
