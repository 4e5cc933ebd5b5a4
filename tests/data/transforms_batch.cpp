// Tests of data/transforms.hpp (pad-crop, flip, normalise; seeded random crops and flips) and
// data/batch.hpp (make_batch over any model of the dataset concept).
#include <catch2/catch.hpp>
#include <ltlearn/core/rng.hpp>
#include <ltlearn/data/batch.hpp>
#include <ltlearn/data/dataset.hpp>
#include <ltlearn/data/transforms.hpp>

#include "support/synthetic_dataset.hpp"

#include <cstdint>
#include <span>
#include <vector>

namespace ld = ltl::data;
using ltl::index_t;
using ltl::shape;
using ltl_test::synthetic;

namespace {

/// Minimal model of the dataset concept (its archetype).
struct archetype_dataset {
  index_t size() const { return 2; }
  index_t num_classes() const { return 3; }
  shape image_shape() const { return shape{1, 1, 2}; }
  std::span<const std::uint8_t> image(index_t i) const { return std::span<const std::uint8_t>(px).subspan(2 * static_cast<std::size_t>(i), 2); }
  std::int64_t label(index_t i) const { return i == 0 ? 2 : 0; }
  std::uint8_t px[4] = {0, 51, 102, 255};
};
struct not_a_dataset_no_label {
  index_t size() const { return 0; }
  index_t num_classes() const { return 1; }
  shape image_shape() const { return shape{1, 1, 1}; }
  std::span<const std::uint8_t> image(index_t) const { return {}; }
};
static_assert(ld::dataset<archetype_dataset>, "the archetype must model ltl::data::dataset");
static_assert(ld::dataset<ld::image_dataset>);
static_assert(!ld::dataset<not_a_dataset_no_label>, "label(i) is required");
static_assert(!ld::dataset<int>);

std::vector<float> to_vec(const ltl::tensor<float>& t) { return t.contiguous().to_vector(); }

}  // namespace

// ---------------------------------------------------------------- transforms and batches

TEST_CASE("pad_crop_, hflip_ and normalize on a hand-made image", "[data][transform]") {
  // Batch of 2 images, 2 channels, 3x3: channel c of image b holds 100·b + 10·c + (1..9).
  auto make = [] {
    ltl::tensor<float> x(shape{2, 2, 3, 3});
    for (index_t b = 0; b < 2; ++b)
      for (index_t c = 0; c < 2; ++c)
        for (index_t k = 0; k < 9; ++k) x.data()[(b * 2 + c) * 9 + k] = static_cast<float>(100 * b + 10 * c + k + 1);
    return x;
  };
  SECTION("crop") {
    auto x = make();
    const std::vector<ld::crop_offset> o{{0, 0}, {2, 1}};
    ld::pad_crop_(x, 1, std::span<const ld::crop_offset>(o));
    const auto v = to_vec(x);
    // Image 0, offset (0,0) with pad 1: shift down-right by one, zeros enter top and left.
    REQUIRE(std::vector<float>(v.begin(), v.begin() + 9) == std::vector<float>{0, 0, 0, 0, 1, 2, 0, 4, 5});
    REQUIRE(std::vector<float>(v.begin() + 9, v.begin() + 18) == std::vector<float>{0, 0, 0, 0, 11, 12, 0, 14, 15});
    // Image 1, offset (2,1): rows shift up by one, columns unchanged.
    REQUIRE(std::vector<float>(v.begin() + 18, v.begin() + 27) ==
            std::vector<float>{104, 105, 106, 107, 108, 109, 0, 0, 0});
    // (pad, pad) is the identity; offsets beyond 2·pad are rejected.
    auto y = make();
    const std::vector<ld::crop_offset> id{{1, 1}, {1, 1}};
    ld::pad_crop_(y, 1, std::span<const ld::crop_offset>(id));
    REQUIRE(to_vec(y) == to_vec(make()));
    const std::vector<ld::crop_offset> bad{{3, 0}, {0, 0}};
    REQUIRE_THROWS_AS(ld::pad_crop_(y, 1, std::span<const ld::crop_offset>(bad)), ltl::value_error);
    REQUIRE_THROWS_AS(ld::pad_crop_(y, 1, std::span<const ld::crop_offset>(bad).first(1)), ltl::shape_error);
    // A pad larger than the image crops to all zeros at the extreme offset.
    auto z = make();
    const std::vector<ld::crop_offset> far{{8, 8}, {4, 4}};
    ld::pad_crop_(z, 4, std::span<const ld::crop_offset>(far));
    const auto zv = to_vec(z);
    REQUIRE(std::all_of(zv.begin(), zv.begin() + 18, [](float f) { return f == 0.0f; }));
    const auto orig = to_vec(make());
    REQUIRE(std::vector<float>(zv.begin() + 18, zv.end()) == std::vector<float>(orig.begin() + 18, orig.end()));
  }
  SECTION("flip") {
    auto x = make();
    const std::vector<std::uint8_t> f{0, 1};
    ld::hflip_(x, std::span<const std::uint8_t>(f));
    const auto v = to_vec(x);
    REQUIRE(std::vector<float>(v.begin(), v.begin() + 9) == std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8, 9});
    REQUIRE(std::vector<float>(v.begin() + 27, v.end()) ==
            std::vector<float>{113, 112, 111, 116, 115, 114, 119, 118, 117});
  }
  SECTION("normalize") {
    auto x = make();
    ld::normalize{.mean = {1.0, 10.0}, .stddev = {0.5, 4.0}}(x);
    const auto v = to_vec(x);
    REQUIRE(v[0] == 0.0f);         // (1 − 1) / 0.5
    REQUIRE(v[8] == 16.0f);        // (9 − 1) / 0.5
    REQUIRE(v[9] == 0.25f);        // (11 − 10) / 4
    REQUIRE(v[27] == 25.25f);      // (111 − 10) / 4
    REQUIRE_THROWS_AS((ld::normalize{.mean = {0.0}, .stddev = {1.0}}(x)), ltl::shape_error);
    REQUIRE_THROWS_AS((ld::normalize{.mean = {0.0, 0.0}, .stddev = {1.0, 0.0}}(x)), ltl::value_error);
    ltl::tensor<float> three(shape{2, 3});
    REQUIRE_THROWS_AS((ld::normalize{.mean = {0.0}, .stddev = {1.0}}(three)), ltl::shape_error);
  }
}

