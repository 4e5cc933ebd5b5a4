// Tests of data/dataset.hpp (image_dataset), the IDX and CIFAR readers (data/idx.hpp,
// data/cifar.hpp) on generated files, and Fashion-MNIST from the Debian package.
#include <catch2/catch.hpp>
#include <ltlearn/data/binary_file.hpp>
#include <ltlearn/data/cifar.hpp>
#include <ltlearn/data/dataset.hpp>
#include <ltlearn/data/idx.hpp>
#include <ltlearn/data/long_tail.hpp>

#include "support/io_message.hpp"
#include "support/synthetic_dataset.hpp"
#include "support/temp_dir.hpp"
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <span>
#include <string>
#include <vector>

namespace fs = std::filesystem;
namespace ld = ltl::data;
using Catch::Matchers::Contains;
using ltl::index_t;
using ltl::shape;
using bytes_t = std::vector<std::uint8_t>;
using ltl_test::io_message;
using ltl_test::synthetic;
using ltl_test::temp_dir;

namespace {

void write_file(const fs::path& p, const bytes_t& b, bool gz = false) {
  if (gz) {
    gzFile f = gzopen(p.string().c_str(), "wb");
    REQUIRE(f != nullptr);
    if (!b.empty()) REQUIRE(gzwrite(f, b.data(), static_cast<unsigned>(b.size())) == static_cast<int>(b.size()));
    REQUIRE(gzclose(f) == Z_OK);
  } else {
    std::ofstream o(p, std::ios::binary);
    o.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    REQUIRE(o.good());
  }
}

bytes_t read_raw(const fs::path& p) {
  std::ifstream i(p, std::ios::binary);
  return bytes_t((std::istreambuf_iterator<char>(i)), std::istreambuf_iterator<char>());
}

void put_be32(bytes_t& b, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(v >> s));
}

bytes_t idx_images_file(std::uint32_t n, std::uint32_t h, std::uint32_t w, const bytes_t& px) {
  bytes_t b;
  put_be32(b, 0x00000803);
  put_be32(b, n);
  put_be32(b, h);
  put_be32(b, w);
  b.insert(b.end(), px.begin(), px.end());
  return b;
}

bytes_t idx_labels_file(const bytes_t& labels) {
  bytes_t b;
  put_be32(b, 0x00000801);
  put_be32(b, static_cast<std::uint32_t>(labels.size()));
  b.insert(b.end(), labels.begin(), labels.end());
  return b;
}

}  // namespace

// ---------------------------------------------------------------- dataset type

TEST_CASE("image_dataset: access, counts, subset, validation", "[data]") {
  auto ds = synthetic(3, 4);
  REQUIRE(ds.size() == 12);
  REQUIRE(ds.sizes() == shape{12, 1, 1, 2});
  REQUIRE(ds.image_numel() == 2);
  REQUIRE(ds.label(5) == 2);
  REQUIRE(ds.image(5)[0] == 5);
  REQUIRE(ds.class_counts() == std::vector<index_t>{4, 4, 4});
  REQUIRE(ds.class_indices()[1] == std::vector<index_t>{1, 4, 7, 10});
  REQUIRE_THROWS_AS(ds.image(12), ltl::value_error);
  REQUIRE_THROWS_AS(ds.label(-1), ltl::value_error);

  const std::vector<index_t> pick{7, 0, 7};
  auto s = ds.subset(pick, "picked");
  REQUIRE(s.name() == "picked");
  REQUIRE(s.size() == 3);
  REQUIRE(s.image(0)[0] == 7);
  REQUIRE(s.image(1)[0] == 0);
  REQUIRE(s.label(0) == 1);
  REQUIRE(s.class_counts() == std::vector<index_t>{1, 2, 0});
  REQUIRE(std::vector<index_t>(s.source_indices().begin(), s.source_indices().end()) == pick);
  // Subset of a subset maps back to source positions.
  const std::vector<index_t> again{2, 1};
  auto ss = s.subset(again);
  REQUIRE(std::vector<index_t>(ss.source_indices().begin(), ss.source_indices().end()) == std::vector<index_t>{7, 0});
  REQUIRE_THROWS_AS(ds.subset(std::vector<index_t>{12}), ltl::value_error);

  REQUIRE_THROWS_AS(ld::image_dataset("bad", shape{1, 1, 2}, bytes_t(4), {0, 3}, 3), ltl::value_error);
  REQUIRE_THROWS_AS(ld::image_dataset("bad", shape{1, 1, 2}, bytes_t(5), {0, 1}, 3), ltl::shape_error);
  REQUIRE_THROWS_AS(ld::image_dataset("bad", shape{1, 2}, bytes_t(4), {0, 1}, 3), ltl::shape_error);
  REQUIRE_THAT(ds.summary(), Contains("synthetic: 12 images [1, 1, 2] in 3 classes, hash " + ds.hash_hex()));
}

