#include <catch2/catch.hpp>
#include <ltlearn/ltlearn.hpp>

#include <zlib.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
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

namespace {

/// A fresh directory under the system temp dir, removed on destruction.
struct temp_dir {
  fs::path path;
  temp_dir() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() / fmt::format("ltl_test_data_{}_{}", ::getpid(), counter++);
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  fs::path operator/(const std::string& name) const { return path / name; }
};

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

/// Runs f, requires an io_error, returns its message.
template <class F>
std::string io_error_message(F&& f) {
  try {
    f();
  } catch (const ltl::io_error& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("expected ltl::io_error, got: " << e.what());
  }
  FAIL("expected ltl::io_error, nothing was thrown");
  return {};
}

/// Balanced synthetic dataset: `per_class` images per class of shape [1, 1, 2]; image i holds the
/// bytes (i % 256, i / 256) so its identity can be read back; labels cycle 0..C−1.
ld::image_dataset synthetic(index_t classes, index_t per_class, std::string name = "synthetic") {
  const index_t n = classes * per_class;
  bytes_t px(static_cast<std::size_t>(2 * n));
  std::vector<std::int64_t> y(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) {
    px[static_cast<std::size_t>(2 * i)] = static_cast<std::uint8_t>(i % 256);
    px[static_cast<std::size_t>(2 * i + 1)] = static_cast<std::uint8_t>(i / 256);
    y[static_cast<std::size_t>(i)] = i % classes;
  }
  return ld::image_dataset(std::move(name), shape{1, 1, 2}, std::move(px), std::move(y), classes);
}

/// Minimal model of the dataset concept (its archetype).
struct archetype_dataset {
  index_t size() const { return 2; }
  index_t num_classes() const { return 3; }
  shape image_shape() const { return shape{1, 1, 2}; }
  std::span<const std::uint8_t> image(index_t i) const { return std::span<const std::uint8_t>(px).subspan(2 * static_cast<std::size_t>(i), 2); }
  std::int64_t label(index_t i) const { return i == 0 ? 2 : 0; }
  std::uint8_t px[4] = {0, 51, 102, 255};
};
struct not_a_dataset_no_label {
  index_t size() const { return 0; }
  index_t num_classes() const { return 1; }
  shape image_shape() const { return shape{1, 1, 1}; }
  std::span<const std::uint8_t> image(index_t) const { return {}; }
};
static_assert(ld::dataset<archetype_dataset>, "the archetype must model ltl::data::dataset");
static_assert(ld::dataset<ld::image_dataset>);
static_assert(!ld::dataset<not_a_dataset_no_label>, "label(i) is required");
static_assert(!ld::dataset<int>);

std::vector<float> to_vec(const ltl::tensor<float>& t) { return t.contiguous().to_vector(); }

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
  const std::string msg = io_error_message([&] { (void)ld::read_mnist_layout(tmp.path, ld::split::train, "tiny"); });
  REQUIRE_THAT(msg, Contains("train-images-idx3-ubyte") && Contains("no such file"));
}

