#pragma once
/// \file
/// The dataset concept and ltl::data::image_dataset, an in-memory uint8 image set [N, C, H, W].

#include "ltlearn/core/error.hpp"
#include "ltlearn/core/shape.hpp"
#include "ltlearn/data/hash.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <numeric>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace ltl::data {

/// Which part of a dataset with a fixed train/test division to read.
enum class split { train, test };

/// A labelled image dataset with random access.
///
/// Represents N images of one shape [C, H, W] stored as uint8 in channel-major (CHW) order,
/// each with an integer class label. Requires `size()` (N), `num_classes()`, `image_shape()`
/// (the [C, H, W] of every image), `image(i)` returning a span of exactly C·H·W bytes that stays
/// valid while the dataset lives and is not modified, and `label(i)`, for 0 ≤ i < N. Ensures
/// 0 ≤ label(i) < num_classes() and that repeated calls return the same bytes and labels, so
/// the loaders, samplers and batch builders can read any index in any order from any thread.
template <class D>
concept dataset = requires(const D& d, index_t i) {
  { d.size() } -> std::convertible_to<index_t>;
  { d.num_classes() } -> std::convertible_to<index_t>;
  { d.image_shape() } -> std::convertible_to<shape>;
  { d.image(i) } -> std::convertible_to<std::span<const std::uint8_t>>;
  { d.label(i) } -> std::convertible_to<std::int64_t>;
};

/// A labelled set that can be cut into subsets: what make_long_tailed, held_out_split and the
/// samplers need, whether the images are in memory (image_dataset) or files decoded on demand
/// (encoded_dataset).
///
/// Requires `size()`, `num_classes()`, `label(i)`, a `name()`, `class_indices()` (for each class,
/// its indices in ascending order) and `subset(indices, name)` returning the same type holding
/// items `indices` in that order. Ensures a subset keeps the labels of the chosen items and the
/// identity of their source, so equal selections from equal sources hash equally.
template <class D>
concept subsettable_dataset = requires(const D& d, index_t i, std::span<const index_t> idx, std::string name) {
  { d.size() } -> std::convertible_to<index_t>;
  { d.num_classes() } -> std::convertible_to<index_t>;
  { d.label(i) } -> std::convertible_to<std::int64_t>;
  { d.name() } -> std::convertible_to<std::string>;
  { d.class_indices() } -> std::same_as<std::vector<std::vector<index_t>>>;
  { d.subset(idx, name) } -> std::same_as<D>;
};

/// Hash of a selection: (source identity, chosen source positions in order). Every dataset type
/// uses this one formula, so a subset's hash says which source items it holds, whatever the type.
inline std::uint64_t selection_hash(std::uint64_t source_id, std::span<const index_t> source_indices) {
  fnv1a64 h;
  h.text("ltl.image_dataset.subset").u64(source_id).i64(static_cast<index_t>(source_indices.size()));
  for (index_t i : source_indices) h.i64(i);
  return h.value();
}

/// Images [N, C, H, W] as contiguous uint8, int64 labels, a class count and a name.
///
/// Every image_dataset remembers which images of its *source* (the dataset a reader produced)
/// it holds: `source_id()` hashes the source's content and `source_indices()` lists the chosen
/// source positions, so `content_hash()` identifies a subset by what it contains, whichever
/// chain of `subset` calls built it.
class image_dataset {
 public:
  /// An empty dataset (no images, no classes).
  image_dataset() = default;

