#pragma once
// Archetype of mixing/policies.hpp: ltl::mixing::mixing_policy.
#include "support/archetype.hpp"

#include <ltlearn/mixing/any_mixing.hpp>
#include <ltlearn/mixing/policies.hpp>

#include <string>
#include <vector>

namespace ltl_test {

// ---- ltl::mixing::mixing_policy: 0 point, 1 active, 2 name, 3 mix
template <unsigned Drop = 0>
struct mixing_policy_archetype {
  [[nodiscard]] std::string point() const
    requires keep<Drop, 0>
  {
    return "input";
  }
  [[nodiscard]] bool active(index_t) const
    requires keep<Drop, 1>
  {
    return true;
  }
  [[nodiscard]] std::string name() const
    requires keep<Drop, 2>
  {
    return "mixing archetype";
  }
  [[nodiscard]] ltl::mixing::mix_result<float, ltl::cpu::device> mix(const ltl::variable<float>& h,
                                                                      const ltl::tensor<std::int64_t>&,
                                                                      const std::vector<double>&, ltl::rng&) const
    requires keep<Drop, 3>
  {
    return {h, {}, {}};
  }
};
static_assert(ltl::mixing::mixing_policy<mixing_policy_archetype<>>, "the archetype must model ltl::mixing::mixing_policy");
static_assert(first_unchecked_requirement<4>([]<unsigned D>() { return ltl::mixing::mixing_policy<mixing_policy_archetype<D>>; }) ==
                  -1,
              "ltl::mixing::mixing_policy accepts a type missing one of its documented requirements");
static_assert(ltl::mixing::mixing_policy<ltl::mixing::mfw>);
static_assert(ltl::mixing::mixing_policy<ltl::mixing::any_mixing<float>>);

}  // namespace ltl_test