TEST_CASE("IDX reader: every malformed file is an io_error naming the file and the field", "[data][io]") {
  temp_dir tmp;
  const bytes_t px(2 * 2 * 2, 7);
  write_file(tmp / "good-img", idx_images_file(2, 2, 2, px));
  write_file(tmp / "good-lab", idx_labels_file({1, 2}));

  SECTION("missing file") {
    const auto f = (tmp / "nope-img").string();
    REQUIRE_THAT(io_error_message([&] { (void)ld::read_idx_images(f); }), Contains(f) && Contains("no such file"));
  }
  SECTION("bad magic number") {
    auto b = idx_images_file(2, 2, 2, px);
    b[2] = 0x0D;  // element type float instead of ubyte
    const auto f = (tmp / "magic-img").string();
    write_file(f, b);
    REQUIRE_THAT(io_error_message([&] { (void)ld::read_idx_images(f); }),
                 Contains(f) && Contains("bad magic number 0x00000d03") && Contains("byte offset 0"));
    // A label file is not an image file.
    REQUIRE_THAT(io_error_message([&] { (void)ld::read_idx_images(tmp / "good-lab"); }),
                 Contains("good-lab") && Contains("wrong dimension count 1"));
    // Text instead of IDX.
    write_file(tmp / "text", bytes_t{'h', 'e', 'l', 'l', 'o', '!', '!', '!'});
    REQUIRE_THAT(io_error_message([&] { (void)ld::read_idx_labels(tmp / "text", 10); }),
                 Contains("text") && Contains("bad magic number 0x68656c6c"));
  }
  SECTION("wrong dimension count") {
    auto b = idx_images_file(2, 2, 2, px);
    b[3] = 4;
    const auto f = (tmp / "dims-img").string();
    write_file(f, b);
    REQUIRE_THAT(io_error_message([&] { (void)ld::read_idx_images(f); }),
                 Contains(f) && Contains("wrong dimension count 4"));
  }
  SECTION("truncated header, pixels and labels, plain and gzip") {
    auto b = idx_images_file(2, 2, 2, px);
    for (bool gz : {false, true}) {
      const auto f = (tmp / (gz ? "trunc-img.gz" : "trunc-img")).string();
      write_file(f, bytes_t(b.begin(), b.end() - 1), gz);
      const auto msg = io_error_message([&] { (void)ld::read_idx_images(f); });
      REQUIRE_THAT(msg, Contains(f) && Contains("truncated") && Contains("byte offset 16") && Contains("7 bytes remain"));
      if (gz) REQUIRE_THAT(msg, Contains("(decompressed)"));
    }
    const auto h = (tmp / "short-header").string();
    write_file(h, bytes_t(b.begin(), b.begin() + 10));
    REQUIRE_THAT(io_error_message([&] { (void)ld::read_idx_images(h); }),
                 Contains(h) && Contains("dimension 1 (rows)") && Contains("byte offset 8"));
    const auto l = (tmp / "trunc-lab").string();
    auto lb = idx_labels_file({1, 2, 3});
    lb.pop_back();
    write_file(l, lb);
    REQUIRE_THAT(io_error_message([&] { (void)ld::read_idx_labels(l, 10); }), Contains(l) && Contains("truncated"));
    // A header that declares more than 2^64 pixel bytes must not overflow into a small read.
    const auto big = (tmp / "huge-img").string();
    write_file(big, idx_images_file(0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, px));
    REQUIRE_THAT(io_error_message([&] { (void)ld::read_idx_images(big); }), Contains(big) && Contains("truncated"));
  }
  SECTION("corrupt gzip stream") {
    write_file(tmp / "full.gz", idx_images_file(2, 2, 2, bytes_t(4000, 3)), true);
    const auto raw = read_raw(tmp / "full.gz");
    const auto f = (tmp / "cut.gz").string();
    write_file(f, bytes_t(raw.begin(), raw.begin() + static_cast<std::ptrdiff_t>(raw.size() / 2)));
    REQUIRE_THAT(io_error_message([&] { (void)ld::read_idx_images(f); }), Contains(f) && Contains("gzip"));
  }
  SECTION("trailing bytes") {
    auto b = idx_images_file(2, 2, 2, px);
    b.push_back(0);
    const auto f = (tmp / "long-img").string();
    write_file(f, b);
    REQUIRE_THAT(io_error_message([&] { (void)ld::read_idx_images(f); }),
                 Contains(f) && Contains("1 trailing bytes") && Contains("byte offset 24"));
  }
  SECTION("label out of range") {
    const auto f = (tmp / "range-lab").string();
    write_file(f, idx_labels_file({1, 2, 10}));
    REQUIRE_THAT(io_error_message([&] { (void)ld::read_idx_labels(f, 10); }),
                 Contains(f) && Contains("label 10") && Contains("byte offset 10"));
    REQUIRE(ld::read_idx_labels(f, 11).back() == 10);
  }
  SECTION("image/label count mismatch names both files") {
    const auto l = (tmp / "three-lab").string();
    write_file(l, idx_labels_file({1, 2, 3}));
    const auto msg = io_error_message([&] { (void)ld::read_idx(tmp / "good-img", l, "x"); });
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
    REQUIRE_THAT(io_error_message([&] { (void)ld::read_cifar10(tmp.path, ld::split::train); }),
                 Contains("data_batch_3.bin") && Contains("not a multiple of the CIFAR-10 record size 3073") &&
                     Contains("byte offset 3073"));
  }
  SECTION("label out of range") {
    write_file(tmp / "test_batch.bin", cifar_records({{0}, {10}}, 0));
    REQUIRE_THAT(io_error_message([&] { (void)ld::read_cifar10(tmp.path, ld::split::test); }),
                 Contains("test_batch.bin") && Contains("label 10 of record 1") && Contains("byte offset 3073"));
  }
  SECTION("missing and empty files") {
    fs::remove(tmp / "data_batch_5.bin");
    REQUIRE_THAT(io_error_message([&] { (void)ld::read_cifar10(tmp.path, ld::split::train); }),
                 Contains("data_batch_5.bin") && Contains("no such file"));
    write_file(tmp / "test_batch.bin", {});
    REQUIRE_THAT(io_error_message([&] { (void)ld::read_cifar10(tmp.path, ld::split::test); }),
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
  REQUIRE_THAT(io_error_message([&] { (void)ld::read_cifar100(tmp.path, ld::split::test); }),
               Contains("test.bin") && Contains("fine label 100 of record 1") && Contains("byte offset 3075"));
  write_file(tmp / "test.bin", cifar_records({{20, 2}}, 0));
  REQUIRE_THAT(io_error_message([&] { (void)ld::read_cifar100(tmp.path, ld::split::test); }),
               Contains("test.bin") && Contains("coarse label 20") && Contains("byte offset 0"));
  // A CIFAR-10 file is not a whole number of CIFAR-100 records.
  write_file(tmp / "test.bin", cifar_records({{1}, {2}}, 0));
  REQUIRE_THAT(io_error_message([&] { (void)ld::read_cifar100(tmp.path, ld::split::test); }),
               Contains("test.bin") && Contains("CIFAR-100 record size 3074"));
}

// ---------------------------------------------------------------- long-tailed construction

TEST_CASE("long-tailed profiles reproduce the SPEC §3 check values", "[data][lt]") {
  using v = std::vector<index_t>;
  const auto c10 = ld::exponential_profile(5000, 10, 100);
  REQUIRE(c10 == v{5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50});
  REQUIRE(ld::total_count(c10) == 12406);
  REQUIRE(ld::total_count(ld::exponential_profile(5000, 10, 50)) == 13996);
  REQUIRE(ld::total_count(ld::exponential_profile(5000, 10, 10)) == 20431);
  const auto c100 = ld::exponential_profile(500, 100, 100);
  REQUIRE(c100.size() == 100);
  REQUIRE(c100.front() == 500);
  REQUIRE(c100.back() == 5);
  REQUIRE(ld::total_count(c100) == 10847);
  const auto step = ld::step_profile(5000, 10, 100);
  REQUIRE(step == v{5000, 5000, 5000, 5000, 5000, 50, 50, 50, 50, 50});
  REQUIRE(ld::total_count(step) == 25250);
  const auto fm = ld::exponential_profile(6000, 10, 100);
  REQUIRE(fm == v{6000, 3596, 2156, 1292, 774, 464, 278, 166, 100, 60});
  REQUIRE(ld::total_count(fm) == 14886);

  REQUIRE(ld::step_profile(10, 5, 2) == v{10, 10, 5, 5, 5});  // ⌊C/2⌋ head classes for odd C
  REQUIRE(ld::exponential_profile(7, 1, 100) == v{7});
  REQUIRE(ld::exponential_profile(100, 4, 1) == v{100, 100, 100, 100});
  REQUIRE_THROWS_AS(ld::exponential_profile(100, 10, 0.5), ltl::value_error);
  REQUIRE_THROWS_AS(ld::exponential_profile(100, 0, 10), ltl::value_error);
  REQUIRE_THROWS_AS(ld::step_profile(-1, 10, 10), ltl::value_error);
}

TEST_CASE("make_long_tailed: per-class seeded selection, deterministic", "[data][lt]") {
  const auto ds = synthetic(10, 60);
  const auto counts = ld::exponential_profile(60, 10, 10);
  const auto a = ld::make_long_tailed(ds, counts, 0);
  const auto b = ld::make_long_tailed(ds, counts, 0);
  const auto c = ld::make_long_tailed(ds, counts, 1);
  REQUIRE(a.name() == "synthetic-lt");
  REQUIRE(a.size() == ld::total_count(counts));
  REQUIRE(a.class_counts() == counts);
  // Class-major, each image from its class, no repeats.
  std::set<index_t> seen;
  for (index_t i = 0; i < a.size(); ++i) {
    const index_t src = a.source_indices()[static_cast<std::size_t>(i)];
    REQUIRE(ds.label(src) == a.label(i));
    REQUIRE(a.image(i)[0] == src % 256);
    REQUIRE(seen.insert(src).second);
    if (i > 0) REQUIRE(a.label(i) >= a.label(i - 1));
  }
  // Same seed → identical; another seed → another selection of the same sizes.
  REQUIRE(std::equal(a.source_indices().begin(), a.source_indices().end(), b.source_indices().begin(),
                     b.source_indices().end()));
  REQUIRE(a.content_hash() == b.content_hash());
  REQUIRE(c.class_counts() == counts);
  REQUIRE_FALSE(std::equal(a.source_indices().begin(), a.source_indices().end(), c.source_indices().begin(),
                           c.source_indices().end()));
  REQUIRE(a.content_hash() != c.content_hash());
  // The selection of a class does not depend on the other classes' counts (per-class streams).
  auto counts2 = counts;
  counts2[0] = 1;
  const auto d = ld::make_long_tailed(ds, counts2, 0);
  REQUIRE(std::equal(a.source_indices().begin() + 60, a.source_indices().end(), d.source_indices().begin() + 1,
                     d.source_indices().end()));
  // Class 0 keeps a prefix of the same permutation.
  REQUIRE(d.source_indices()[0] == a.source_indices()[0]);

  auto too_many = counts;
  too_many[3] = 61;
  REQUIRE_THROWS_AS(ld::make_long_tailed(ds, too_many, 0), ltl::value_error);
  REQUIRE_THROWS_AS(ld::make_long_tailed(ds, std::vector<index_t>{1, 2}, 0), ltl::value_error);
}

TEST_CASE("make_long_tailed on CIFAR-sized label sets gives the SPEC totals", "[data][lt]") {
  const auto c10 = synthetic(10, 5000, "cifar10-like");
  REQUIRE(ld::make_long_tailed(c10, ld::exponential_profile(5000, 10, 100), 0).size() == 12406);
  REQUIRE(ld::make_long_tailed(c10, ld::step_profile(5000, 10, 100), 0).size() == 25250);
  const auto c100 = synthetic(100, 500, "cifar100-like");
  const auto lt = ld::make_long_tailed(c100, ld::exponential_profile(500, 100, 100), 0);
  REQUIRE(lt.size() == 10847);
  REQUIRE(lt.class_counts() == ld::exponential_profile(500, 100, 100));
}

TEST_CASE("held_out_split: balanced, disjoint, skips small classes", "[data][lt]") {
  const auto ds = synthetic(5, 20);
  // Classes with 20, 9, 4, 3, 0 images.
  const auto lt = ld::make_long_tailed(ds, std::vector<index_t>{20, 9, 4, 3, 0}, 7);
  const auto s = ld::held_out_split(lt, 3, 11);
  REQUIRE(s.skipped_classes == std::vector<index_t>{3, 4});
  REQUIRE(s.val.class_counts() == std::vector<index_t>{3, 3, 3, 0, 0});
  REQUIRE(s.train.class_counts() == std::vector<index_t>{17, 6, 1, 3, 0});
  REQUIRE(s.train.size() + s.val.size() == lt.size());
  REQUIRE(s.val.name() == lt.name() + "-val");
  std::set<index_t> tr(s.train.source_indices().begin(), s.train.source_indices().end());
  std::set<index_t> va(s.val.source_indices().begin(), s.val.source_indices().end());
  std::set<index_t> all(lt.source_indices().begin(), lt.source_indices().end());
  REQUIRE(tr.size() == static_cast<std::size_t>(s.train.size()));
  REQUIRE(va.size() == 9);
  for (index_t i : va) REQUIRE(tr.count(i) == 0);
  std::set<index_t> uni = tr;
  uni.insert(va.begin(), va.end());
  REQUIRE(uni == all);
  // Train keeps the original order.
  REQUIRE(std::is_sorted(s.train.labels().begin(), s.train.labels().end()));

  const auto again = ld::held_out_split(lt, 3, 11);
  REQUIRE(again.val.content_hash() == s.val.content_hash());
  REQUIRE(again.train.content_hash() == s.train.content_hash());
  REQUIRE(ld::held_out_split(lt, 3, 12).val.content_hash() != s.val.content_hash());
  REQUIRE_THROWS_AS(ld::held_out_split(lt, 0, 1), ltl::value_error);
}

TEST_CASE("shot groups from class counts", "[data][lt]") {
  const std::vector<index_t> counts{500, 101, 100, 20, 19, 0};
  const auto g = ltl::make_shot_groups(counts);
  REQUIRE(g.many == std::vector<index_t>{0, 1});
  REQUIRE(g.medium == std::vector<index_t>{2, 3});
  REQUIRE(g.few == std::vector<index_t>{4, 5});
  REQUIRE(g[ltl::shot_group::medium] == g.medium);
  REQUIRE(ltl::classify_shot(100) == ltl::shot_group::medium);
  REQUIRE(std::string(ltl::to_string(ltl::shot_group::few)) == "few");

  // Fashion-MNIST-LT ρ=100: 6000…166 many, 100 and 60 medium, no few-shot class — an empty group.
  const auto fm = ltl::make_shot_groups(ld::exponential_profile(6000, 10, 100));
  REQUIRE(fm.many.size() == 8);
  REQUIRE(fm.medium == std::vector<index_t>{8, 9});
  REQUIRE(fm.few.empty());
  // CIFAR-100-LT ρ=100 has all three.
  const auto c100 = ltl::make_shot_groups(ld::exponential_profile(500, 100, 100));
  REQUIRE(c100.many.size() + c100.medium.size() + c100.few.size() == 100);
  REQUIRE_FALSE(c100.few.empty());

  const auto custom = ltl::make_shot_groups(counts, {.many_above = 19, .few_below = 1});
  REQUIRE(custom.many == std::vector<index_t>{0, 1, 2, 3});
  REQUIRE(custom.medium == std::vector<index_t>{4});
  REQUIRE(custom.few == std::vector<index_t>{5});
  REQUIRE_THROWS_AS(ltl::make_shot_groups(std::vector<index_t>{-1}), ltl::value_error);
}

// ---------------------------------------------------------------- hashing

TEST_CASE("content hash: FNV-1a, stable, sensitive to content and selection", "[data][hash]") {
  REQUIRE(ld::fnv1a64{}.value() == 0xcbf29ce484222325ull);
  REQUIRE(ld::fnv1a64{}.text("a").value() == 0xaf63dc4c8601ec8cull);  // published FNV-1a test vectors
  REQUIRE(ld::fnv1a64{}.text("foobar").value() == 0x85944171f73967e8ull);
  REQUIRE(ld::hash_hex(0xabcull) == "0000000000000abc");

  const auto ds = synthetic(3, 4);
  const auto h = ds.content_hash();
  REQUIRE(ds.hash_hex().size() == 16);
  // Pinned: the hash must not change across runs, platforms or library versions.
  REQUIRE(ds.hash_hex() == "ce59c0a4769a2cf6");
  REQUIRE(synthetic(3, 4, "renamed").content_hash() == h);  // name is not content

  std::vector<index_t> all(12);
  for (index_t i = 0; i < 12; ++i) all[static_cast<std::size_t>(i)] = i;
  REQUIRE(ds.subset(all).content_hash() == h);  // the identity subset is the dataset
  const std::vector<index_t> p{1, 2, 3}, q{1, 3, 2}, r{1, 2, 4};
  REQUIRE(ds.subset(p).content_hash() != ds.subset(q).content_hash());
  REQUIRE(ds.subset(p).content_hash() != ds.subset(r).content_hash());
  // Two routes to the same images give the same hash.
  REQUIRE(ds.subset(all).subset(p).content_hash() == ds.subset(p).content_hash());
  REQUIRE(ds.subset(p).source_id() == ds.source_id());

  // One changed pixel or label changes the source identity.
  auto px = std::vector<std::uint8_t>(ds.pixels().begin(), ds.pixels().end());
  auto y = std::vector<std::int64_t>(ds.labels().begin(), ds.labels().end());
  px[5] ^= 1;
  REQUIRE(ld::image_dataset("x", ds.image_shape(), px, y, 3).content_hash() != h);
  px[5] ^= 1;
  REQUIRE(ld::image_dataset("x", ds.image_shape(), px, y, 3).content_hash() == h);
  y[0] = 1;
  REQUIRE(ld::image_dataset("x", ds.image_shape(), px, y, 3).content_hash() != h);
}

// ---------------------------------------------------------------- transforms and batches

TEST_CASE("pad_crop_, hflip_ and normalize on a hand-made image", "[data][transform]") {
  // Batch of 2 images, 2 channels, 3x3: channel c of image b holds 100·b + 10·c + (1..9).
  auto make = [] {
    ltl::tensor<float> x(shape{2, 2, 3, 3});
    for (index_t b = 0; b < 2; ++b)
      for (index_t c = 0; c < 2; ++c)
        for (index_t k = 0; k < 9; ++k) x.data()[(b * 2 + c) * 9 + k] = static_cast<float>(100 * b + 10 * c + k + 1);
    return x;
  };
  SECTION("crop") {
    auto x = make();
    const std::vector<ld::crop_offset> o{{0, 0}, {2, 1}};
    ld::pad_crop_(x, 1, std::span<const ld::crop_offset>(o));
    const auto v = to_vec(x);
    // Image 0, offset (0,0) with pad 1: shift down-right by one, zeros enter top and left.
    REQUIRE(std::vector<float>(v.begin(), v.begin() + 9) == std::vector<float>{0, 0, 0, 0, 1, 2, 0, 4, 5});
    REQUIRE(std::vector<float>(v.begin() + 9, v.begin() + 18) == std::vector<float>{0, 0, 0, 0, 11, 12, 0, 14, 15});
    // Image 1, offset (2,1): rows shift up by one, columns unchanged.
    REQUIRE(std::vector<float>(v.begin() + 18, v.begin() + 27) ==
            std::vector<float>{104, 105, 106, 107, 108, 109, 0, 0, 0});
    // (pad, pad) is the identity; offsets beyond 2·pad are rejected.
    auto y = make();
    const std::vector<ld::crop_offset> id{{1, 1}, {1, 1}};
    ld::pad_crop_(y, 1, std::span<const ld::crop_offset>(id));
    REQUIRE(to_vec(y) == to_vec(make()));
    const std::vector<ld::crop_offset> bad{{3, 0}, {0, 0}};
    REQUIRE_THROWS_AS(ld::pad_crop_(y, 1, std::span<const ld::crop_offset>(bad)), ltl::value_error);
    REQUIRE_THROWS_AS(ld::pad_crop_(y, 1, std::span<const ld::crop_offset>(bad).first(1)), ltl::shape_error);
    // A pad larger than the image crops to all zeros at the extreme offset.
    auto z = make();
    const std::vector<ld::crop_offset> far{{8, 8}, {4, 4}};
    ld::pad_crop_(z, 4, std::span<const ld::crop_offset>(far));
    const auto zv = to_vec(z);
    REQUIRE(std::all_of(zv.begin(), zv.begin() + 18, [](float f) { return f == 0.0f; }));
    const auto orig = to_vec(make());
    REQUIRE(std::vector<float>(zv.begin() + 18, zv.end()) == std::vector<float>(orig.begin() + 18, orig.end()));
  }
  SECTION("flip") {
    auto x = make();
    const std::vector<std::uint8_t> f{0, 1};
    ld::hflip_(x, std::span<const std::uint8_t>(f));
    const auto v = to_vec(x);
    REQUIRE(std::vector<float>(v.begin(), v.begin() + 9) == std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8, 9});
    REQUIRE(std::vector<float>(v.begin() + 27, v.end()) ==
            std::vector<float>{113, 112, 111, 116, 115, 114, 119, 118, 117});
  }
  SECTION("normalize") {
    auto x = make();
    ld::normalize{.mean = {1.0, 10.0}, .stddev = {0.5, 4.0}}(x);
    const auto v = to_vec(x);
    REQUIRE(v[0] == 0.0f);         // (1 − 1) / 0.5
    REQUIRE(v[8] == 16.0f);        // (9 − 1) / 0.5
    REQUIRE(v[9] == 0.25f);        // (11 − 10) / 4
    REQUIRE(v[27] == 25.25f);      // (111 − 10) / 4
    REQUIRE_THROWS_AS((ld::normalize{.mean = {0.0}, .stddev = {1.0}}(x)), ltl::shape_error);
    REQUIRE_THROWS_AS((ld::normalize{.mean = {0.0, 0.0}, .stddev = {1.0, 0.0}}(x)), ltl::value_error);
    ltl::tensor<float> three(shape{2, 3});
    REQUIRE_THROWS_AS((ld::normalize{.mean = {0.0}, .stddev = {1.0}}(three)), ltl::shape_error);
  }
}

TEST_CASE("random crop and flip are reproducible from the rng", "[data][transform]") {
  ltl::tensor<float> x(shape{64, 1, 5, 5});
  for (index_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(i % 97);
  const ld::random_pad_crop crop{.pad = 2};
  const ld::random_hflip flip{};

  ltl::rng g1(42), g2(42), g3(43);
  auto a = x.clone(), b = x.clone(), c = x.clone();
  crop(a, g1);
  flip(a, g1);
  crop(b, g2);
  flip(b, g2);
  crop(c, g3);
  flip(c, g3);
  REQUIRE(to_vec(a) == to_vec(b));
  REQUIRE(to_vec(a) != to_vec(c));
  REQUIRE(g1 == g2);

  // operator() is exactly draw + the explicit kernel.
  ltl::rng h(42);
  const auto o = crop.draw(64, h);
  const auto f = flip.draw(64, h);
  auto d = x.clone();
  ld::pad_crop_(d, 2, std::span<const ld::crop_offset>(o));
  ld::hflip_(d, std::span<const std::uint8_t>(f));
  REQUIRE(to_vec(d) == to_vec(a));

  // Offsets cover [0, 2·pad]² uniformly enough; flips happen with p ≈ 0.5.
  ltl::rng s(5);
  const auto many = ld::random_pad_crop{.pad = 4}.draw(9000, s);
  std::vector<int> hist(81, 0);
  for (const auto& q : many) {
    REQUIRE(q.top >= 0);
    REQUIRE(q.top <= 8);
    REQUIRE(q.left >= 0);
    REQUIRE(q.left <= 8);
    ++hist[static_cast<std::size_t>(q.top * 9 + q.left)];
  }
  REQUIRE(*std::min_element(hist.begin(), hist.end()) > 60);  // expectation 111 each
  const auto flips = ld::random_hflip{.p = 0.5}.draw(10000, s);
  const auto n_flip = std::count(flips.begin(), flips.end(), std::uint8_t{1});
  REQUIRE(n_flip > 4700);
  REQUIRE(n_flip < 5300);
  const auto never = ld::random_hflip{.p = 0.0}.draw(100, s);
  const auto always = ld::random_hflip{.p = 1.0}.draw(100, s);
  REQUIRE(std::count(never.begin(), never.end(), std::uint8_t{1}) == 0);
  REQUIRE(std::count(always.begin(), always.end(), std::uint8_t{1}) == 100);
  REQUIRE_THROWS_AS(ld::random_hflip{.p = 1.5}.draw(1, s), ltl::value_error);

  // standard_augment = crop, flip, normalise, in that order.
  ltl::rng k1(9), k2(9);
  auto e = x.clone(), e2 = x.clone();
  const ld::standard_augment aug{.crop = crop, .flip = flip, .norm = {.mean = {0.5}, .stddev = {2.0}}};
  aug(e, k1);
  crop(e2, k2);
  flip(e2, k2);
  ld::normalize{.mean = {0.5}, .stddev = {2.0}}(e2);
  REQUIRE(to_vec(e) == to_vec(e2));
}

TEST_CASE("make_batch converts dataset indices to a float batch and labels", "[data][transform]") {
  const archetype_dataset arch;
  const std::vector<index_t> idx{1, 0, 1};
  const auto b = ld::make_batch(arch, idx);
  REQUIRE(b.images.sizes() == shape{3, 1, 1, 2});
  REQUIRE(b.labels.sizes() == shape{3});
  REQUIRE(b.labels.to_vector() == std::vector<std::int64_t>{0, 2, 0});
  REQUIRE(to_vec(b.images) == std::vector<float>{102.0f / 255, 1.0f, 0.0f, 51.0f / 255, 102.0f / 255, 1.0f});

  const ld::normalize norm{.mean = {0.2860}, .stddev = {0.3530}};
  const auto n = ld::make_batch(arch, idx, norm);
  auto manual = b.images.clone();
  norm(manual);
  REQUIRE(to_vec(n.images) == to_vec(manual));
  REQUIRE(to_vec(n.images)[2] == static_cast<float>((0.0f - 0.2860f) / 0.3530f));

  const auto bd = ld::make_batch<double>(synthetic(2, 3), std::vector<index_t>{5});
  REQUIRE(bd.images.to_vector() == std::vector<double>{5.0 / 255, 0.0});
  REQUIRE(bd.labels.item() == 1);
  REQUIRE_THROWS_AS(ld::make_batch(arch, std::vector<index_t>{2}), ltl::value_error);
  REQUIRE(ld::make_batch(arch, std::vector<index_t>{}).images.sizes() == shape{0, 1, 1, 2});
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
