#pragma once
// Archetype of data/loader.hpp: ltl::data::batch_source.
#include "support/archetype.hpp"

#include <ltlearn/data/batch.hpp>
#include <ltlearn/data/image/pipeline.hpp>
#include <ltlearn/data/loader.hpp>

#include <span>
#include <vector>

namespace ltl_test {

// ---- ltl::data::batch_source<S, T>: 0 make_batch(indices, epoch, first_position, seed).
// Each item's pixel is a pure function of (index, epoch, position, seed), as the contract asks.
template <unsigned Drop = 0, class T = float>
struct batch_source_archetype {
  [[nodiscard]] ltl::data::batch<T> make_batch(std::span<const index_t> idx, index_t epoch, index_t first,
                                               std::uint64_t seed) const
    requires keep<Drop, 0>
  {
    const auto n = static_cast<index_t>(idx.size());
    ltl::data::batch<T> b{ltl::tensor<T>(ltl::shape{n, 1, 1, 1}), ltl::tensor<std::int64_t>(ltl::shape{n})};
    for (index_t k = 0; k < n; ++k) {
      b.images.data()[k] = static_cast<T>(1000 * idx[static_cast<std::size_t>(k)] + 100 * epoch + 10 * (first + k) +
                                          static_cast<index_t>(seed));
      b.labels.data()[k] = idx[static_cast<std::size_t>(k)] % 2;
    }
    return b;
  }
};
static_assert(ltl::data::batch_source<batch_source_archetype<>, float>,
              "the archetype must model ltl::data::batch_source");
static_assert(!ltl::data::batch_source<batch_source_archetype<1>, float>,
              "ltl::data::batch_source accepts a type without make_batch");
// The batch's element type is part of the contract: a double source is not a float source.
static_assert(!ltl::data::batch_source<batch_source_archetype<0, double>, float>);
static_assert(ltl::data::batch_source<ltl::data::image_pipeline<float>, float>);

}  // namespace ltl_test
