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

#include <cstdint>
#include <filesystem>
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

/// Reads an IDX unsigned-byte image file [N, H, W]. Throws io_error naming the file and the
/// offending field or byte offset on a missing file, bad magic, wrong dimension count, zero
/// image extent, truncated pixel data or trailing bytes.
inline idx_images read_idx_images(const std::filesystem::path& path) {
  const file_bytes f = read_file_bytes(path);
  byte_reader r(f);
  detail::read_idx_magic(r, 3, "images");
  idx_images out;
  out.count = r.be32("dimension 0 (image count)");
  out.rows = r.be32("dimension 1 (rows)");
  out.cols = r.be32("dimension 2 (columns)");
  LTL_CHECK(out.rows > 0 && out.cols > 0, io_error, "{}: image extent {}x{} in the header (byte offsets 8-15) is empty",
            f.path, out.rows, out.cols);
  const auto per_image = static_cast<std::size_t>(out.rows) * static_cast<std::size_t>(out.cols);
  // Compare by division: count · rows · cols can exceed 64 bits in a corrupt header.
  LTL_CHECK(static_cast<std::size_t>(out.count) <= r.remaining() / per_image, io_error,
            "{}: truncated: the header declares {} images of {}x{} ({} bytes) at {} but only {} bytes remain", f.path,
            out.count, out.rows, out.cols, static_cast<double>(out.count) * static_cast<double>(per_image),
            r.where(r.offset()), r.remaining());
  const auto px = r.bytes(static_cast<std::size_t>(out.count) * per_image, "pixel data");
  out.pixels.assign(px.begin(), px.end());
  r.expect_end("pixel data");
  return out;
}

/// Reads an IDX unsigned-byte label file [N] and checks every label is < num_classes.
inline std::vector<std::int64_t> read_idx_labels(const std::filesystem::path& path, index_t num_classes) {
  const file_bytes f = read_file_bytes(path);
  byte_reader r(f);
  detail::read_idx_magic(r, 1, "labels");
  const std::uint32_t n = r.be32("dimension 0 (label count)");
  const std::size_t start = r.offset();
  LTL_CHECK(n <= r.remaining(), io_error, "{}: truncated: the header declares {} labels at {} but only {} bytes remain",
            f.path, n, r.where(start), r.remaining());
  const auto raw = r.bytes(n, "labels");
  std::vector<std::int64_t> labels(raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    LTL_CHECK(raw[i] < num_classes, io_error, "{}: label {} at {} (label {}) is not below the class count {}", f.path,
              raw[i], r.where(start + i), i, num_classes);
    labels[i] = raw[i];
  }
  r.expect_end("labels");
  return labels;
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