// ---------------------------------------------------------------- IDX reader

TEST_CASE("IDX reader: plain and gzip files give the same dataset", "[data][io]") {
  temp_dir tmp;
  const bytes_t px{0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15, 250, 251, 252, 253, 254, 255};  // 3 images of 3x2
  const bytes_t labels{9, 0, 4};
  write_file(tmp / "img", idx_images_file(3, 3, 2, px));
  write_file(tmp / "lab", idx_labels_file(labels));
  write_file(tmp / "img.gz", idx_images_file(3, 3, 2, px), true);
  write_file(tmp / "lab.gz", idx_labels_file(labels), true);
  REQUIRE(read_raw(tmp / "img.gz")[0] == 0x1f);  // really gzip on disk

  const auto plain = ld::read_idx(tmp / "img", tmp / "lab", "plain");
  const auto gz = ld::read_idx(tmp / "img.gz", tmp / "lab.gz", "gz");
  for (const auto* d : {&plain, &gz}) {
    REQUIRE(d->size() == 3);
    REQUIRE(d->image_shape() == shape{1, 3, 2});
    REQUIRE(d->num_classes() == 10);
    REQUIRE(bytes_t(d->pixels().begin(), d->pixels().end()) == px);
    REQUIRE(d->label(0) == 9);
    REQUIRE(d->label(2) == 4);
  }
  REQUIRE(plain.content_hash() == gz.content_hash());  // content, not file or name
  REQUIRE(ld::read_file_bytes(tmp / "img.gz").gzipped);
  REQUIRE_FALSE(ld::read_file_bytes(tmp / "img").gzipped);

  // MNIST directory layout, .gz preferred.
  fs::copy_file(tmp / "img.gz", tmp / "t10k-images-idx3-ubyte.gz");
  fs::copy_file(tmp / "lab", tmp / "t10k-labels-idx1-ubyte");
  const auto m = ld::read_mnist_layout(tmp.path, ld::split::test, "tiny");
  REQUIRE(m.name() == "tiny-test");
  REQUIRE(m.content_hash() == plain.content_hash());
  const std::string msg = io_message([&] { (void)ld::read_mnist_layout(tmp.path, ld::split::train, "tiny"); });
  REQUIRE_THAT(msg, Contains("train-images-idx3-ubyte") && Contains("no such file"));
}

