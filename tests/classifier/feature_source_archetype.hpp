#pragma once
// Archetype of classifier/decoupled.hpp: ltl::classifier::feature_source.
#include "support/archetype.hpp"

#include <ltlearn/classifier/decoupled.hpp>

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace ltl_test {

// ---- ltl::classifier::feature_source<S, T>: 0 labels, 1 num_classes, 2 dim, 3 batch
template <unsigned Drop = 0, class T = float>
struct feature_source_archetype {
  std::vector<std::int64_t> labels_{0, 1};
  [[nodiscard]] std::span<const std::int64_t> labels() const
    requires keep<Drop, 0>
  {
    return labels_;
  }
  [[nodiscard]] index_t num_classes() const
    requires keep<Drop, 1>
  {
    return 2;
  }
  [[nodiscard]] index_t dim() const
    requires keep<Drop, 2>
  {
    return 3;
  }
  [[nodiscard]] std::pair<ltl::tensor<T>, ltl::tensor<std::int64_t>> batch(index_t, index_t,
                                                                           std::span<const index_t> idx) const
    requires keep<Drop, 3>
  {
    return {ltl::tensor<T>(ltl::shape{static_cast<index_t>(idx.size()), 3}),
            ltl::tensor<std::int64_t>(ltl::shape{static_cast<index_t>(idx.size())})};
  }
};
static_assert(ltl::classifier::feature_source<feature_source_archetype<>, float>,
              "the archetype must model ltl::classifier::feature_source");
static_assert(first_unchecked_requirement<4>([]<unsigned D>() {
                return ltl::classifier::feature_source<feature_source_archetype<D>, float>;
              }) == -1,
              "ltl::classifier::feature_source accepts a type missing one of its documented requirements");
// The feature type is part of the contract: a double source is not a float source.
static_assert(!ltl::classifier::feature_source<feature_source_archetype<0, double>, float>);
static_assert(ltl::classifier::feature_source<ltl::classifier::cached_source<float>, float>);

}  // namespace ltl_test
