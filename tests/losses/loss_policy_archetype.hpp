#pragma once
// Archetype of losses/policies.hpp: ltl::losses::loss_policy.
#include "support/archetype.hpp"

#include <ltlearn/losses/any_policy.hpp>
#include <ltlearn/losses/policies.hpp>

#include <string>
#include <vector>

namespace ltl_test {

// ---- ltl::losses::loss_policy: 0 apply, 1 name
template <unsigned Drop = 0>
struct loss_policy_archetype {
  double scale = 2.0;
  void apply(const std::vector<double>&, index_t epoch, ltl::loss_terms& t) const
    requires keep<Drop, 0>
  {
    t.scale = scale + static_cast<double>(epoch);
  }
  [[nodiscard]] std::string name() const
    requires keep<Drop, 1>
  {
    return "loss archetype";
  }
};
static_assert(ltl::losses::loss_policy<loss_policy_archetype<>>, "the archetype must model ltl::losses::loss_policy");
static_assert(first_unchecked_requirement<2>([]<unsigned D>() { return ltl::losses::loss_policy<loss_policy_archetype<D>>; }) ==
                  -1,
              "ltl::losses::loss_policy accepts a type missing one of its documented requirements");
static_assert(ltl::losses::loss_policy<ltl::losses::cross_entropy>);
static_assert(ltl::losses::loss_policy<ltl::losses::any_policy>);

}  // namespace ltl_test