TEST_CASE("IDX reader: every malformed file is an io_error naming the file and the field", "[data][io]") {
  temp_dir tmp;
  const bytes_t px(2 * 2 * 2, 7);
  write_file(tmp / "good-img", idx_images_file(2, 2, 2, px));
  write_file(tmp / "good-lab", idx_labels_file({1, 2}));

  SECTION("missing file") {
    const auto f = (tmp / "nope-img").string();
    REQUIRE_THAT(io_message([&] { (void)ld::read_idx_images(f); }), Contains(f) && Contains("no such file"));
  }
  SECTION("bad magic number") {
    auto b = idx_images_file(2, 2, 2, px);
    b[2] = 0x0D;  // element type float instead of ubyte
    const auto f = (tmp / "magic-img").string();
    write_file(f, b);
    REQUIRE_THAT(io_message([&] { (void)ld::read_idx_images(f); }),
                 Contains(f) && Contains("bad magic number 0x00000d03") && Contains("byte offset 0"));
    // A label file is not an image file.
    REQUIRE_THAT(io_message([&] { (void)ld::read_idx_images(tmp / "good-lab"); }),
                 Contains("good-lab") && Contains("wrong dimension count 1"));
    // Text instead of IDX.
    write_file(tmp / "text", bytes_t{'h', 'e', 'l', 'l', 'o', '!', '!', '!'});
    REQUIRE_THAT(io_message([&] { (void)ld::read_idx_labels(tmp / "text", 10); }),
                 Contains("text") && Contains("bad magic number 0x68656c6c"));
  }
  SECTION("wrong dimension count") {
    auto b = idx_images_file(2, 2, 2, px);
    b[3] = 4;
    const auto f = (tmp / "dims-img").string();
    write_file(f, b);
    REQUIRE_THAT(io_message([&] { (void)ld::read_idx_images(f); }),
                 Contains(f) && Contains("wrong dimension count 4"));
  }
  SECTION("truncated header, pixels and labels, plain and gzip") {
    auto b = idx_images_file(2, 2, 2, px);
    for (bool gz : {false, true}) {
      const auto f = (tmp / (gz ? "trunc-img.gz" : "trunc-img")).string();
      write_file(f, bytes_t(b.begin(), b.end() - 1), gz);
      const auto msg = io_message([&] { (void)ld::read_idx_images(f); });
      REQUIRE_THAT(msg, Contains(f) && Contains("truncated") && Contains("byte offset 16") && Contains("7 bytes remain"));
      if (gz) REQUIRE_THAT(msg, Contains("(decompressed)"));
    }
    const auto h = (tmp / "short-header").string();
    write_file(h, bytes_t(b.begin(), b.begin() + 10));
    REQUIRE_THAT(io_message([&] { (void)ld::read_idx_images(h); }),
                 Contains(h) && Contains("dimension 1 (rows)") && Contains("byte offset 8"));
    const auto l = (tmp / "trunc-lab").string();
    auto lb = idx_labels_file({1, 2, 3});
    lb.pop_back();
    write_file(l, lb);
    REQUIRE_THAT(io_message([&] { (void)ld::read_idx_labels(l, 10); }), Contains(l) && Contains("truncated"));
    // A header that declares more than 2^64 pixel bytes must not overflow into a small read.
    const auto big = (tmp / "huge-img").string();
    write_file(big, idx_images_file(0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, px));
    REQUIRE_THAT(io_message([&] { (void)ld::read_idx_images(big); }), Contains(big) && Contains("truncated"));
  }
  SECTION("corrupt gzip stream") {
    write_file(tmp / "full.gz", idx_images_file(2, 2, 2, bytes_t(4000, 3)), true);
    const auto raw = read_raw(tmp / "full.gz");
    const auto f = (tmp / "cut.gz").string();
    write_file(f, bytes_t(raw.begin(), raw.begin() + static_cast<std::ptrdiff_t>(raw.size() / 2)));
    REQUIRE_THAT(io_message([&] { (void)ld::read_idx_images(f); }), Contains(f) && Contains("gzip"));
  }
  SECTION("trailing bytes") {
    auto b = idx_images_file(2, 2, 2, px);
    b.push_back(0);
    const auto f = (tmp / "long-img").string();
    write_file(f, b);
    REQUIRE_THAT(io_message([&] { (void)ld::read_idx_images(f); }),
                 Contains(f) && Contains("1 trailing bytes") && Contains("byte offset 24"));
  }
  SECTION("label out of range") {
    const auto f = (tmp / "range-lab").string();
    write_file(f, idx_labels_file({1, 2, 10}));
    REQUIRE_THAT(io_message([&] { (void)ld::read_idx_labels(f, 10); }),
                 Contains(f) && Contains("label 10") && Contains("byte offset 10"));
    REQUIRE(ld::read_idx_labels(f, 11).back() == 10);
  }
  SECTION("image/label count mismatch names both files") {
    const auto l = (tmp / "three-lab").string();
    write_file(l, idx_labels_file({1, 2, 3}));
    const auto msg = io_message([&] { (void)ld::read_idx(tmp / "good-img", l, "x"); });
    REQUIRE_THAT(msg, Contains((tmp / "good-img").string()) && Contains(l) && Contains("2 images") && Contains("3 labels"));
  }
}