  /// Takes ownership of `pixels` ([N, C, H, W] bytes, N = labels.size()) and checks that sizes
  /// agree and every label is in [0, num_classes). This dataset becomes its own source.
  image_dataset(std::string name, const shape& image_shape, std::vector<std::uint8_t> pixels,
                std::vector<std::int64_t> labels, index_t num_classes)
      : name_(std::move(name)), image_shape_(image_shape), pixels_(std::move(pixels)),
        labels_(std::move(labels)), num_classes_(num_classes) {
    LTL_CHECK(image_shape_.size() == 3, shape_error, "image_dataset '{}': image shape must be [C, H, W], got {}",
              name_, image_shape_);
    for (index_t e : image_shape_)
      LTL_CHECK(e > 0, shape_error, "image_dataset '{}': image shape {} has a non-positive extent", name_,
                image_shape_);
    LTL_CHECK(num_classes_ > 0, value_error, "image_dataset '{}': num_classes must be positive, got {}", name_,
              num_classes_);
    const auto n = static_cast<index_t>(labels_.size());
    LTL_CHECK(static_cast<index_t>(pixels_.size()) == n * image_shape_.numel(), shape_error,
              "image_dataset '{}': {} pixel bytes for {} labels of images {} (expected {})", name_, pixels_.size(),
              n, image_shape_, n * image_shape_.numel());
    for (index_t i = 0; i < n; ++i)
      LTL_CHECK(labels_[static_cast<std::size_t>(i)] >= 0 && labels_[static_cast<std::size_t>(i)] < num_classes_,
                value_error, "image_dataset '{}': label {} of image {} is outside [0, {})", name_,
                labels_[static_cast<std::size_t>(i)], i, num_classes_);
    source_indices_.resize(static_cast<std::size_t>(n));
    std::iota(source_indices_.begin(), source_indices_.end(), index_t{0});
    source_id_ = hash_content();
    hash_ = hash_selection();
  }

  /// Name used in logs and error messages (e.g. "fashion-mnist-train").
  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  /// Renames the dataset; the content hash does not depend on the name.
  void set_name(std::string name) { name_ = std::move(name); }

  /// Number of images N.
  [[nodiscard]] index_t size() const noexcept { return static_cast<index_t>(labels_.size()); }
  [[nodiscard]] bool empty() const noexcept { return labels_.empty(); }
  [[nodiscard]] index_t num_classes() const noexcept { return num_classes_; }
  /// Shape of one image, [C, H, W].
  [[nodiscard]] const shape& image_shape() const noexcept { return image_shape_; }
  /// Shape of the whole set, [N, C, H, W].
  [[nodiscard]] shape sizes() const {
    return image_shape_.empty() ? shape{0} : shape{size(), image_shape_[0], image_shape_[1], image_shape_[2]};
  }
  [[nodiscard]] index_t channels() const noexcept { return image_shape_.empty() ? 0 : image_shape_[0]; }
  [[nodiscard]] index_t height() const noexcept { return image_shape_.empty() ? 0 : image_shape_[1]; }
  [[nodiscard]] index_t width() const noexcept { return image_shape_.empty() ? 0 : image_shape_[2]; }
  /// Bytes per image, C·H·W.
  [[nodiscard]] index_t image_numel() const noexcept { return image_shape_.empty() ? 0 : image_shape_.numel(); }

  /// The C·H·W bytes of image `i` in CHW order.
  [[nodiscard]] std::span<const std::uint8_t> image(index_t i) const {
    check_index(i, "image");
    const auto k = static_cast<std::size_t>(image_numel());
    return {pixels_.data() + static_cast<std::size_t>(i) * k, k};
  }
  /// Label of image `i`, in [0, num_classes()).
  [[nodiscard]] std::int64_t label(index_t i) const {
    check_index(i, "label");
    return labels_[static_cast<std::size_t>(i)];
  }
  /// All pixels, [N, C, H, W] row-major.
  [[nodiscard]] std::span<const std::uint8_t> pixels() const noexcept { return pixels_; }
  /// All labels, [N].
  [[nodiscard]] std::span<const std::int64_t> labels() const noexcept { return labels_; }

