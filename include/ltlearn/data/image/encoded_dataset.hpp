#pragma once
/// \file
/// ltl::data::encoded_dataset: a labelled set of encoded images on disk (files, or byte ranges
/// of files), decoded on demand. Labels and class counts are known up front, so it composes with
/// make_long_tailed, held_out_split, the samplers and the shot groups exactly as image_dataset
/// does; data::image_pipeline decodes and augments its items into batches.

#include "ltlearn/core/error.hpp"
#include "ltlearn/core/shape.hpp"
#include "ltlearn/data/dataset.hpp"
#include "ltlearn/data/hash.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <numeric>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace ltl::data {

/// One encoded image: a file relative to the dataset root (or absolute), optionally a byte range.
struct encoded_item {
  static constexpr std::uint64_t whole_file = std::numeric_limits<std::uint64_t>::max();
  std::string path;
  std::uint64_t offset = 0;           ///< first byte of the image inside the file
  std::uint64_t length = whole_file;  ///< its size in bytes (whole_file: to the end of the file)
};

/// Reads bytes [offset, offset + length) of `path` (the rest of the file for whole_file).
/// io_error naming the file for a missing or unreadable file or a range past its end.
inline std::vector<std::uint8_t> read_byte_range(const std::filesystem::path& path, std::uint64_t offset = 0,
                                                 std::uint64_t length = encoded_item::whole_file) {
  const std::string name = path.string();
  errno = 0;
  std::FILE* f = std::fopen(name.c_str(), "rb");
  LTL_CHECK(f != nullptr, io_error, "{}: cannot open: {}", name, errno ? std::strerror(errno) : "unknown error");
  struct closer {
    std::FILE* f;
    ~closer() { std::fclose(f); }
  } guard{f};
  LTL_CHECK(std::fseek(f, 0, SEEK_END) == 0, io_error, "{}: cannot seek", name);
  const long end = std::ftell(f);
  LTL_CHECK(end >= 0, io_error, "{}: cannot tell its size", name);
  const auto size = static_cast<std::uint64_t>(end);
  LTL_CHECK(offset <= size, io_error, "{}: byte offset {} is past the end of the file ({} bytes)", name, offset, size);
  const std::uint64_t n = length == encoded_item::whole_file ? size - offset : length;
  LTL_CHECK(n <= size - offset, io_error, "{}: byte range [{}, {}) is past the end of the file ({} bytes)", name,
            offset, offset + n, size);
  std::vector<std::uint8_t> out(static_cast<std::size_t>(n));
  LTL_CHECK(std::fseek(f, static_cast<long>(offset), SEEK_SET) == 0, io_error, "{}: cannot seek to byte {}", name,
            offset);
  LTL_CHECK(std::fread(out.data(), 1, out.size(), f) == out.size(), io_error, "{}: read of {} bytes at byte {} failed",
            name, n, offset);
  return out;
}

/// Encoded images with int64 labels, a class count, optional class names and a root directory.
///
/// Like image_dataset, every encoded_dataset remembers its source (the set a reader produced):
/// `source_id()` hashes the source's item list, labels and classes (not the file contents, which
/// would mean reading every file), and `content_hash()` is `selection_hash(source_id,
/// source_indices)`, the formula image_dataset uses.
class encoded_dataset {
 public:
  /// An empty dataset.
  encoded_dataset() = default;

  /// Checks sizes and labels (every label in [0, num_classes)); `class_names` is empty or has
  /// num_classes entries. This dataset becomes its own source.
  encoded_dataset(std::string name, std::filesystem::path root, std::vector<encoded_item> items,
                  std::vector<std::int64_t> labels, index_t num_classes, std::vector<std::string> class_names = {})
      : name_(std::move(name)), root_(std::move(root)), items_(std::move(items)), labels_(std::move(labels)),
        num_classes_(num_classes), class_names_(std::move(class_names)) {
    LTL_CHECK(num_classes_ > 0, value_error, "encoded_dataset '{}': num_classes must be positive, got {}", name_,
              num_classes_);
    LTL_CHECK(items_.size() == labels_.size(), shape_error, "encoded_dataset '{}': {} items but {} labels", name_,
              items_.size(), labels_.size());
    LTL_CHECK(class_names_.empty() || static_cast<index_t>(class_names_.size()) == num_classes_, shape_error,
              "encoded_dataset '{}': {} class names for {} classes", name_, class_names_.size(), num_classes_);
    for (std::size_t i = 0; i < labels_.size(); ++i)
      LTL_CHECK(labels_[i] >= 0 && labels_[i] < num_classes_, value_error,
                "encoded_dataset '{}': label {} of item {} ({}) is outside [0, {})", name_, labels_[i], i,
                items_[i].path, num_classes_);
    source_indices_.resize(items_.size());
    std::iota(source_indices_.begin(), source_indices_.end(), index_t{0});
    source_id_ = hash_source();
    hash_ = selection_hash(source_id_, source_indices_);
  }

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  void set_name(std::string name) { name_ = std::move(name); }
  /// Directory relative item paths are resolved against.
  [[nodiscard]] const std::filesystem::path& root() const noexcept { return root_; }