// ---------------------------------------------------------------- CIFAR readers

namespace {
bytes_t cifar_records(std::initializer_list<std::vector<std::uint8_t>> label_bytes, std::uint8_t fill0) {
  bytes_t b;
  std::uint8_t v = fill0;
  for (const auto& lb : label_bytes) {
    b.insert(b.end(), lb.begin(), lb.end());
    for (int k = 0; k < 3072; ++k) b.push_back(static_cast<std::uint8_t>(v + k));
    ++v;
  }
  return b;
}
}  // namespace

TEST_CASE("CIFAR-10 binary reader", "[data][io]") {
  temp_dir tmp;
  for (int b = 1; b <= 5; ++b)
    write_file(tmp / fmt::format("data_batch_{}.bin", b),
               cifar_records({{static_cast<std::uint8_t>(b)}, {static_cast<std::uint8_t>(b + 4)}},
                             static_cast<std::uint8_t>(10 * b)));
  write_file(tmp / "test_batch.bin", cifar_records({{0}, {9}, {3}}, 200));

  const auto train = ld::read_cifar10(tmp.path, ld::split::train);
  REQUIRE(train.name() == "cifar10-train");
  REQUIRE(train.size() == 10);
  REQUIRE(train.image_shape() == shape{3, 32, 32});
  REQUIRE(train.num_classes() == 10);
  for (int b = 1; b <= 5; ++b) {  // batch files in order 1..5, records in file order
    const auto i = static_cast<index_t>(2 * (b - 1));
    REQUIRE(train.label(i) == b);
    REQUIRE(train.label(i + 1) == b + 4);
    REQUIRE(train.image(i)[0] == 10 * b);
    REQUIRE(train.image(i)[1024] == static_cast<std::uint8_t>(10 * b + 1024));  // green plane
    REQUIRE(train.image(i + 1)[3071] == static_cast<std::uint8_t>(10 * b + 1 + 3071));
  }
  const auto test = ld::read_cifar10(tmp.path, ld::split::test);
  REQUIRE(test.size() == 3);
  REQUIRE(test.class_counts() == std::vector<index_t>{1, 0, 0, 1, 0, 0, 0, 0, 0, 1});

  SECTION("size not a multiple of the record") {
    auto b = cifar_records({{1}, {2}}, 0);
    b.resize(b.size() - 5);
    write_file(tmp / "data_batch_3.bin", b);
    REQUIRE_THAT(io_message([&] { (void)ld::read_cifar10(tmp.path, ld::split::train); }),
                 Contains("data_batch_3.bin") && Contains("not a multiple of the CIFAR-10 record size 3073") &&
                     Contains("byte offset 3073"));
  }
  SECTION("label out of range") {
    write_file(tmp / "test_batch.bin", cifar_records({{0}, {10}}, 0));
    REQUIRE_THAT(io_message([&] { (void)ld::read_cifar10(tmp.path, ld::split::test); }),
                 Contains("test_batch.bin") && Contains("label 10 of record 1") && Contains("byte offset 3073"));
  }
  SECTION("missing and empty files") {
    fs::remove(tmp / "data_batch_5.bin");
    REQUIRE_THAT(io_message([&] { (void)ld::read_cifar10(tmp.path, ld::split::train); }),
                 Contains("data_batch_5.bin") && Contains("no such file"));
    write_file(tmp / "test_batch.bin", {});
    REQUIRE_THAT(io_message([&] { (void)ld::read_cifar10(tmp.path, ld::split::test); }),
                 Contains("test_batch.bin") && Contains("empty"));
  }
}

