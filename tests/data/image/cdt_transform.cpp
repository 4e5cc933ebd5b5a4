// data/image/pipeline.hpp: CDT's iNaturalist transforms (cdt_train_transform / cdt_eval_transform):
// Resize((S, S)) with the aspect not kept, RandomCrop offsets over their whole range, flip ½,
// the mean subtracted without division, and per-sample determinism.
#include <catch2/catch.hpp>

#include <ltlearn/data/image/encode.hpp>
#include <ltlearn/data/image/pipeline.hpp>

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

/// PNGs (lossless: the decoded bytes are the written ones) in a fresh directory, one class.
struct png_set {
  ltl_test::temp_dir dir{"test_cdt_transform"};
  std::vector<ld::encoded_item> items;
  void add(const std::vector<std::uint8_t>& px, index_t h, index_t w) {
    const std::string name = fmt::format("img{}.png", items.size());
    ld::write_bytes(dir / name, ld::encode_png(px, h, w));
    items.push_back({.path = name});
  }
  [[nodiscard]] ld::encoded_dataset dataset() const {
    return {"png", dir.path, items, std::vector<std::int64_t>(items.size(), 0), 1};
  }
};

/// An h × w RGB image whose byte at (y, x, c) is (7y + 3x + 50c) mod 256: every pixel distinct
/// within a channel for the small sizes used.
std::vector<std::uint8_t> ramp(index_t h, index_t w) {
  std::vector<std::uint8_t> px(static_cast<std::size_t>(h * w * 3));
  for (index_t y = 0; y < h; ++y)
    for (index_t x = 0; x < w; ++x)
      for (index_t c = 0; c < 3; ++c)
        px[static_cast<std::size_t>((y * w + x) * 3 + c)] = static_cast<std::uint8_t>((7 * y + 3 * x + 50 * c) % 256);
  return px;
}

const std::vector<double> test_mean{0.1, 0.25, 0.4};

}  // namespace

TEST_CASE("cdt transforms: square resize, crop sides, unit stddev, output shape", "[data][image][cdt]") {
  const auto t = ld::cdt_train_transform(256, 224, test_mean);
  const auto e = ld::cdt_eval_transform(256, 224, test_mean);
  REQUIRE(t.kind == ld::sample_transform::geometry::square_resize_random_crop);
  REQUIRE(e.kind == ld::sample_transform::geometry::resize_center_crop);
  REQUIRE((t.output_size() == 224 && e.output_size() == 224));
  REQUIRE((t.square_resize && e.square_resize));
  REQUIRE(t.flip_p == 0.5);
  REQUIRE(e.flip_p == 0.0);
  REQUIRE(!t.jitter.active());
  REQUIRE((t.mean == test_mean && e.mean == test_mean));
  REQUIRE((t.stddev == std::vector<double>{1, 1, 1} && e.stddev == std::vector<double>{1, 1, 1}));

  png_set s;
  s.add(ramp(9, 17), 9, 17);
  s.add(ramp(20, 6), 20, 6);
  const auto ds = s.dataset();
  const ld::image_pipeline<float> train(ds, {.transform = ld::cdt_train_transform(10, 6, test_mean)});
  const ld::image_pipeline<float> eval(ds, {.transform = ld::cdt_eval_transform(10, 6, test_mean)});
  REQUIRE(train.image_shape() == ltl::shape{3, 6, 6});
  const std::vector<index_t> idx{0, 1};
  REQUIRE(train.make_batch(idx, 0, 0, 1).images.sizes() == ltl::shape{2, 3, 6, 6});
  REQUIRE(eval.make_batch(idx, 0, 0, 1).images.sizes() == ltl::shape{2, 3, 6, 6});
  // A crop larger than the square is refused (torchvision's RandomCrop raises without padding).
  ltl::rng g(1);
  REQUIRE_THROWS_AS(ld::plan_sample(ld::cdt_train_transform(6, 7, test_mean), 9, 9, g), ltl::value_error);
}

