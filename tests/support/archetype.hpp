#pragma once
// The machinery of the concept archetypes (tests/<area>/*_archetype.hpp): an archetype is the
// smallest type that models a concept, built from exactly what the concept's contract documents.
// Each takes a bit mask `Drop`; bit i removes requirement i, and every single removal must make
// the concept reject the type. So a concept that starts demanding more than it documents rejects
// its archetype, and one that stops checking a documented requirement accepts a reduced
// archetype: either fails the build of the test that includes the archetype.

#include <ltlearn/core/shape.hpp>

#include <utility>

namespace ltl_test {

using ltl::index_t;

/// True when requirement `Bit` is kept in an archetype built with mask `Drop`.
template <unsigned Drop, unsigned Bit>
inline constexpr bool keep = (Drop & (1u << Bit)) == 0;

/// Index of the first single-requirement removal (of `N`) that the concept still accepts, or −1
/// when every removal is rejected. `models<Drop>()` evaluates the concept on the reduced archetype.
template <unsigned N, class Models>
consteval int first_unchecked_requirement(Models models) {
  int first = -1;
  [&]<unsigned... I>(std::integer_sequence<unsigned, I...>) {
    ((first < 0 && models.template operator()<(1u << I)>() ? first = static_cast<int>(I) : 0), ...);
  }(std::make_integer_sequence<unsigned, N>{});
  return first;
}

/// Distinct empty bases, so an archetype can drop a static data member or a member type.
template <unsigned Bit>
struct dropped {};

}  // namespace ltl_test