TEST_CASE("CIFAR-100 binary reader uses the fine label", "[data][io]") {
  temp_dir tmp;
  write_file(tmp / "train.bin", cifar_records({{19, 99}, {0, 5}, {3, 42}}, 1));
  const auto d = ld::read_cifar100(tmp.path, ld::split::train);
  REQUIRE(d.name() == "cifar100-train");
  REQUIRE(d.num_classes() == 100);
  REQUIRE(d.size() == 3);
  REQUIRE(d.label(0) == 99);
  REQUIRE(d.label(1) == 5);
  REQUIRE(d.label(2) == 42);
  REQUIRE(d.image(2)[0] == 3);

  write_file(tmp / "test.bin", cifar_records({{1, 2}, {4, 100}}, 0));
  REQUIRE_THAT(io_message([&] { (void)ld::read_cifar100(tmp.path, ld::split::test); }),
               Contains("test.bin") && Contains("fine label 100 of record 1") && Contains("byte offset 3075"));
  write_file(tmp / "test.bin", cifar_records({{20, 2}}, 0));
  REQUIRE_THAT(io_message([&] { (void)ld::read_cifar100(tmp.path, ld::split::test); }),
               Contains("test.bin") && Contains("coarse label 20") && Contains("byte offset 0"));
  // A CIFAR-10 file is not a whole number of CIFAR-100 records.
  write_file(tmp / "test.bin", cifar_records({{1}, {2}}, 0));
  REQUIRE_THAT(io_message([&] { (void)ld::read_cifar100(tmp.path, ld::split::test); }),
               Contains("test.bin") && Contains("CIFAR-100 record size 3074"));
}

// ---------------------------------------------------------------- real data

TEST_CASE("Fashion-MNIST from the Debian package", "[data][io][real]") {
  const auto dir = ld::fashion_mnist_default_dir();
  if (!fs::exists(dir / "train-images-idx3-ubyte.gz")) {
    WARN("skipped: " << dir.string() << " not found (install the Debian package dataset-fashion-mnist)");
    return;
  }
  const auto train = ld::read_fashion_mnist(ld::split::train);
  REQUIRE(train.name() == "fashion-mnist-train");
  REQUIRE(train.sizes() == shape{60000, 1, 28, 28});
  REQUIRE(train.class_counts() == std::vector<index_t>(10, 6000));
  REQUIRE(*std::max_element(train.pixels().begin(), train.pixels().end()) == 255);
  const auto test = ld::read_fashion_mnist(ld::split::test);
  REQUIRE(test.sizes() == shape{10000, 1, 28, 28});
  REQUIRE(test.class_counts() == std::vector<index_t>(10, 1000));

  const auto lt = ld::make_long_tailed(train, ld::exponential_profile(6000, 10, 100), 0);
  REQUIRE(lt.size() == 14886);
  REQUIRE(lt.class_counts() == ld::exponential_profile(6000, 10, 100));
  REQUIRE(ld::make_long_tailed(train, ld::exponential_profile(6000, 10, 100), 0).content_hash() == lt.content_hash());
  const auto step = ld::make_long_tailed(train, ld::step_profile(6000, 10, 100), 0);
  REQUIRE(step.size() == 5 * 6000 + 5 * 60);
  INFO(train.summary());
  INFO(lt.summary());
  INFO(step.summary());
  SUCCEED();
}
