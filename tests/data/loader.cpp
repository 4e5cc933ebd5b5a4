// Tests of data/loader.hpp: batches independent of the worker count and timing.
#include <catch2/catch.hpp>
#include <ltlearn/data/loader.hpp>
#include <ltlearn/data/transforms.hpp>

#include "support/toy_data.hpp"

#include <numeric>
#include <span>
#include <vector>

using ltl_test::toy_dataset;

TEST_CASE("loader batches do not depend on worker count or timing", "[data][loader]") {
  const auto ds = toy_dataset(40, 4, 1);
  std::vector<ltl::index_t> order(ds.size());
  std::iota(order.begin(), order.end(), 0);
  ltl::rng(3).shuffle(std::span<ltl::index_t>(order));
  const ltl::data::standard_augment aug{.crop = {.pad = 2}, .flip = {.p = 0.5}, .norm = {{0.5}, {0.25}}};
  auto collect = [&](int workers, ltl::index_t start) {
    ltl::data::loader<float, ltl::data::image_dataset> l(ds, {.batch_size = 7, .workers = workers, .prefetch = 3, .seed = 9},
                                                        [&](ltl::tensor<float>& x, ltl::rng& g) { aug(x, g); });
    std::vector<float> all;
    auto run = l.run(2, order, start);
    while (auto b = run->next()) {
      auto v = b->images.to_vector();
      all.insert(all.end(), v.begin(), v.end());
      for (ltl::index_t i = 0; i < b->labels.numel(); ++i) all.push_back(static_cast<float>(b->labels.data()[i]));
    }
    return all;
  };
  const auto ref = collect(0, 0);
  REQUIRE(ref.size() == static_cast<std::size_t>(ds.size()) * 65);
  REQUIRE(collect(1, 0) == ref);
  REQUIRE(collect(3, 0) == ref);
  // starting at batch 2 gives the tail of the same stream
  const auto tail = collect(2, 2);
  REQUIRE(std::equal(tail.begin(), tail.end(), ref.end() - static_cast<std::ptrdiff_t>(tail.size())));
  REQUIRE(tail.size() == ref.size() - 2 * 7 * 65);
}
