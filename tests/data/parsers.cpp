// Hardened parsers (issue 20, findings 4-6) of data/: non-regular files refused by every reader
// (data/binary_file.hpp), bounded gzip reads, JSON nesting (data/json_untrusted.hpp), buffer
// parsers against the file readers; and the replay of the fuzz corpus and of every past crash
// (fuzz/corpus/<parser>/, fuzz/crashes/<parser>/). The safetensors and checkpoint findings:
// train/safetensors_checkpoint.cpp.

#include "../../fuzz/fuzz_targets.hpp"

#include <catch2/catch.hpp>
#include <ltlearn/data/binary_file.hpp>
#include <ltlearn/data/cifar.hpp>
#include <ltlearn/data/idx.hpp>
#include <ltlearn/data/json_untrusted.hpp>
#include <ltlearn/nn/models/resnet_cifar.hpp>
#include <ltlearn/train/checkpoint.hpp>
#include <ltlearn/train/safetensors.hpp>

#include "support/parser_inputs.hpp"

#include <zlib.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>


namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using bytes_t = std::vector<std::uint8_t>;
using namespace ltl_test;  // support/parser_inputs.hpp

namespace {

void write_bytes(const fs::path& p, const std::string& b) {
  std::ofstream(p, std::ios::binary).write(b.data(), static_cast<std::streamsize>(b.size()));
}

std::string gzip(const bytes_t& b) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&zs, static_cast<uLong>(b.size())), '\0');
  zs.next_in = const_cast<Bytef*>(b.data());
  zs.avail_in = static_cast<uInt>(b.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

bytes_t idx_header(std::uint32_t magic, std::vector<std::uint32_t> dims) {
  bytes_t b;
  for (std::uint32_t v : [&] { dims.insert(dims.begin(), magic); return dims; }())
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(v >> s));
  return b;
}