TEST_CASE("cdt train transform: crop offsets uniform over [0, S - crop], flip probability 1/2, aspect not kept",
          "[data][image][cdt]") {
  const auto t = ld::cdt_train_transform(10, 6, test_mean);
  constexpr int draws = 20000;
  std::array<int, 5> tops{}, lefts{};
  int flips = 0;
  for (int k = 0; k < draws; ++k) {
    ltl::rng g(7, ld::sample_stream(0, k));
    const auto p = ld::plan_sample(t, 13, 31, g);  // any source shape: the whole image becomes 10 × 10
    REQUIRE((p.geo.y0 == 0 && p.geo.x0 == 0 && p.geo.y1 == 13 && p.geo.x1 == 31));
    REQUIRE((p.geo.out_h == 10 && p.geo.out_w == 10 && p.geo.win_h == 6 && p.geo.win_w == 6));
    REQUIRE((p.geo.top >= 0 && p.geo.top <= 4 && p.geo.left >= 0 && p.geo.left <= 4));
    ++tops[static_cast<std::size_t>(p.geo.top)];
    ++lefts[static_cast<std::size_t>(p.geo.left)];
    flips += p.flip ? 1 : 0;
  }
  // Each of the 5 offsets has probability 1/5: 4000 ± 5σ (σ = √(20000 · 0.2 · 0.8) ≈ 57).
  for (std::size_t v = 0; v < 5; ++v) {
    REQUIRE(std::abs(tops[v] - draws / 5) < 285);
    REQUIRE(std::abs(lefts[v] - draws / 5) < 285);
  }
  // Flip ½: 10000 ± 5σ (σ ≈ 71).
  REQUIRE(std::abs(flips - draws / 2) < 355);
  // A crop as large as the square has the single offset 0.
  ltl::rng g(3);
  const auto full = ld::plan_sample(ld::cdt_train_transform(8, 8, test_mean), 5, 9, g);
  REQUIRE((full.geo.top == 0 && full.geo.left == 0));
}

TEST_CASE("cdt train transform: hand-made image cropped at the drawn offsets, flipped, mean subtracted",
          "[data][image][cdt]") {
  // An 8 × 8 image resized to 8 × 8 is itself, so the output is the image's crop at the drawn
  // offsets (mirrored when drawn), byte / 255 − mean.
  png_set s;
  const auto px = ramp(8, 8);
  s.add(px, 8, 8);
  const auto ds = s.dataset();
  const auto t = ld::cdt_train_transform(8, 5, test_mean);
  const ld::image_pipeline<float> src(ds, {.transform = t});
  const std::vector<index_t> idx{0};
  bool seen_flip = false, seen_plain = false;
  for (index_t pos = 0; pos < 12; ++pos) {
    const auto b = src.make_batch(idx, 1, pos, 42);
    ltl::rng g(42, ld::sample_stream(1, pos));
    const auto p = ld::plan_sample(t, 8, 8, g);
    (p.flip ? seen_flip : seen_plain) = true;
    const float* x = b.images.data();
    for (index_t c = 0; c < 3; ++c)
      for (index_t y = 0; y < 5; ++y)
        for (index_t xo = 0; xo < 5; ++xo) {
          const index_t sx = p.geo.left + (p.flip ? 4 - xo : xo), sy = p.geo.top + y;
          const double want = px[static_cast<std::size_t>((sy * 8 + sx) * 3 + c)] / 255.0 - test_mean[static_cast<std::size_t>(c)];
          REQUIRE(std::abs(static_cast<double>(x[(c * 5 + y) * 5 + xo]) - want) < 1e-6);
        }
  }
  REQUIRE((seen_flip && seen_plain));
}

