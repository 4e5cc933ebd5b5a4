#pragma once
/// \file
/// Reader for the IDX format of MNIST and Fashion-MNIST (plain or .gz).
///
/// IDX: a big-endian magic number 0x0000TTDD (TT = element type, 0x08 = unsigned byte;
/// DD = number of dimensions), DD big-endian uint32 extents, then the elements row-major.
/// Images are [N, H, W] (magic 0x00000803), labels [N] (magic 0x00000801).

#include "ltlearn/core/error.hpp"
#include "ltlearn/core/shape.hpp"
#include "ltlearn/data/binary_file.hpp"
#include "ltlearn/data/dataset.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace ltl::data {

/// The contents of an IDX image file: `count` images of rows × cols bytes, [N, H, W].
struct idx_images {
  index_t count = 0, rows = 0, cols = 0;
  std::vector<std::uint8_t> pixels;
};

namespace detail {
/// Reads the magic number and checks element type 0x08 and the dimension count.
inline void read_idx_magic(byte_reader& r, std::uint32_t expected_dims, const char* kind) {
  const std::uint32_t magic = r.be32("magic number");
  const std::uint32_t expected = 0x0800u | expected_dims;
  LTL_CHECK((magic >> 8) == 0x08u, io_error,
            "{}: bad magic number 0x{:08x} at byte offset 0, expected 0x{:08x} (IDX unsigned-byte {})", r.path(), magic,
            expected, kind);
  LTL_CHECK((magic & 0xFFu) == expected_dims, io_error,
            "{}: wrong dimension count {} in the magic number (byte offset 3), IDX {} have {}", r.path(), magic & 0xFFu,
            kind, expected_dims);
}
}  // namespace detail

/// Parses an IDX unsigned-byte image file [N, H, W] held in `raw` (plain or gzip); `name` names
/// the source in errors. Only the header and the declared pixel bytes + 1 are decompressed.
/// Throws io_error naming the source and the offending field or byte offset on bad magic, wrong
/// dimension count, zero image extent, truncated pixel data or trailing bytes.
inline idx_images parse_idx_images(std::span<const std::uint8_t> raw, const std::string& name) {
  byte_source src(raw, name);
  file_bytes f{name, {}, src.gzipped()};
  src.read(f.bytes, 16);
  idx_images out;
  {
    byte_reader h(f);
    detail::read_idx_magic(h, 3, "images");
    out.count = h.be32("dimension 0 (image count)");
    out.rows = h.be32("dimension 1 (rows)");
    out.cols = h.be32("dimension 2 (columns)");
  }
  LTL_CHECK(out.rows > 0 && out.cols > 0, io_error, "{}: image extent {}x{} in the header (byte offsets 8-15) is empty",
            name, out.rows, out.cols);
  const auto per_image = static_cast<std::size_t>(out.rows) * static_cast<std::size_t>(out.cols);
  std::size_t declared = 0;  // count · rows · cols can exceed 64 bits in a corrupt header
  if (__builtin_mul_overflow(static_cast<std::size_t>(out.count), per_image, &declared)) declared = SIZE_MAX;
  // Plain data is in memory already: take it all (exact trailing counts); inflate one byte past
  // the declared size, never the whole stream.
  src.read(f.bytes, src.gzipped() ? std::min(declared, max_file_bytes) + 1 : SIZE_MAX);
  byte_reader r(f);
  (void)r.bytes(16, "header");
  LTL_CHECK(declared <= max_file_bytes || r.remaining() <= max_file_bytes, io_error,
            "{}: the header declares {} images of {}x{} ({} bytes), more than the {}-byte limit", name, out.count,
            out.rows, out.cols, static_cast<double>(out.count) * static_cast<double>(per_image), max_file_bytes);
  LTL_CHECK(static_cast<std::size_t>(out.count) <= r.remaining() / per_image, io_error,
            "{}: truncated: the header declares {} images of {}x{} ({} bytes) at {} but only {} bytes remain", name,
            out.count, out.rows, out.cols, static_cast<double>(out.count) * static_cast<double>(per_image),
            r.where(r.offset()), r.remaining());
  const auto px = r.bytes(declared, "pixel data");
  out.pixels.assign(px.begin(), px.end());
  r.expect_end("pixel data", src.gzipped());
  return out;
}

