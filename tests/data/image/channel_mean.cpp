// data/image/channel_mean.hpp: the training-set RGB mean after Resize((S, S)) over an evenly
// spaced sample, against hand-computed means of hand-made images.
#include <catch2/catch.hpp>

#include <ltlearn/data/image/channel_mean.hpp>
#include <ltlearn/data/image/encode.hpp>

#include "support/temp_dir.hpp"

#include <array>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace ld = ltl::data;
using ltl::index_t;

/// Item i: a constant-colour PNG of (10i, 20i + 5, 250 − 7i), of size (5 + i) × (12 − i).
std::array<int, 3> colour(index_t i) {
  return {static_cast<int>(10 * i), static_cast<int>(20 * i + 5), static_cast<int>(250 - 7 * i)};
}

struct constant_set {
  ltl_test::temp_dir dir{"test_channel_mean"};
  ld::encoded_dataset ds;
  explicit constant_set(index_t n) {
    std::vector<ld::encoded_item> items;
    for (index_t i = 0; i < n; ++i) {
      const index_t h = 5 + i, w = 12 - i;
      std::vector<std::uint8_t> px(static_cast<std::size_t>(h * w * 3));
      for (std::size_t p = 0; p < px.size(); ++p) px[p] = static_cast<std::uint8_t>(colour(i)[p % 3]);
      const std::string name = fmt::format("img{}.png", i);
      ld::write_bytes(dir / name, ld::encode_png(px, h, w));
      items.push_back({.path = name});
    }
    ds = ld::encoded_dataset("constant", dir.path, std::move(items), std::vector<std::int64_t>(static_cast<std::size_t>(n), 0), 1);
  }
};

}  // namespace

TEST_CASE("rgb_mean_sample: floor(k n / N), every item when the set is not larger", "[data][image][mean]") {
  REQUIRE(ld::rgb_mean_sample(10, 3) == std::vector<index_t>{0, 3, 6});
  REQUIRE(ld::rgb_mean_sample(10, 4) == std::vector<index_t>{0, 2, 5, 7});
  REQUIRE(ld::rgb_mean_sample(5, 10) == std::vector<index_t>{0, 1, 2, 3, 4});
  REQUIRE(ld::rgb_mean_sample(4, 4) == std::vector<index_t>{0, 1, 2, 3});
  REQUIRE(ld::rgb_mean_sample(3, 0) == std::vector<index_t>{0, 1, 2});
  const auto big = ld::rgb_mean_sample(437513, 10000);
  REQUIRE(big.size() == 10000);
  REQUIRE((big.front() == 0 && big[1] == 43 && big.back() == index_t{9999} * 437513 / 10000));
}

TEST_CASE("rgb_mean: hand-computed means of the sampled images, for any worker count", "[data][image][mean]") {
  const constant_set s(10);
  // Constant images stay constant through any resize: the mean is the sampled colours' mean / 255.
  auto hand = [](const std::vector<index_t>& pick) {
    std::vector<double> m(3, 0.0);
    for (index_t i : pick)
      for (std::size_t c = 0; c < 3; ++c) m[c] += colour(i)[c] / 255.0 / static_cast<double>(pick.size());
    return m;
  };
  const auto three = ld::rgb_mean(s.ds, {.resize = 6, .max_images = 3, .batch_size = 2, .workers = 2});
  REQUIRE(three.sample == std::vector<index_t>{0, 3, 6});
  const auto all = ld::rgb_mean(s.ds, {.resize = 6, .max_images = 0, .batch_size = 4, .workers = 0});
  REQUIRE(all.sample.size() == 10);
  const auto want3 = hand({0, 3, 6}), want_all = hand(all.sample);
  for (std::size_t c = 0; c < 3; ++c) {
    REQUIRE(std::abs(three.mean[c] - want3[c]) < 1e-6);
    REQUIRE(std::abs(all.mean[c] - want_all[c]) < 1e-6);
  }
  // Summed in item order: bit-identical whatever the workers and batch size.
  const auto other = ld::rgb_mean(s.ds, {.resize = 6, .max_images = 3, .batch_size = 1, .workers = 3});
  REQUIRE(other.mean == three.mean);
  const ld::encoded_dataset empty("empty", s.dir.path, {}, {}, 1);
  REQUIRE_THROWS_AS(ld::rgb_mean(empty), ltl::value_error);
}

TEST_CASE("rgb_mean: the whole image is resized to S x S, aspect not kept", "[data][image][mean]") {
  // 4 × 16 with the left quarter white: squeezed to 8 × 8 the white quarter keeps a quarter of the
  // pixels' mass (columns 1, 0.875, 0.125, then 0 — the antialiasing filter of a 2x reduction), so the
  // mean is 0.25; a short-side resize + centre crop would keep only the black middle.
  const ltl_test::temp_dir dir("test_channel_mean_wide");
  std::vector<std::uint8_t> px(4 * 16 * 3, 0);
  for (index_t y = 0; y < 4; ++y)
    for (index_t x = 0; x < 4; ++x)
      for (index_t c = 0; c < 3; ++c) px[static_cast<std::size_t>((y * 16 + x) * 3 + c)] = 255;
  ld::write_bytes(dir / "wide.png", ld::encode_png(px, 4, 16));
  const ld::encoded_dataset ds("wide", dir.path, {{.path = "wide.png"}}, {0}, 1);
  const auto m = ld::rgb_mean(ds, {.resize = 8, .workers = 1});
  for (double v : m.mean) REQUIRE(std::abs(v - 0.25) < 1e-6);
}
