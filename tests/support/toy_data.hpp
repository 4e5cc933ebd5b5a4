#pragma once
// A small synthetic long-tailed image set shared by the training tests.

#include <ltlearn/core/rng.hpp>
#include <ltlearn/data/dataset.hpp>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace ltl_test {

// A small synthetic image set: class c has a bright c-th column, plus noise.
inline ltl::data::image_dataset toy_dataset(ltl::index_t n_per_class, ltl::index_t classes, std::uint64_t seed) {
  ltl::rng g(seed);
  const ltl::index_t H = 8, W = 8;
  std::vector<std::uint8_t> px;
  std::vector<std::int64_t> y;
  for (ltl::index_t c = 0; c < classes; ++c)
    for (ltl::index_t i = 0; i < n_per_class / (c + 1) + 2; ++i) {
      for (ltl::index_t h = 0; h < H; ++h)
        for (ltl::index_t w = 0; w < W; ++w)
          px.push_back(static_cast<std::uint8_t>(std::min<double>(255, (w == c ? 180 : 20) + 60 * g.uniform())));
      y.push_back(c);
    }
  return ltl::data::image_dataset("toy", {1, H, W}, std::move(px), std::move(y), classes);
}

}  // namespace ltl_test
