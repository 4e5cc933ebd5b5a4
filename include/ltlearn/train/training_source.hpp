#pragma once
/// \file
/// What train::trainer trains from, and how a batch source's global batches are cut into the
/// ranks' slices.
///
/// Two kinds of training data, as data::loader reads them:
///   - an in-memory data::dataset (e.g. data::image_dataset): batches are built by
///     data::make_batch and augmented by the trainer's batch-level transform, one generator per
///     batch;
///   - a data::batch_source that builds whole batches itself with one generator per sample
///     (data::image_pipeline over an encoded_dataset decodes and augments each image).
/// Either describes itself the same way (size, classes, per-class counts, the shape of one batch
/// image, a content hash of its items for the run fingerprint): that is training_source.
///
/// Data parallel over a batch source, every rank's loader walks the *global* order at the global
/// batch size and rank_slices builds only the rank's contiguous slice of each global batch
/// (dist::rank_slice), at the slice's global positions and with the run's own seed. A sample's
/// augmentation is then a function of (seed, epoch, global position) alone, so the ranks' slices
/// put together are, bit for bit, the batch a single process builds — at any world size. The
/// in-memory path keeps its per-batch transform: there each rank's loader reads its rank_order
/// with a rank-mixed seed, as it always has.

#include "ltlearn/core/concepts.hpp"
#include "ltlearn/core/config.hpp"
#include "ltlearn/core/error.hpp"
#include "ltlearn/core/shape.hpp"
#include "ltlearn/data/batch.hpp"
#include "ltlearn/data/dataset.hpp"
#include "ltlearn/data/loader.hpp"
#include "ltlearn/dist/data_parallel.hpp"

#include <concepts>
#include <cstdint>
#include <span>
#include <vector>

namespace ltl::train {

/// Training data the trainer can read: an in-memory dataset or a batch source of T batches.
///
/// Requires data::dataset<S> or data::batch_source<S, T>, and `size()`, `num_classes()`,
/// `image_shape()` (the [C, H, W] of one image of its batches), `class_counts()` (items per
/// class, [num_classes]; the losses' priors and the shot groups) and `content_hash()` (which
/// items it holds, independent of any transform: the run fingerprint's data entry). Ensures
/// these are constant over the source's lifetime.
template <class S, class T>
concept training_source = (data::dataset<S> || data::batch_source<S, T>) && requires(const S& s) {
  { s.size() } -> std::convertible_to<index_t>;
  { s.num_classes() } -> std::convertible_to<index_t>;
  { s.image_shape() } -> std::convertible_to<shape>;
  { s.class_counts() } -> std::convertible_to<std::vector<index_t>>;
  { s.content_hash() } -> std::convertible_to<std::uint64_t>;
};

/// One rank's view of a batch source: given a whole global batch (the indices at positions
/// first, first + 1, … of the epoch's order), builds the rank's slice of it (dist::rank_slice)
/// at the slice's own positions. With world size 1 the slice is the whole batch. A slice may be
/// empty (a last global batch with fewer samples than ranks): the result then has no images.
template <real_scalar T, class Src>
class rank_slices {
 public:
  /// `src` must outlive this view.
  rank_slices(const Src& src, int rank, int world) : src_(&src), rank_(rank), world_(world) {
    LTL_CHECK(world > 0 && rank >= 0 && rank < world, value_error, "rank_slices: rank {} of world {}", rank, world);
  }

  /// This rank's slice of the global batch `indices` (a batch_source, like the source it cuts).
  [[nodiscard]] data::batch<T> make_batch(std::span<const index_t> indices, index_t epoch, index_t first,
                                          std::uint64_t seed) const
    requires data::batch_source<Src, T>
  {
    const auto m = static_cast<index_t>(indices.size());
    const dist::slice s = dist::rank_slice(m, m, 0, rank_, world_);
    return src_->make_batch(indices.subspan(static_cast<std::size_t>(s.begin), static_cast<std::size_t>(s.size())),
                            epoch, first + s.begin, seed);
  }

  [[nodiscard]] const Src& source() const noexcept { return *src_; }
  [[nodiscard]] int rank() const noexcept { return rank_; }
  [[nodiscard]] int world() const noexcept { return world_; }

 private:
  const Src* src_;
  int rank_, world_;
};

}  // namespace ltl::train