  [[nodiscard]] index_t size() const noexcept { return static_cast<index_t>(labels_.size()); }
  [[nodiscard]] bool empty() const noexcept { return labels_.empty(); }
  [[nodiscard]] index_t num_classes() const noexcept { return num_classes_; }
  /// Class names by label (empty when the reader had none).
  [[nodiscard]] const std::vector<std::string>& class_names() const noexcept { return class_names_; }

  [[nodiscard]] std::int64_t label(index_t i) const {
    check_index(i, "label");
    return labels_[static_cast<std::size_t>(i)];
  }
  [[nodiscard]] std::span<const std::int64_t> labels() const noexcept { return labels_; }
  [[nodiscard]] const encoded_item& item(index_t i) const {
    check_index(i, "item");
    return items_[static_cast<std::size_t>(i)];
  }
  /// The file of item i: its path joined to root() (an absolute item path stays as it is).
  [[nodiscard]] std::filesystem::path file(index_t i) const { return root_ / item(i).path; }
  /// The encoded bytes of item i (io_error naming the file on failure).
  [[nodiscard]] std::vector<std::uint8_t> read(index_t i) const {
    const auto& it = item(i);
    return read_byte_range(file(i), it.offset, it.length);
  }

  /// Number of items of each class, [num_classes].
  [[nodiscard]] std::vector<index_t> class_counts() const {
    std::vector<index_t> c(static_cast<std::size_t>(num_classes_), 0);
    for (std::int64_t y : labels_) ++c[static_cast<std::size_t>(y)];
    return c;
  }
  /// For each class, the indices of its items in ascending order.
  [[nodiscard]] std::vector<std::vector<index_t>> class_indices() const {
    std::vector<std::vector<index_t>> r(static_cast<std::size_t>(num_classes_));
    for (index_t i = 0; i < size(); ++i) r[static_cast<std::size_t>(labels_[static_cast<std::size_t>(i)])].push_back(i);
    return r;
  }

  /// Items `indices` in that order (repeats allowed); keeps root, classes and source identity.
  [[nodiscard]] encoded_dataset subset(std::span<const index_t> indices, std::string name = {}) const {
    encoded_dataset out;
    out.name_ = name.empty() ? name_ : std::move(name);
    out.root_ = root_;
    out.num_classes_ = num_classes_;
    out.class_names_ = class_names_;
    out.source_id_ = source_id_;
    out.items_.reserve(indices.size());
    out.labels_.reserve(indices.size());
    out.source_indices_.reserve(indices.size());
    for (std::size_t j = 0; j < indices.size(); ++j) {
      const index_t i = indices[j];
      LTL_CHECK(i >= 0 && i < size(), value_error,
                "encoded_dataset::subset of '{}': index {} (position {}) is outside [0, {})", name_, i, j, size());
      const auto si = static_cast<std::size_t>(i);
      out.items_.push_back(items_[si]);
      out.labels_.push_back(labels_[si]);
      out.source_indices_.push_back(source_indices_[si]);
    }
    out.hash_ = selection_hash(out.source_id_, out.source_indices_);
    return out;
  }

  [[nodiscard]] std::uint64_t source_id() const noexcept { return source_id_; }
  [[nodiscard]] std::span<const index_t> source_indices() const noexcept { return source_indices_; }
  [[nodiscard]] std::uint64_t content_hash() const noexcept { return hash_; }
  [[nodiscard]] std::string hash_hex() const { return data::hash_hex(hash_); }
  /// One log line: name, size, classes, root and hash.
  [[nodiscard]] std::string summary() const {
    return fmt::format("{}: {} encoded images in {} classes under {}, hash {}", name_, size(), num_classes_,
                       root_.string(), hash_hex());
  }

 private:
  void check_index(index_t i, const char* what) const {
    LTL_CHECK(i >= 0 && i < size(), value_error, "encoded_dataset::{} of '{}': index {} is outside [0, {})", what,
              name_, i, size());
  }
  std::uint64_t hash_source() const {
    fnv1a64 h;
    h.text("ltl.encoded_dataset.source").i64(num_classes_).i64(size());
    for (std::size_t i = 0; i < items_.size(); ++i) {
      h.i64(static_cast<std::int64_t>(items_[i].path.size())).text(items_[i].path);
      h.u64(items_[i].offset).u64(items_[i].length).i64(labels_[i]);
    }
    return h.value();
  }

  std::string name_;
  std::filesystem::path root_;
  std::vector<encoded_item> items_;
  std::vector<std::int64_t> labels_;
  index_t num_classes_ = 0;
  std::vector<std::string> class_names_;
  std::vector<index_t> source_indices_;
  std::uint64_t source_id_ = fnv1a64{}.value();
  std::uint64_t hash_ = fnv1a64{}.value();
};

static_assert(subsettable_dataset<encoded_dataset>);

}  // namespace ltl::data
