// Archetypes of ltlearn's concepts, one per concept: the smallest type that models it, built from
// exactly what the concept's contract documents (tests/support/archetype.hpp explains the `Drop`
// masks that prove every documented requirement is checked). Each archetype lives in
// tests/<area>/<header>_archetype.hpp, beside the tests of its concept's area; this translation
// unit includes them all, so their static_asserts are compiled once, in one binary.
//
// The library's own models are asserted next to each archetype, and the type-erased holders
// (any_sampler, any_policy, any_schedule), the batch builder, long-tail subsetting and the loader
// are run on the archetypes: they accept every model of their concept, not only the library's.
#include <catch2/catch.hpp>

#include "backends/contract/kernels_archetype.hpp"
#include "classifier/feature_source_archetype.hpp"
#include "core/concepts_archetype.hpp"
#include "data/dataset_archetype.hpp"
#include "data/loader_archetype.hpp"
#include "dist/communicator_archetype.hpp"
#include "losses/loss_policy_archetype.hpp"
#include "mixing/mixing_policy_archetype.hpp"
#include "nn/module_archetype.hpp"
#include "ops/conv_epilogue_archetype.hpp"
#include "optim/lr_schedule_archetype.hpp"
#include "sampling/sampler_archetype.hpp"

#include <ltlearn/ltlearn.hpp>

#include <cstdint>
#include <vector>

using ltl::index_t;
using ltl_test::batch_source_archetype;
using ltl_test::dataset_archetype;
using ltl_test::loss_policy_archetype;
using ltl_test::lr_schedule_archetype;
using ltl_test::sampler_archetype;
using ltl_test::subsettable_archetype;

TEST_CASE("type-erased holders accept every model of their concept", "[concepts]") {
  const ltl::sampling::any_sampler s = sampler_archetype<>{};
  CHECK(s.epoch_indices(7) == std::vector<index_t>{7, 0, 1});
  CHECK(s.name() == "sampler archetype");

  const ltl::losses::any_policy p = loss_policy_archetype<>{.scale = 3.0};
  ltl::loss_terms t;
  p.apply({10.0, 1.0}, 2, t);
  CHECK(t.scale == 5.0);
  CHECK(p.name() == "loss archetype");

  const ltl::optim::any_schedule lr = lr_schedule_archetype<>{};
  CHECK(lr(3) == 0.25);
  CHECK(lr.base() == 1.0);
}

TEST_CASE("the batch builder reads any model of the dataset concept", "[concepts]") {
  const dataset_archetype<> d;
  const std::vector<index_t> idx{1, 0};
  const auto b = ltl::data::make_batch<float>(d, idx);
  CHECK(b.images.sizes() == ltl::shape{2, 1, 1, 2});
  CHECK(b.images.to_vector() == std::vector<float>{3.f / 255, 4.f / 255, 1.f / 255, 2.f / 255});
  CHECK(b.labels.to_vector() == std::vector<std::int64_t>{1, 0});
}

TEST_CASE("long-tail subsetting and the loader work on any model of their concepts", "[concepts]") {
  // make_long_tailed needs only the subsettable_dataset contract: 2 of class 0, 1 of class 1.
  const subsettable_archetype<> d;
  const std::vector<index_t> counts{2, 1};
  const auto lt = ltl::data::make_long_tailed(d, counts, 7);
  CHECK(lt.size() == 3);
  CHECK(lt.class_indices()[0].size() == 2);
  CHECK(lt.class_indices()[1].size() == 1);
  CHECK_THROWS_AS(ltl::data::make_long_tailed(d, std::vector<index_t>{3, 1}, 7), ltl::value_error);

  // The loader hands a batch source the positions of its items in the epoch's order.
  const batch_source_archetype<> src;
  ltl::data::loader<float, batch_source_archetype<>> l(src, {.batch_size = 2, .workers = 0, .seed = 3});
  auto run = l.run(5, {4, 1, 2});
  auto b0 = run->next();
  auto b1 = run->next();
  REQUIRE(b0);
  REQUIRE(b1);
  CHECK_FALSE(run->next());
  CHECK(b0->images.to_vector() == std::vector<float>{4503.f, 1513.f});
  CHECK(b1->images.to_vector() == std::vector<float>{2523.f});
  CHECK(b0->labels.to_vector() == std::vector<std::int64_t>{0, 1});
}
