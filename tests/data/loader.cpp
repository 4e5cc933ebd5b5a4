// Tests of data/loader.hpp: batches independent of the worker count and timing.
#include <catch2/catch.hpp>
#include <ltlearn/data/loader.hpp>
#include <ltlearn/data/transforms.hpp>

#include "support/toy_data.hpp"

#include <cstring>
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

TEST_CASE("a loader handing over bytes gives the float loader's images bit for bit once normalised",
          "[data][loader]") {
  namespace ld = ltl::data;
  const auto ds = toy_dataset(30, 3, 4);
  std::vector<ltl::index_t> order(ds.size());
  std::iota(order.begin(), order.end(), 0);
  ltl::rng(8).shuffle(std::span<ltl::index_t>(order));
  const ld::standard_augment aug{.crop = {.pad = 3}, .flip = {.p = 0.5}, .norm = {{0.3}, {0.7}}};
  const ld::loader_options o{.batch_size = 8, .workers = 2, .seed = 5};
  const ld::loader<float, ld::image_dataset> floats(ds, o, aug, ld::image_delivery::floats);
  const ld::loader<float, ld::image_dataset> bytes(ds, o, aug, ld::image_delivery::bytes);
  const ld::loader<float, ld::image_dataset> plain(ds, o, [&](ltl::tensor<float>& x, ltl::rng& g) { aug(x, g); });
  REQUIRE(floats.delivery() == ld::image_delivery::floats);
  REQUIRE(bytes.delivery() == ld::image_delivery::bytes);
  REQUIRE(plain.delivery() == ld::image_delivery::floats);
  auto rf = floats.run(1, order), rb = bytes.run(1, order), rp = plain.run(1, order);
  int batches = 0, moved = 0;
  while (auto f = rf->next()) {
    auto b = rb->next();
    auto p = rp->next();
    REQUIRE(b);
    REQUIRE(p);
    REQUIRE_FALSE(f->bytes);
    REQUIRE(b->bytes);
    REQUIRE_FALSE(b->images.defined());
    REQUIRE(b->bytes->pixels.sizes() == f->images.sizes());
    REQUIRE(b->bytes->norm.mean == std::vector<double>{0.3});
    REQUIRE(b->labels.to_vector() == f->labels.to_vector());
    const auto x = ld::host_images(*b);
    REQUIRE(std::memcmp(x.data(), f->images.data(), static_cast<std::size_t>(x.numel()) * sizeof(float)) == 0);
    REQUIRE(f->images.to_vector() == p->images.to_vector());
    // The augmentation did move pixels: the bytes are not the dataset's, in order.
    const auto items = std::span<const ltl::index_t>(order).subspan(static_cast<std::size_t>(8 * batches),
                                                                    static_cast<std::size_t>(b->labels.numel()));
    const auto raw = ld::make_byte_batch(ds, items, aug.norm);
    if (raw.bytes->pixels.to_vector() != b->bytes->pixels.to_vector()) ++moved;
    ++batches;
  }
  REQUIRE_FALSE(rb->next());
  REQUIRE(batches == 8);  // 61 images
  REQUIRE(moved > 0);
}

TEST_CASE("byte batches are checked like float batches, and their normalisation against their channels",
          "[data][loader]") {
  namespace ld = ltl::data;
  const auto ds = toy_dataset(6, 2, 1);
  const ld::normalize one{{0.5}, {0.5}};
  REQUIRE_THROWS_AS(ld::make_byte_batch(ds, std::vector<ltl::index_t>{0, 13}, one), ltl::value_error);
  REQUIRE_THROWS_AS(ld::make_byte_batch(ds, std::vector<ltl::index_t>{-1}, one), ltl::value_error);
  const auto b = ld::make_byte_batch(ds, std::vector<ltl::index_t>{2, 0}, one);
  REQUIRE(b.bytes->pixels.size(0) == 2);
  REQUIRE(b.bytes->pixels.to_vector() ==
          [&] {
            std::vector<std::uint8_t> v(ds.image(2).begin(), ds.image(2).end());
            v.insert(v.end(), ds.image(0).begin(), ds.image(0).end());
            return v;
          }());
  // x/255 then (x − mean)/std, the float path's arithmetic.
  const auto x = ld::to_floats(*b.bytes);
  const auto f = ld::make_batch(ds, std::vector<ltl::index_t>{2, 0}, one);
  REQUIRE(x.to_vector() == f.images.to_vector());
  REQUIRE(x.to_vector()[0] == (static_cast<float>(ds.image(2)[0]) / 255.0f - 0.5f) / 0.5f);
  // Statistics for three channels on one-channel bytes: refused, naming the mismatch.
  const ld::byte_images wrong{b.bytes->pixels, {{0.1, 0.2, 0.3}, {1, 1, 1}}};
  REQUIRE_THROWS_WITH(ld::to_floats(wrong), Catch::Contains("3 means") && Catch::Contains("1 channels"));
  REQUIRE_THROWS_AS(ld::to_floats(ld::byte_images{}), ltl::shape_error);
}