/// Seconds `f` takes: a refused FIFO or device must return at once, never block.
template <class F>
double seconds(F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TEST_CASE("readers refuse directories, FIFOs and devices before reading", "[parsers][finding4][finding5]") {
  temp_dir tmp("parsers_nonregular");
  const auto fifo = tmp / "fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  ltl::nn::resnet_cifar<float> m({.depth = 8, .num_classes = 3, .in_channels = 1, .seed = 1});
  struct { fs::path path; const char* kind; } cases[] = {{tmp.path, "directory"}, {fifo, "FIFO"}, {"/dev/zero", "device"}};
  for (const auto& c : cases) {
    INFO(c.path);
    const auto ckpt = io_message([&] {
      (void)ltl::train::load_checkpoint(c.path, static_cast<ltl::nn::module<float>&>(m), nullptr);
    });
    REQUIRE_THAT(ckpt, Contains(c.path.string()) && Contains("not a regular file") && Contains(c.kind));
    REQUIRE_THAT(io_message([&] { (void)ltl::io::load_safetensors(c.path); }), Contains("not a regular file"));
    REQUIRE_THAT(io_message([&] { (void)ltl::data::read_idx_images(c.path); }), Contains("not a regular file"));
    REQUIRE_THAT(io_message([&] { (void)ltl::data::read_idx_labels(c.path, 10); }), Contains("not a regular file"));
    REQUIRE_THAT(io_message([&] {
                   (void)ltl::data::read_cifar_files({c.path}, ltl::data::cifar_variant::cifar10, "x");
                 }),
                 Contains("not a regular file"));
  }
  // Nobody writes to the FIFO: a reader that opened it would block here forever.
  REQUIRE(seconds([&] { (void)io_message([&] { (void)ltl::io::load_safetensors(fifo); }); }) < 5.0);
}

TEST_CASE("JSON nested 100,000 deep is refused before parsing, without quoting it", "[parsers][finding6]") {
  // In a shape (whose error message used to dump it recursively), in metadata, and bare.
  for (const std::string& h : std::vector<std::string>{R"({"t":{"dtype":"F32","shape":)" + deep_json(100000) + R"(,"data_offsets":[0,4]}})",
                              R"({"t":)" + deep_json(100000) + "}", deep_json(100000),
                              std::string(100000, '[') /* unterminated */}) {
    const auto msg = io_message([&] { (void)parse(safetensors_bytes(h, 4)); });
    REQUIRE_THAT(msg, Contains("bad.safetensors") && Contains("deeper than 64"));
    REQUIRE(msg.size() < 300);
  }
  // The limit is exact; brackets inside strings do not count.
  REQUIRE_NOTHROW(ltl::io::parse_json_untrusted(deep_json(64), "f", "x"));
  REQUIRE_THROWS_AS(ltl::io::parse_json_untrusted(deep_json(65), "f", "x"), ltl::io_error);
  REQUIRE(ltl::io::parse_json_untrusted("[\"" + std::string(100, '[') + "\\\"[\"]", "f", "x").size() == 1);
}

TEST_CASE("a gzip IDX is inflated only one byte past its declared size", "[parsers][finding5]") {
  temp_dir tmp("parsers_bomb");
  // 2 images of 2x2 declared, 64 MiB of zeros after them, and a broken gzip trailer: a reader
  // that inflates the whole stream first reports the corrupt trailer; a bounded one stops long
  // before it and reports the trailing bytes.
  bytes_t images = idx_header(0x803, {2, 2, 2});
  images.resize(images.size() + 8 + (std::size_t{64} << 20), 0);
  auto gz = gzip(images);
  gz[gz.size() - 5] ^= 0x55;  // the CRC-32
  write_bytes(tmp / "img.gz", gz);
  REQUIRE(gz.size() < (std::size_t{1} << 20));
  const auto msg = io_message([&] { (void)ltl::data::read_idx_images(tmp / "img.gz"); });
  REQUIRE_THAT(msg, Contains("img.gz") && Contains("at least 1 trailing bytes") && Contains("byte offset 24 (decompressed)"));

  bytes_t labels = idx_header(0x801, {3});
  labels.resize(labels.size() + 3 + (std::size_t{64} << 20), 1);
  auto lgz = gzip(labels);
  lgz[lgz.size() - 5] ^= 0x55;
  write_bytes(tmp / "lab.gz", lgz);
  REQUIRE_THAT(io_message([&] { (void)ltl::data::read_idx_labels(tmp / "lab.gz", 10); }),
               Contains("lab.gz") && Contains("at least 1 trailing bytes"));

  // byte_source hands out no more than asked, and the same data read whole still validates.
  ltl::data::byte_source src(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(gz.data()), gz.size()),
                             "img.gz");
  bytes_t out;
  REQUIRE(src.read(out, 25) == 25);
  REQUIRE(out.size() == 25);
  REQUIRE(bytes_t(out.begin(), out.begin() + 16) == idx_header(0x803, {2, 2, 2}));
  REQUIRE_THAT(io_message([&] { (void)ltl::data::read_file_bytes(tmp / "img.gz"); }), Contains("gzip"));
  REQUIRE_THAT(io_message([&] {
                 (void)ltl::data::decode_bytes(
                     std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(gz.data()), gz.size()), "x",
                     1000);
               }),
               Contains("more than the 1000-byte limit"));
}

TEST_CASE("buffer parsers match the file readers on valid input", "[parsers]") {
  temp_dir tmp("parsers_valid");
  bytes_t img = idx_header(0x803, {2, 2, 3});
  for (int i = 0; i < 12; ++i) img.push_back(static_cast<std::uint8_t>(i * 7));
  const auto gz = gzip(img);
  const bytes_t gzb(gz.begin(), gz.end());
  write_bytes(tmp / "img.gz", gz);
  const auto a = ltl::data::parse_idx_images(img, "img");
  const auto b = ltl::data::parse_idx_images(gzb, "img.gz");
  const auto c = ltl::data::read_idx_images(tmp / "img.gz");
  REQUIRE(a.count == 2);
  REQUIRE(a.rows == 2);
  REQUIRE(a.cols == 3);
  REQUIRE(a.pixels == bytes_t(img.begin() + 16, img.end()));
  REQUIRE(b.pixels == a.pixels);
  REQUIRE(c.pixels == a.pixels);
  // Two concatenated gzip members read as one stream, as zlib's gzread does.
  const auto half = gzip(bytes_t(img.begin(), img.begin() + 20)) + gzip(bytes_t(img.begin() + 20, img.end()));
  REQUIRE(ltl::data::parse_idx_images(bytes_t(half.begin(), half.end()), "two").pixels == a.pixels);

  bytes_t rec(3073, 9);
  rec[0] = 7;
  const auto ds = ltl::data::parse_cifar(rec, ltl::data::cifar_variant::cifar10, "c10");
  REQUIRE(ds.size() == 1);
  REQUIRE(ds.label(0) == 7);
}

