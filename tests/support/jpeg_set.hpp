#pragma once
// A small encoded-image data set for the tests of code that decodes images: one JPEG per label,
// of different sizes (h = 24 + 5i, w = 40 − 3i) and a brightness that grows with the class, in a
// fresh directory that goes with the object.

#include "support/temp_dir.hpp"

#include <ltlearn/core/rng.hpp>
#include <ltlearn/data/image/encode.hpp>
#include <ltlearn/data/image/encoded_dataset.hpp>

#include <fmt/format.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ltl_test {

struct jpeg_set {
  temp_dir dir;
  ltl::data::encoded_dataset ds;

  /// Image i has label labels[i] (classes 0 … num_classes − 1), pixels drawn from rng(seed).
  jpeg_set(const std::string& name, std::vector<std::int64_t> labels, ltl::index_t num_classes, std::uint64_t seed = 3)
      : dir(name) {
    namespace ld = ltl::data;
    ltl::rng g(seed);
    std::vector<ld::encoded_item> items;
    for (std::size_t i = 0; i < labels.size(); ++i) {
      const auto h = 24 + 5 * static_cast<ltl::index_t>(i), w = 40 - 3 * static_cast<ltl::index_t>(i % 8);
      std::vector<std::uint8_t> px(static_cast<std::size_t>(h * w * 3));
      for (auto& p : px) p = static_cast<std::uint8_t>(60 * labels[i] + 100 * g.uniform());
      const std::string file = fmt::format("c{}/img{}.jpg", labels[i], i);
      ld::write_bytes(dir / file, ld::encode_jpeg(px, h, w));
      items.push_back({.path = file});
    }
    ds = ld::encoded_dataset("tiny", dir.path, std::move(items), std::move(labels), num_classes);
  }
};

}  // namespace ltl_test
