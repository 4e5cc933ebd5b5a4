#pragma once
// A balanced synthetic image_dataset whose images can be identified, shared by the data tests.

#include <ltlearn/data/dataset.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ltl_test {

/// Balanced synthetic dataset: `per_class` images per class of shape [1, 1, 2]; image i holds the
/// bytes (i % 256, i / 256) so its identity can be read back; labels cycle 0..C−1.
inline ltl::data::image_dataset synthetic(ltl::index_t classes, ltl::index_t per_class, std::string name = "synthetic") {
  const ltl::index_t n = classes * per_class;
  std::vector<std::uint8_t> px(static_cast<std::size_t>(2 * n));
  std::vector<std::int64_t> y(static_cast<std::size_t>(n));
  for (ltl::index_t i = 0; i < n; ++i) {
    px[static_cast<std::size_t>(2 * i)] = static_cast<std::uint8_t>(i % 256);
    px[static_cast<std::size_t>(2 * i + 1)] = static_cast<std::uint8_t>(i / 256);
    y[static_cast<std::size_t>(i)] = i % classes;
  }
  return ltl::data::image_dataset(std::move(name), ltl::shape{1, 1, 2}, std::move(px), std::move(y), classes);
}

}  // namespace ltl_test