  /// Number of images of each class, [num_classes].
  [[nodiscard]] std::vector<index_t> class_counts() const {
    std::vector<index_t> c(static_cast<std::size_t>(num_classes_), 0);
    for (std::int64_t y : labels_) ++c[static_cast<std::size_t>(y)];
    return c;
  }
  /// For each class, the indices of its images in ascending order.
  [[nodiscard]] std::vector<std::vector<index_t>> class_indices() const {
    std::vector<std::vector<index_t>> r(static_cast<std::size_t>(num_classes_));
    const auto counts = class_counts();
    for (std::size_t c = 0; c < r.size(); ++c) r[c].reserve(static_cast<std::size_t>(counts[c]));
    for (index_t i = 0; i < size(); ++i) r[static_cast<std::size_t>(labels_[static_cast<std::size_t>(i)])].push_back(i);
    return r;
  }

  /// A new dataset holding images `indices` (in that order; repeats allowed), copied contiguously.
  /// Keeps the source identity so the subset's content hash is that of the chosen source images.
  /// `name` defaults to this dataset's name.
  [[nodiscard]] image_dataset subset(std::span<const index_t> indices, std::string name = {}) const {
    image_dataset out;
    out.name_ = name.empty() ? name_ : std::move(name);
    out.image_shape_ = image_shape_;
    out.num_classes_ = num_classes_;
    out.source_id_ = source_id_;
    const auto k = static_cast<std::size_t>(image_numel());
    out.pixels_.resize(indices.size() * k);
    out.labels_.resize(indices.size());
    out.source_indices_.resize(indices.size());
    for (std::size_t j = 0; j < indices.size(); ++j) {
      const index_t i = indices[j];
      LTL_CHECK(i >= 0 && i < size(), value_error, "image_dataset::subset of '{}': index {} (position {}) is outside [0, {})",
                name_, i, j, size());
      const auto si = static_cast<std::size_t>(i);
      std::copy_n(pixels_.data() + si * k, k, out.pixels_.data() + j * k);
      out.labels_[j] = labels_[si];
      out.source_indices_[j] = source_indices_[si];
    }
    out.hash_ = out.hash_selection();
    return out;
  }

  /// Content hash of the source dataset this one was cut from (shape, classes, labels, pixels).
  [[nodiscard]] std::uint64_t source_id() const noexcept { return source_id_; }
  /// Position in the source of each image, [N].
  [[nodiscard]] std::span<const index_t> source_indices() const noexcept { return source_indices_; }
  /// Stable hash of (source identity, chosen source indices in order).
  [[nodiscard]] std::uint64_t content_hash() const noexcept { return hash_; }
  /// `content_hash()` as 16 hex digits.
  [[nodiscard]] std::string hash_hex() const { return data::hash_hex(hash_); }
  /// One log line: name, size, image shape, classes and hash.
  [[nodiscard]] std::string summary() const {
    return fmt::format("{}: {} images {} in {} classes, hash {}", name_, size(), image_shape_, num_classes_,
                       hash_hex());
  }

 private:
  void check_index(index_t i, const char* what) const {
    LTL_CHECK(i >= 0 && i < size(), value_error, "image_dataset::{} of '{}': index {} is outside [0, {})", what,
              name_, i, size());
  }
  std::uint64_t hash_content() const {
    fnv1a64 h;
    h.text("ltl.image_dataset.source");
    for (index_t e : image_shape_) h.i64(e);
    h.i64(num_classes_).i64(size());
    for (std::int64_t y : labels_) h.i64(y);
    h.bytes(pixels_);
    return h.value();
  }
  std::uint64_t hash_selection() const { return selection_hash(source_id_, source_indices_); }

  std::string name_;
  shape image_shape_;
  std::vector<std::uint8_t> pixels_;
  std::vector<std::int64_t> labels_;
  index_t num_classes_ = 0;
  std::vector<index_t> source_indices_;
  std::uint64_t source_id_ = fnv1a64{}.value();
  std::uint64_t hash_ = fnv1a64{}.value();
};

static_assert(dataset<image_dataset>);
static_assert(subsettable_dataset<image_dataset>);

}  // namespace ltl::data