TEST_CASE("random crop and flip are reproducible from the rng", "[data][transform]") {
  ltl::tensor<float> x(shape{64, 1, 5, 5});
  for (index_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(i % 97);
  const ld::random_pad_crop crop{.pad = 2};
  const ld::random_hflip flip{};

  ltl::rng g1(42), g2(42), g3(43);
  auto a = x.clone(), b = x.clone(), c = x.clone();
  crop(a, g1);
  flip(a, g1);
  crop(b, g2);
  flip(b, g2);
  crop(c, g3);
  flip(c, g3);
  REQUIRE(to_vec(a) == to_vec(b));
  REQUIRE(to_vec(a) != to_vec(c));
  REQUIRE(g1 == g2);

  // operator() is exactly draw + the explicit kernel.
  ltl::rng h(42);
  const auto o = crop.draw(64, h);
  const auto f = flip.draw(64, h);
  auto d = x.clone();
  ld::pad_crop_(d, 2, std::span<const ld::crop_offset>(o));
  ld::hflip_(d, std::span<const std::uint8_t>(f));
  REQUIRE(to_vec(d) == to_vec(a));

  // Offsets cover [0, 2·pad]² uniformly enough; flips happen with p ≈ 0.5.
  ltl::rng s(5);
  const auto many = ld::random_pad_crop{.pad = 4}.draw(9000, s);
  std::vector<int> hist(81, 0);
  for (const auto& q : many) {
    REQUIRE(q.top >= 0);
    REQUIRE(q.top <= 8);
    REQUIRE(q.left >= 0);
    REQUIRE(q.left <= 8);
    ++hist[static_cast<std::size_t>(q.top * 9 + q.left)];
  }
  REQUIRE(*std::min_element(hist.begin(), hist.end()) > 60);  // expectation 111 each
  const auto flips = ld::random_hflip{.p = 0.5}.draw(10000, s);
  const auto n_flip = std::count(flips.begin(), flips.end(), std::uint8_t{1});
  REQUIRE(n_flip > 4700);
  REQUIRE(n_flip < 5300);
  const auto never = ld::random_hflip{.p = 0.0}.draw(100, s);
  const auto always = ld::random_hflip{.p = 1.0}.draw(100, s);
  REQUIRE(std::count(never.begin(), never.end(), std::uint8_t{1}) == 0);
  REQUIRE(std::count(always.begin(), always.end(), std::uint8_t{1}) == 100);
  REQUIRE_THROWS_AS(ld::random_hflip{.p = 1.5}.draw(1, s), ltl::value_error);

  // standard_augment = crop, flip, normalise, in that order.
  ltl::rng k1(9), k2(9);
  auto e = x.clone(), e2 = x.clone();
  const ld::standard_augment aug{.crop = crop, .flip = flip, .norm = {.mean = {0.5}, .stddev = {2.0}}};
  aug(e, k1);
  crop(e2, k2);
  flip(e2, k2);
  ld::normalize{.mean = {0.5}, .stddev = {2.0}}(e2);
  REQUIRE(to_vec(e) == to_vec(e2));
}

TEST_CASE("make_batch converts dataset indices to a float batch and labels", "[data][transform]") {
  const archetype_dataset arch;
  const std::vector<index_t> idx{1, 0, 1};
  const auto b = ld::make_batch(arch, idx);
  REQUIRE(b.images.sizes() == shape{3, 1, 1, 2});
  REQUIRE(b.labels.sizes() == shape{3});
  REQUIRE(b.labels.to_vector() == std::vector<std::int64_t>{0, 2, 0});
  REQUIRE(to_vec(b.images) == std::vector<float>{102.0f / 255, 1.0f, 0.0f, 51.0f / 255, 102.0f / 255, 1.0f});

  const ld::normalize norm{.mean = {0.2860}, .stddev = {0.3530}};
  const auto n = ld::make_batch(arch, idx, norm);
  auto manual = b.images.clone();
  norm(manual);
  REQUIRE(to_vec(n.images) == to_vec(manual));
  REQUIRE(to_vec(n.images)[2] == static_cast<float>((0.0f - 0.2860f) / 0.3530f));

  const auto bd = ld::make_batch<double>(synthetic(2, 3), std::vector<index_t>{5});
  REQUIRE(bd.images.to_vector() == std::vector<double>{5.0 / 255, 0.0});
  REQUIRE(bd.labels.item() == 1);
  REQUIRE_THROWS_AS(ld::make_batch(arch, std::vector<index_t>{2}), ltl::value_error);
  REQUIRE(ld::make_batch(arch, std::vector<index_t>{}).images.sizes() == shape{0, 1, 1, 2});
}
