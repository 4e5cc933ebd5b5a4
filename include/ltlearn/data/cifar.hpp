#pragma once
/// \file
/// Readers for the binary versions of CIFAR-10 and CIFAR-100.
///
/// CIFAR-10 (cifar-10-batches-bin): data_batch_1..5.bin and test_batch.bin, records of 1 label
/// byte + 3072 pixel bytes (1024 red, 1024 green, 1024 blue, each 32×32 row-major — already
/// [C, H, W]). CIFAR-100 (cifar-100-binary): train.bin and test.bin, records of a coarse label
/// byte (20 superclasses), a fine label byte (100 classes, the one used) and 3072 pixel bytes.

#include "ltlearn/core/error.hpp"
#include "ltlearn/core/shape.hpp"
#include "ltlearn/data/binary_file.hpp"
#include "ltlearn/data/dataset.hpp"

#include <fmt/format.h>

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace ltl::data {

/// Which CIFAR binary layout a file uses.
enum class cifar_variant { cifar10, cifar100 };

namespace detail {
inline constexpr std::size_t cifar_pixels = 3 * 32 * 32;
inline constexpr std::size_t cifar_label_bytes(cifar_variant v) { return v == cifar_variant::cifar10 ? 1 : 2; }
inline constexpr std::int64_t cifar_classes(cifar_variant v) { return v == cifar_variant::cifar10 ? 10 : 100; }
inline constexpr const char* cifar_name(cifar_variant v) { return v == cifar_variant::cifar10 ? "CIFAR-10" : "CIFAR-100"; }

/// Appends the records of one decoded buffer to `pixels`/`labels`, validating size and every label.
inline void append_cifar_records(const file_bytes& f, cifar_variant v, std::vector<std::uint8_t>& pixels,
                                 std::vector<std::int64_t>& labels) {
  const std::size_t lb = cifar_label_bytes(v);
  const std::size_t record = lb + cifar_pixels;
  LTL_CHECK(!f.bytes.empty(), io_error, "{}: empty file, expected {} records of {} bytes", f.path, cifar_name(v), record);
  LTL_CHECK(f.bytes.size() % record == 0, io_error,
            "{}: size {} bytes is not a multiple of the {} record size {} (truncated or not a {} binary file; the "
            "last record would start at byte offset {})",
            f.path, f.bytes.size(), cifar_name(v), record, cifar_name(v), f.bytes.size() / record * record);
  const std::size_t n = f.bytes.size() / record;
  byte_reader r(f);
  pixels.reserve(pixels.size() + n * cifar_pixels);
  labels.reserve(labels.size() + n);
  for (std::size_t i = 0; i < n; ++i) {
    if (v == cifar_variant::cifar100) {
      const std::size_t off = r.offset();
      const std::uint8_t coarse = r.u8("coarse label");
      LTL_CHECK(coarse < 20, io_error, "{}: coarse label {} of record {} at {} is not below 20", f.path, coarse, i,
                r.where(off));
    }
    const std::size_t off = r.offset();
    const std::uint8_t y = r.u8(v == cifar_variant::cifar10 ? "label" : "fine label");
    LTL_CHECK(y < cifar_classes(v), io_error, "{}: {} {} of record {} at {} is not below the class count {}", f.path,
              v == cifar_variant::cifar10 ? "label" : "fine label", y, i, r.where(off), cifar_classes(v));
    labels.push_back(y);
    const auto px = r.bytes(cifar_pixels, "pixels");
    pixels.insert(pixels.end(), px.begin(), px.end());
  }
}

/// Appends the records of one file (a regular file, plain or gzip, at most max_file_bytes).
inline void read_cifar_file(const std::filesystem::path& path, cifar_variant v, std::vector<std::uint8_t>& pixels,
                            std::vector<std::int64_t>& labels) {
  append_cifar_records(read_file_bytes(path), v, pixels, labels);
}
}  // namespace detail

/// Parses one CIFAR binary file held in `raw` (plain or gzip, decompressed up to max_file_bytes)
/// into a dataset [N, 3, 32, 32] named `name`; errors as read_cifar_files, naming `name`.
inline image_dataset parse_cifar(std::span<const std::uint8_t> raw, cifar_variant v, std::string name) {
  std::vector<std::uint8_t> pixels;
  std::vector<std::int64_t> labels;
  detail::append_cifar_records(decode_bytes(raw, name), v, pixels, labels);
  return image_dataset(std::move(name), shape{3, 32, 32}, std::move(pixels), std::move(labels),
                       detail::cifar_classes(v));
}

/// Reads and concatenates CIFAR binary files (in the given order) into one dataset [N, 3, 32, 32].
/// Throws io_error naming the file on a missing file, a size that is not a whole number of
/// records, or a label outside the class range (with the record and byte offset).
inline image_dataset read_cifar_files(const std::vector<std::filesystem::path>& files, cifar_variant v,
                                      std::string name) {
  LTL_CHECK(!files.empty(), value_error, "read_cifar_files '{}': no files given", name);
  std::vector<std::uint8_t> pixels;
  std::vector<std::int64_t> labels;
  for (const auto& p : files) detail::read_cifar_file(p, v, pixels, labels);
  return image_dataset(std::move(name), shape{3, 32, 32}, std::move(pixels), std::move(labels),
                       detail::cifar_classes(v));
}

/// CIFAR-10 from a cifar-10-batches-bin directory: train = data_batch_1..5.bin (50,000 images),
/// test = test_batch.bin (10,000). Named "cifar10-train" / "cifar10-test".
inline image_dataset read_cifar10(const std::filesystem::path& dir, split s) {
  std::vector<std::filesystem::path> files;
  if (s == split::train) {
    for (int b = 1; b <= 5; ++b) files.push_back(dir / fmt::format("data_batch_{}.bin", b));
  } else {
    files.push_back(dir / "test_batch.bin");
  }
  return read_cifar_files(files, cifar_variant::cifar10, s == split::train ? "cifar10-train" : "cifar10-test");
}

/// CIFAR-100 (fine labels) from a cifar-100-binary directory: train.bin (50,000 images),
/// test.bin (10,000). Named "cifar100-train" / "cifar100-test".
inline image_dataset read_cifar100(const std::filesystem::path& dir, split s) {
  const bool train = s == split::train;
  return read_cifar_files({dir / (train ? "train.bin" : "test.bin")}, cifar_variant::cifar100,
                          train ? "cifar100-train" : "cifar100-test");
}

}  // namespace ltl::data
