// data/transforms.hpp's xtensor forms of pad + crop and normalisation against plain loops
// (the element-by-element definitions) on random batches: equal bit for bit.

#include <catch2/catch.hpp>
#include <ltlearn/ltlearn.hpp>

#include <algorithm>
#include <cstring>
#include <span>
#include <vector>

namespace ld = ltl::data;
using ltl::index_t;
using ltl::shape;

namespace {

template <class T>
ltl::tensor<T> random_batch(index_t B, index_t C, index_t H, index_t W, ltl::rng& g) {
  ltl::tensor<T> x(shape{B, C, H, W});
  for (index_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<T>(g.uniform());
  return x;
}

// Output (y, x) of image b is input (y + top − pad, x + left − pad), or 0 outside the image.
template <class T>
std::vector<T> reference_pad_crop(const ltl::tensor<T>& x, index_t pad, const std::vector<ld::crop_offset>& o) {
  const index_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  std::vector<T> out(static_cast<std::size_t>(x.numel()));
  for (index_t b = 0; b < B; ++b)
    for (index_t c = 0; c < C; ++c)
      for (index_t y = 0; y < H; ++y)
        for (index_t xx = 0; xx < W; ++xx) {
          const index_t sy = y + o[static_cast<std::size_t>(b)].top - pad;
          const index_t sx = xx + o[static_cast<std::size_t>(b)].left - pad;
          const bool inside = sy >= 0 && sy < H && sx >= 0 && sx < W;
          out[static_cast<std::size_t>(((b * C + c) * H + y) * W + xx)] =
              inside ? x.data()[((b * C + c) * H + sy) * W + sx] : T(0);
        }
  return out;
}

template <class T>
bool same_bits(const T* a, const std::vector<T>& b) {
  return std::memcmp(a, b.data(), b.size() * sizeof(T)) == 0;
}

template <class T>
void check_pad_crop(index_t B, index_t C, index_t H, index_t W, index_t pad, std::uint64_t seed) {
  ltl::rng g(seed);
  auto x = random_batch<T>(B, C, H, W, g);
  const auto o = ld::random_pad_crop{.pad = pad}.draw(B, g);
  const auto want = reference_pad_crop(x, pad, o);
  ld::pad_crop_(x, pad, std::span<const ld::crop_offset>(o));
  CHECK(same_bits(x.data(), want));
}

}  // namespace

TEST_CASE("pad_crop_ equals the plain-loop crop on random batches", "[data][transform][xtensor]") {
  check_pad_crop<float>(64, 3, 32, 32, 4, 1);
  check_pad_crop<float>(7, 1, 28, 28, 4, 2);
  check_pad_crop<double>(9, 3, 5, 11, 2, 3);
  check_pad_crop<float>(6, 2, 3, 4, 6, 4);  // pad beyond the image: some crops are all padding
  check_pad_crop<double>(5, 3, 8, 8, 0, 5);  // pad 0: the identity
}

TEST_CASE("the plain-loop crop reference is not the identity", "[data][transform][xtensor]") {
  ltl::rng g(11);
  const auto x = random_batch<float>(2, 1, 4, 4, g);
  const std::vector<ld::crop_offset> o{{0, 0}, {2, 1}};
  const auto r = reference_pad_crop(x, 1, o);
  CHECK(r[0] == 0.0f);                     // image 0 shifted down-right: its corner is padding
  CHECK(r[5] == x.data()[0]);              // and (1, 1) reads (0, 0)
  CHECK(r[16 + 0] == x.data()[16 + 4]);    // image 1: (0, 0) reads (1, 0)
  CHECK(r[16 + 15] == 0.0f);               // its last row comes from below the image
}

TEST_CASE("normalize equals (x - mean[c]) / stddev[c] computed in T", "[data][transform][xtensor]") {
  ltl::rng g(21);
  auto x = random_batch<float>(16, 3, 13, 9, g);
  const ld::normalize n{.mean = {0.4914, 0.4822, 0.4465}, .stddev = {0.2470, 0.2435, 0.2616}};
  std::vector<float> want(x.data(), x.data() + x.numel());
  const index_t hw = 13 * 9;
  for (index_t i = 0; i < x.numel(); ++i) {
    const auto c = static_cast<std::size_t>((i / hw) % 3);
    want[static_cast<std::size_t>(i)] =
        (want[static_cast<std::size_t>(i)] - static_cast<float>(n.mean[c])) / static_cast<float>(n.stddev[c]);
  }
  n(x);
  CHECK(same_bits(x.data(), want));

  auto d = random_batch<double>(3, 1, 4, 6, g);
  std::vector<double> wd(d.data(), d.data() + d.numel());
  for (auto& v : wd) v = (v - 0.2860) / 0.3530;
  ld::normalize{.mean = {0.2860}, .stddev = {0.3530}}(d);
  CHECK(same_bits(d.data(), wd));
}

TEST_CASE("standard_augment equals crop, flip and normalise written as loops", "[data][transform][xtensor]") {
  ltl::rng g(31);
  auto x = random_batch<float>(32, 3, 32, 32, g);
  ltl::rng g2 = g;  // same state for the augment and the reference draws
  const ld::standard_augment aug{.norm = {.mean = {0.5, 0.5, 0.5}, .stddev = {0.25, 0.5, 2.0}}};
  const auto o = aug.crop.draw(32, g2);
  const auto f = aug.flip.draw(32, g2);
  auto want = reference_pad_crop(x, aug.crop.pad, o);
  for (index_t b = 0; b < 32; ++b)
    for (index_t c = 0; c < 3; ++c)
      for (index_t y = 0; y < 32; ++y) {
        float* row = want.data() + ((b * 3 + c) * 32 + y) * 32;
        if (f[static_cast<std::size_t>(b)]) std::reverse(row, row + 32);
        for (index_t i = 0; i < 32; ++i)
          row[i] = (row[i] - 0.5f) / static_cast<float>(aug.norm.stddev[static_cast<std::size_t>(c)]);
      }
  aug(x, g);
  CHECK(same_bits(x.data(), want));
}
