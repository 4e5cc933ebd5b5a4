#pragma once
// Archetype of sampling/samplers.hpp: ltl::sampling::sampler.
#include "support/archetype.hpp"

#include <ltlearn/sampling/any_sampler.hpp>
#include <ltlearn/sampling/samplers.hpp>

#include <string>
#include <vector>

namespace ltl_test {

// ---- ltl::sampling::sampler: 0 epoch_indices, 1 name
template <unsigned Drop = 0>
struct sampler_archetype {
  [[nodiscard]] std::vector<index_t> epoch_indices(index_t epoch) const
    requires keep<Drop, 0>
  {
    return {epoch, 0, 1};
  }
  [[nodiscard]] std::string name() const
    requires keep<Drop, 1>
  {
    return "sampler archetype";
  }
};
/// The order's element type is part of the contract (the loader indexes with index_t).
struct sampler_with_int_indices {
  [[nodiscard]] std::vector<int> epoch_indices(index_t) const { return {}; }
  [[nodiscard]] std::string name() const { return "int indices"; }
};
static_assert(ltl::sampling::sampler<sampler_archetype<>>, "the archetype must model ltl::sampling::sampler");
static_assert(first_unchecked_requirement<2>([]<unsigned D>() { return ltl::sampling::sampler<sampler_archetype<D>>; }) ==
                  -1,
              "ltl::sampling::sampler accepts a type missing one of its documented requirements");
static_assert(!ltl::sampling::sampler<sampler_with_int_indices>);
static_assert(ltl::sampling::sampler<ltl::sampling::instance_balanced>);
static_assert(ltl::sampling::sampler<ltl::sampling::any_sampler>);

}  // namespace ltl_test