/// Parses an IDX unsigned-byte label file [N] held in `raw` (plain or gzip) and checks every
/// label is < num_classes; errors as parse_idx_images.
inline std::vector<std::int64_t> parse_idx_labels(std::span<const std::uint8_t> raw, const std::string& name,
                                                  index_t num_classes) {
  byte_source src(raw, name);
  file_bytes f{name, {}, src.gzipped()};
  src.read(f.bytes, 8);
  std::uint32_t n = 0;
  {
    byte_reader h(f);
    detail::read_idx_magic(h, 1, "labels");
    n = h.be32("dimension 0 (label count)");
  }
  src.read(f.bytes, src.gzipped() ? std::size_t{n} + 1 : SIZE_MAX);
  byte_reader r(f);
  (void)r.bytes(8, "header");
  const std::size_t start = r.offset();
  LTL_CHECK(n <= r.remaining(), io_error, "{}: truncated: the header declares {} labels at {} but only {} bytes remain",
            name, n, r.where(start), r.remaining());
  const auto labels_raw = r.bytes(n, "labels");
  std::vector<std::int64_t> labels(labels_raw.size());
  for (std::size_t i = 0; i < labels_raw.size(); ++i) {
    LTL_CHECK(labels_raw[i] < num_classes, io_error, "{}: label {} at {} (label {}) is not below the class count {}",
              name, labels_raw[i], r.where(start + i), i, num_classes);
    labels[i] = labels_raw[i];
  }
  r.expect_end("labels", src.gzipped());
  return labels;
}

/// Reads an IDX unsigned-byte image file [N, H, W] (plain or .gz); a regular file only, errors as
/// parse_idx_images plus io_error on a missing or non-regular file.
inline idx_images read_idx_images(const std::filesystem::path& path) {
  return parse_idx_images(read_raw_file(path), path.string());
}

/// Reads an IDX unsigned-byte label file [N] and checks every label is < num_classes.
inline std::vector<std::int64_t> read_idx_labels(const std::filesystem::path& path, index_t num_classes) {
  return parse_idx_labels(read_raw_file(path), path.string(), num_classes);
}

/// Reads an IDX image file and its label file into a dataset [N, 1, H, W]. Throws io_error
/// naming both files when the image and label counts differ.
inline image_dataset read_idx(const std::filesystem::path& images_path, const std::filesystem::path& labels_path,
                              std::string name, index_t num_classes = 10) {
  idx_images im = read_idx_images(images_path);
  std::vector<std::int64_t> labels = read_idx_labels(labels_path, num_classes);
  LTL_CHECK(static_cast<index_t>(labels.size()) == im.count, io_error,
            "read_idx: image/label count mismatch: {} holds {} images but {} holds {} labels", images_path.string(),
            im.count, labels_path.string(), labels.size());
  return image_dataset(std::move(name), shape{1, im.rows, im.cols}, std::move(im.pixels), std::move(labels),
                       num_classes);
}

namespace detail {
/// `dir/stem.gz` if it exists, else `dir/stem` (whose absence the reader then reports).
inline std::filesystem::path idx_file(const std::filesystem::path& dir, const std::string& stem) {
  auto gz = dir / (stem + ".gz");
  std::error_code ec;
  return std::filesystem::exists(gz, ec) ? gz : dir / stem;
}
}  // namespace detail

/// Reads an MNIST-layout directory ({train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]).
/// The dataset is named `name` + "-train" or "-test".
inline image_dataset read_mnist_layout(const std::filesystem::path& dir, split s, const std::string& name,
                                       index_t num_classes = 10) {
  const std::string prefix = s == split::train ? "train" : "t10k";
  return read_idx(detail::idx_file(dir, prefix + "-images-idx3-ubyte"), detail::idx_file(dir, prefix + "-labels-idx1-ubyte"),
                  name + (s == split::train ? "-train" : "-test"), num_classes);
}

/// Default location of Fashion-MNIST (Debian package dataset-fashion-mnist).
inline std::filesystem::path fashion_mnist_default_dir() { return "/usr/share/datasets/fashion-mnist"; }

/// Fashion-MNIST: 60,000 train / 10,000 test images [1, 28, 28], 10 classes.
inline image_dataset read_fashion_mnist(split s, const std::filesystem::path& dir = fashion_mnist_default_dir()) {
  return read_mnist_layout(dir, s, "fashion-mnist", 10);
}

}  // namespace ltl::data
