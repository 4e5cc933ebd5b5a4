// Decode + augment throughput of the encoded-image pipeline (data::image_pipeline through
// data::loader) on a generated set of realistic JPEGs, the ltlearn half of compare_decode.py.
//
//   bench_decode --dir /tmp/ltl_jpegs --count 512 --workers 2 --batch 64 --epochs 3 --mode train
//
// The first run writes `count` JPEGs (width × height, quality q, libjpeg-turbo) and list.txt
// (`img_00000.jpg label`, the ImageNet-LT list format) into --dir; later runs reuse them, so
// compare_decode.py can time torchvision on the same files. One untimed warm-up epoch, then
// `epochs` timed epochs; prints a summary line and, with --json, one JSON object.

#include <ltlearn/data/image/encode.hpp>
#include <ltlearn/data/image/pipeline.hpp>
#include <ltlearn/data/image/readers.hpp>
#include <ltlearn/data/loader.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace fs = std::filesystem;
namespace ld = ltl::data;
using ltl::index_t;

namespace {

struct args {
  std::string dir = (fs::temp_directory_path() / "ltl_bench_jpegs").string();
  index_t count = 256, width = 500, height = 375, quality = 90;
  int workers = 2;
  index_t batch = 64, epochs = 2, size = 224, classes = 10;
  std::string mode = "train";
  int max_reduction = 1;
  bool json = false;
};

args parse(int argc, char** argv) {
  args a;
  std::map<std::string, std::string> kv;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--json") {
      a.json = true;
      continue;
    }
    if (k.rfind("--", 0) != 0 || i + 1 >= argc) {
      fmt::print(stderr, "usage: bench_decode [--dir D] [--count N] [--width W] [--height H] [--quality Q] "
                         "[--workers W] [--batch B] [--epochs E] [--size S] [--mode train|eval] "
                         "[--max-reduction R] [--json]\n");
      std::exit(2);
    }
    kv[k.substr(2)] = argv[++i];
  }
  auto num = [&](const char* k, auto& v) {
    if (auto it = kv.find(k); it != kv.end()) v = static_cast<std::remove_reference_t<decltype(v)>>(std::stoll(it->second));
  };
  if (kv.count("dir")) a.dir = kv["dir"];
  if (kv.count("mode")) a.mode = kv["mode"];
  num("count", a.count), num("width", a.width), num("height", a.height), num("quality", a.quality);
  num("workers", a.workers), num("batch", a.batch), num("epochs", a.epochs), num("size", a.size);
  num("max-reduction", a.max_reduction);
  return a;
}

/// A photo-like image: smooth colour fields, mid-frequency texture, edges and sensor noise, so
/// the JPEG has a realistic size (tens of kilobytes at 500 × 375, quality 90).
std::vector<std::uint8_t> photo_like(index_t h, index_t w, std::uint64_t seed) {
  ltl::rng g(seed);
  double f[3][4];
  for (auto& c : f)
    for (auto& v : c) v = g.uniform(0.5, 6.0);
  const double tx = g.uniform(0.05, 0.3), ty = g.uniform(0.05, 0.3);
  const double cx = g.uniform(0.2, 0.8) * double(w), cy = g.uniform(0.2, 0.8) * double(h), r = g.uniform(0.1, 0.3) * double(h);
  std::vector<std::uint8_t> px(static_cast<std::size_t>(h * w * 3));
  for (index_t y = 0; y < h; ++y)
    for (index_t x = 0; x < w; ++x) {
      const double u = double(x) / double(w), v = double(y) / double(h);
      const bool inside = (double(x) - cx) * (double(x) - cx) + (double(y) - cy) * (double(y) - cy) < r * r;
      for (int c = 0; c < 3; ++c) {
        double val = 128 + 60 * std::sin(f[c][0] * u * 6.28 + f[c][1]) * std::cos(f[c][2] * v * 6.28 + f[c][3]);
        val += 18 * std::sin(double(x) * tx + double(c)) * std::sin(double(y) * ty);
        val += inside ? 40.0 * (c == 0 ? 1 : -1) : 0.0;
        val += g.uniform(-10, 10);
        px[static_cast<std::size_t>((y * w + x) * 3 + c)] = static_cast<std::uint8_t>(std::clamp(val, 0.0, 255.0));
      }
    }
  return px;
}

void generate(const args& a) {
  const fs::path list = fs::path(a.dir) / "list.txt";
  if (fs::exists(list)) {
    std::ifstream f(list);
    index_t lines = 0;
    for (std::string s; std::getline(f, s);) lines += !s.empty();
    if (lines == a.count) return;
  }
  fs::create_directories(a.dir);
  std::ofstream out(list);
  std::size_t bytes = 0;
  for (index_t i = 0; i < a.count; ++i) {
    const auto name = fmt::format("img_{:05d}.jpg", i);
    const auto jpg = ld::encode_jpeg(photo_like(a.height, a.width, static_cast<std::uint64_t>(i)), a.height, a.width,
                                     {.quality = static_cast<int>(a.quality)});
    bytes += jpg.size();
    ld::write_bytes(fs::path(a.dir) / name, jpg);
    out << name << ' ' << i % a.classes << '\n';
  }
  fmt::print(stderr, "bench_decode: wrote {} JPEGs {}x{} q{} ({:.1f} KB each on average) to {}\n", a.count, a.width,
             a.height, a.quality, double(bytes) / double(a.count) / 1024.0, a.dir);
}

}  // namespace

int main(int argc, char** argv) {
  const args a = parse(argc, argv);
  generate(a);
  const auto ds = ld::read_image_list(fs::path(a.dir) / "list.txt", a.dir, a.classes, "bench");
  auto t = a.mode == "eval" ? ld::imagenet_eval_transform(a.size * 8 / 7, a.size) : ld::imagenet_train_transform(a.size);
  t.max_reduction = a.max_reduction;
  const ld::image_pipeline<float> pipe(ds, {.transform = t});
  const ld::loader<float, ld::image_pipeline<float>> loader(
      pipe, {.batch_size = a.batch, .workers = a.workers, .prefetch = 2 * std::max(a.workers, 1), .seed = 1});
  std::vector<index_t> order(static_cast<std::size_t>(ds.size()));
  std::iota(order.begin(), order.end(), index_t{0});
  double checksum = 0;
  auto epoch = [&](index_t e) {
    ltl::rng(7, static_cast<std::uint64_t>(e)).shuffle(std::span<index_t>(order));
    auto run = loader.run(e, order);
    while (auto b = run->next()) checksum += double(b->images.data()[0]);
  };
  epoch(0);  // warm-up: page cache, allocator
  const auto t0 = std::chrono::steady_clock::now();
  for (index_t e = 1; e <= a.epochs; ++e) epoch(e);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double images = double(ds.size() * a.epochs), ips = images / s;
  const int cores = std::max(a.workers, 1);
  fmt::print("ltlearn decode+{}: {} images in {:.3f} s = {:.1f} images/s, {:.1f} images/s per worker ({} workers, "
             "batch {}, {}x{} q{}, max_reduction {}) [checksum {:.3f}]\n",
             a.mode, images, s, ips, ips / cores, a.workers, a.batch, a.width, a.height, a.quality, a.max_reduction,
             checksum);
  if (a.json)
    fmt::print("{{\"framework\": \"ltlearn\", \"mode\": \"{}\", \"images\": {}, \"seconds\": {:.6f}, \"images_per_s\": {:.3f}, "
               "\"workers\": {}, \"batch\": {}, \"max_reduction\": {}}}\n",
               a.mode, images, s, ips, a.workers, a.batch, a.max_reduction);
  return 0;
}
