// image_smoke_data: writes the tiny encoded-image data set of the imagenet_lt / inat_lt smoke
// test (image_smoke_test.sh) in the real formats: 5 classes with long-tailed training counts
// 12/8/5/3/2, JPEGs of varied sizes (RGB, one grayscale, one progressive), a PNG named .jpg, a
// truncated JPEG (c2/broken.jpg, in the training set), a path with a space; ImageNet-LT-style
// list files (one CRLF line) and iNaturalist-style JSON (category ids 100, 110, …, image ids
// shuffled, annotations in reverse order).
//
//   image_smoke_data <dir>
#include <ltlearn/core/rng.hpp>
#include <ltlearn/data/image/encode.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

/// A class-coloured image with noise and a gradient, so that a few steps can learn something.
std::vector<std::uint8_t> pixels(int c, ltl::index_t h, ltl::index_t w, int channels, ltl::rng& g) {
  std::vector<std::uint8_t> p(static_cast<std::size_t>(h * w * channels));
  for (ltl::index_t y = 0; y < h; ++y)
    for (ltl::index_t x = 0; x < w; ++x)
      for (int k = 0; k < channels; ++k) {
        const double base = 40.0 + 40.0 * ((c + k) % 5) + 30.0 * double(x) / double(w);
        const double v = base + 20.0 * (g.uniform() - 0.5);
        p[static_cast<std::size_t>((y * w + x) * channels + k)] = static_cast<std::uint8_t>(std::clamp(v, 0.0, 255.0));
      }
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    fmt::print(stderr, "usage: image_smoke_data <dir>\n");
    return 2;
  }
  namespace fs = std::filesystem;
  namespace ld = ltl::data;
  const fs::path dir = argv[1];
  ltl::rng g(7);
  const std::vector<int> train_counts{12, 8, 5, 3, 2};
  struct entry {
    std::string path;
    int label;
  };
  std::vector<entry> train, val, test;
  for (int c = 0; c < 5; ++c) {
    const int n = train_counts[static_cast<std::size_t>(c)] + 3;  // + 1 validation + 2 test images
    for (int i = 0; i < n; ++i) {
      const ltl::index_t h = 20 + (7 * i + 5 * c) % 41, w = 24 + (11 * i + 3 * c) % 57;
      std::string name = fmt::format("c{}/img_{:02}.jpg", c, i);
      if (c == 3 && i == 0) name = "c3/with space.jpg";
      std::vector<std::uint8_t> bytes;
      if (c == 0 && i == 1) {
        bytes = ld::encode_jpeg(pixels(c, h, w, 1, g), h, w, {.color = ld::jpeg_color::gray});
      } else if (c == 1 && i == 2) {
        bytes = ld::encode_png(pixels(c, h, w, 3, g), h, w);  // a PNG named .jpg, as in real data
      } else {
        bytes = ld::encode_jpeg(pixels(c, h, w, 3, g), h, w, {.progressive = c == 4 && i == 0});
      }
      ld::write_bytes(dir / name, bytes);
      auto& split = i < train_counts[static_cast<std::size_t>(c)] ? train : i == n - 3 ? val : test;
      split.push_back({name, c});
    }
  }
  // A truncated JPEG in the training set: decoding it fails.
  const auto good = ld::encode_jpeg(pixels(2, 30, 30, 3, g), 30, 30);
  ld::write_bytes(dir / "c2/broken.jpg", std::span<const std::uint8_t>(good.data(), good.size() / 3));
  train.push_back({"c2/broken.jpg", 2});

  auto write_list = [&](const std::string& file, const std::vector<entry>& es) {
    std::ofstream f(dir / file, std::ios::binary);
    for (std::size_t k = 0; k < es.size(); ++k) f << es[k].path << ' ' << es[k].label << (k == 1 ? "\r\n" : "\n");
  };
  write_list("train.txt", train);
  write_list("val.txt", val);
  write_list("test.txt", test);

  auto write_inat = [&](const std::string& file, const std::vector<entry>& es) {
    nlohmann::json j;
    j["categories"] = nlohmann::json::array();
    for (int c = 4; c >= 0; --c) j["categories"].push_back({{"id", 100 + 10 * c}, {"name", fmt::format("species {}", c)}});
    j["images"] = nlohmann::json::array();
    j["annotations"] = nlohmann::json::array();
    for (std::size_t k = 0; k < es.size(); ++k) {
      const auto id = static_cast<std::int64_t>(1000 + (k * 7919) % 9973);
      j["images"].push_back({{"id", id}, {"file_name", es[k].path}, {"width", 0}, {"height", 0}});
      const nlohmann::json ann{{"id", k}, {"image_id", id}, {"category_id", 100 + 10 * es[k].label}};
      j["annotations"].insert(j["annotations"].begin(), ann);  // reverse order: joined by id, not position
    }
    std::ofstream(dir / file) << j.dump(1) << '\n';
  };
  write_inat("train2018.json", train);
  write_inat("val2018.json", val);
  fmt::print("{}: {} training, {} validation, {} test images in 5 classes\n", dir.string(), train.size(), val.size(),
             test.size());
  return 0;
}
