// data/image/augment.hpp's xtensor normalisation against the plain per-pixel loop on random
// decoded-size images: equal bit for bit.

#include <catch2/catch.hpp>
#include <ltlearn/ltlearn.hpp>

#include <cstring>
#include <span>
#include <vector>

namespace ld = ltl::data;
using ltl::index_t;

namespace {

template <class T>
void check_normalize_planes(index_t h, index_t w, std::uint64_t seed) {
  ltl::rng g(seed);
  const index_t n = h * w;
  std::vector<T> img(static_cast<std::size_t>(3 * n));
  for (auto& v : img) v = static_cast<T>(g.uniform());
  const std::vector<double> mean{0.485, 0.456, 0.406}, sd{0.229, 0.224, 0.225};
  auto want = img;
  for (std::size_t c = 0; c < 3; ++c)
    for (index_t i = 0; i < n; ++i) {
      T& v = want[c * static_cast<std::size_t>(n) + static_cast<std::size_t>(i)];
      v = (v - static_cast<T>(mean[c])) / static_cast<T>(sd[c]);
    }
  ld::normalize_planes(img.data(), n, std::span<const double>(mean), std::span<const double>(sd));
  CHECK(std::memcmp(img.data(), want.data(), img.size() * sizeof(T)) == 0);
  CHECK(img != std::vector<T>(img.size(), T(0)));
}

}  // namespace

TEST_CASE("normalize_planes equals the per-pixel loop on random images", "[data][image][xtensor]") {
  check_normalize_planes<float>(224, 224, 1);
  check_normalize_planes<float>(7, 13, 2);
  check_normalize_planes<double>(31, 17, 3);
}
