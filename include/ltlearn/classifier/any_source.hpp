#pragma once
/// \file
/// classifier::any_feature_source: a feature_source (decoupled.hpp) whose type does not name
/// the source behind it — a cached table, or a backbone_source<T, D> on a device picked at run
/// time (the example trainers' --device) — so that cRT/LWS code is written once for either.
/// It shares ownership of the source, and of whatever else the caller hands it to keep alive
/// with the source (the backbone model a backbone_source points to).

#include "ltlearn/classifier/decoupled.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <utility>

namespace ltl::classifier {

/// A type-erased feature_source<·, T> over a shared source (see the file comment).
template <real_scalar T>
class any_feature_source {
 public:
  /// Wraps `src`; `keep_alive` (may be null) lives as long as this source and its copies.
  template <class Src>
    requires feature_source<Src, T>
  explicit any_feature_source(std::shared_ptr<const Src> src, std::shared_ptr<const void> keep_alive = {})
      : keep_alive_(std::move(keep_alive)),
        labels_(src->labels()),
        classes_(src->num_classes()),
        dim_(src->dim()),
        batch_([src](index_t epoch, index_t b, std::span<const index_t> idx) { return src->batch(epoch, b, idx); }) {}

  [[nodiscard]] std::span<const std::int64_t> labels() const { return labels_; }
  [[nodiscard]] index_t num_classes() const { return classes_; }
  [[nodiscard]] index_t dim() const { return dim_; }
  /// The wrapped source's batch(epoch, b, idx).
  [[nodiscard]] std::pair<tensor<T>, tensor<std::int64_t>> batch(index_t epoch, index_t b,
                                                                 std::span<const index_t> idx) const {
    return batch_(epoch, b, idx);
  }

 private:
  std::shared_ptr<const void> keep_alive_;
  std::span<const std::int64_t> labels_;
  index_t classes_ = 0, dim_ = 0;
  std::function<std::pair<tensor<T>, tensor<std::int64_t>>(index_t, index_t, std::span<const index_t>)> batch_;
};

/// A backbone_source over a model it owns: the model is built in place by `make_model()` (it
/// is never moved, since the source points to it), then `prepare(model)` runs (loading a
/// checkpoint, say) before the source first reads it. For a backbone on a device chosen at run
/// time, wrapped in an any_feature_source.
template <real_scalar T, device D, class Model>
class owning_backbone_source {
 public:
  template <class MakeModel, class Prepare>
  owning_backbone_source(MakeModel&& make_model, Prepare&& prepare, const data::image_dataset& ds,
                         typename backbone_source<T, D>::transform_fn transform, std::uint64_t seed)
      : model_(std::forward<MakeModel>(make_model)()),
        source_((std::forward<Prepare>(prepare)(model_), model_), ds, std::move(transform), seed) {}
  owning_backbone_source(const owning_backbone_source&) = delete;
  owning_backbone_source& operator=(const owning_backbone_source&) = delete;

  [[nodiscard]] std::span<const std::int64_t> labels() const { return source_.labels(); }
  [[nodiscard]] index_t num_classes() const { return source_.num_classes(); }
  [[nodiscard]] index_t dim() const { return source_.dim(); }
  [[nodiscard]] std::pair<tensor<T>, tensor<std::int64_t>> batch(index_t epoch, index_t b,
                                                                 std::span<const index_t> idx) const {
    return source_.batch(epoch, b, idx);
  }
  /// The backbone (on D).
  [[nodiscard]] Model& model() noexcept { return model_; }

 private:
  Model model_;
  backbone_source<T, D> source_;
};

}  // namespace ltl::classifier