TEST_CASE("the fuzz corpus and every past crash replay without a non-ltl exception", "[parsers][fuzz]") {
  const fs::path fuzz_dir = fs::path(__FILE__).parent_path().parent_path().parent_path() / "fuzz";
  REQUIRE(fs::is_directory(fuzz_dir / "corpus"));
  for (const auto& [parser, target] : ltl_fuzz::targets()) {
    std::size_t corpus = 0, crashes = 0;
    for (const char* kind : {"corpus", "crashes"}) {
      const auto dir = fuzz_dir / kind / parser;
      if (!fs::is_directory(dir)) continue;
      for (const auto& entry : fs::directory_iterator(dir)) {
        if (!entry.is_regular_file()) continue;
        INFO(entry.path().string());
        const auto raw = ltl::data::read_raw_file(entry.path());
        REQUIRE_NOTHROW(target(raw));
        ++(std::string(kind) == "corpus" ? corpus : crashes);
      }
    }
    INFO(parser);
    REQUIRE(corpus >= 3);
    if (parser == "idx" || parser == "safetensors") REQUIRE(crashes >= 1);  // the parsers that had crashes
  }
}

TEST_CASE("the image, list and iNaturalist seeds parse as their readers promise", "[parsers][fuzz]") {
  const fs::path corpus = fs::path(__FILE__).parent_path().parent_path().parent_path() / "fuzz" / "corpus";
  auto bytes = [&](const char* parser, const char* name) { return ltl::data::read_raw_file(corpus / parser / name); };
  auto text = [&](const char* parser, const char* name) {
    const auto b = bytes(parser, name);
    return std::string(b.begin(), b.end());
  };
  for (const char* jpeg : {"jpeg_rgb_8x8", "jpeg_gray_8x8", "jpeg_progressive_8x8"}) {
    const auto img = ltl::data::decode_image(bytes("image", jpeg), jpeg);
    REQUIRE(img.height == 8);
    REQUIRE(img.width == 8);
    REQUIRE(img.rgb.size() == 8 * 8 * 3);
  }
  const auto png = ltl::data::decode_image(bytes("image", "png_rgb_4x4"), "png");
  REQUIRE(png.height == 4);
  REQUIRE(std::vector<std::uint8_t>(png.rgb.begin(), png.rgb.begin() + 3) == std::vector<std::uint8_t>{0, 1, 2});
  REQUIRE_THROWS_AS(ltl::data::decode_image(bytes("image", "jpeg_truncated"), "t"), ltl::io_error);
  REQUIRE_THROWS_AS(ltl::data::decode_image(bytes("image", "png_huge_dimensions"), "h"), ltl::io_error);

  const auto list = ltl::data::parse_image_list(text("list", "valid"), "valid");
  REQUIRE(list.paths == std::vector<std::string>{"train/n01/a.JPEG", "train/n02/b c.JPEG"});
  REQUIRE(list.labels == std::vector<std::int64_t>{0, 1});
  REQUIRE_THROWS_AS(ltl::data::parse_image_list(text("list", "label_overflow"), "o"), ltl::value_error);

  const auto inat = ltl::data::parse_inat_json(text("inat", "valid"), "valid");
  REQUIRE(inat.file_names == std::vector<std::string>{"train_val2018/a/1.jpg", "train_val2018/b/2.jpg"});
  REQUIRE(inat.labels == std::vector<std::int64_t>{0, 1});  // category ids 4 and 9, in id order
  // Nesting past the JSON depth limit is refused before nlohmann parses (and copies) it.
  try {
    (void)ltl::data::parse_inat_json(text("inat", "deep_nesting"), "deep.json");
    FAIL("expected a value_error");
  } catch (const ltl::value_error& e) {
    REQUIRE_THAT(e.what(), Contains("deep.json") && Contains("deeper than 64"));
  }
}