TEST_CASE("cdt eval transform: centre crop of the S x S resize; a wide image is squeezed, not cropped",
          "[data][image][cdt]") {
  png_set s;
  const auto px = ramp(10, 10);
  s.add(px, 10, 10);
  // 4 × 16: the left half black, the right half white. Resize((8, 8)) keeps both halves (columns
  // 0-2 black, 5-7 white, mirror-symmetric around the middle); a short-side resize would keep only
  // the middle.
  std::vector<std::uint8_t> halves(4 * 16 * 3);
  for (index_t y = 0; y < 4; ++y)
    for (index_t x = 8; x < 16; ++x)
      for (index_t c = 0; c < 3; ++c) halves[static_cast<std::size_t>((y * 16 + x) * 3 + c)] = 255;
  s.add(halves, 4, 16);
  const auto ds = s.dataset();
  const ld::image_pipeline<float> eval(ds, {.transform = ld::cdt_eval_transform(10, 6, test_mean)});
  const std::vector<index_t> first{0};
  const auto b = eval.make_batch(first, 0, 0, 0);
  for (index_t c = 0; c < 3; ++c)
    for (index_t y = 0; y < 6; ++y)
      for (index_t xo = 0; xo < 6; ++xo) {
        const double want =
            px[static_cast<std::size_t>(((y + 2) * 10 + xo + 2) * 3 + c)] / 255.0 - test_mean[static_cast<std::size_t>(c)];
        REQUIRE(std::abs(static_cast<double>(b.images.data()[(c * 6 + y) * 6 + xo]) - want) < 1e-6);
      }
  const ld::image_pipeline<float> whole(ds, {.transform = ld::cdt_eval_transform(8, 8, {0, 0, 0})});
  const std::vector<index_t> second{1};
  const auto h = whole.make_batch(second, 0, 0, 0);
  const float* q = h.images.data();
  for (index_t c = 0; c < 3; ++c)
    for (index_t y = 0; y < 8; ++y) {
      const float* row = q + (c * 8 + y) * 8;
      for (index_t x = 0; x < 3; ++x) {
        REQUIRE(std::abs(row[x]) < 1e-6);
        REQUIRE(std::abs(row[7 - x] - 1.0f) < 1e-6);
      }
      REQUIRE(std::abs(row[3] + row[4] - 1.0f) < 1e-6);
      REQUIRE((row[3] > 0.0f && row[3] < 0.5f));
    }
}

TEST_CASE("cdt train transform: each image's result depends only on (seed, epoch, position)", "[data][image][cdt]") {
  png_set s;
  for (index_t i = 0; i < 4; ++i) s.add(ramp(9 + 3 * i, 14 - 2 * i), 9 + 3 * i, 14 - 2 * i);
  const auto ds = s.dataset();
  const ld::image_pipeline<float> src(ds, {.transform = ld::cdt_train_transform(12, 7, test_mean)});
  const std::size_t k = 3 * 7 * 7;
  const std::vector<index_t> pair{0, 3}, alone{3};
  const auto a = src.make_batch(pair, 2, 4, 9), again = src.make_batch(pair, 2, 4, 9);
  const auto solo = src.make_batch(alone, 2, 5, 9);
  const std::vector<float> va(a.images.data(), a.images.data() + 2 * k), vb(again.images.data(), again.images.data() + 2 * k);
  REQUIRE(va == vb);
  // Item 3 at position 5 of epoch 2: the same alone as second in a batch starting at position 4.
  REQUIRE(std::vector<float>(a.images.data() + k, a.images.data() + 2 * k) ==
          std::vector<float>(solo.images.data(), solo.images.data() + k));
  // Another position or seed draws another crop for at least one of a few positions.
  bool differs = false;
  for (index_t pos = 6; pos < 12 && !differs; ++pos) {
    const auto o = src.make_batch(alone, 2, pos, 9);
    differs = std::vector<float>(o.images.data(), o.images.data() + k) != std::vector<float>(solo.images.data(), solo.images.data() + k);
  }
  REQUIRE(differs);
}
