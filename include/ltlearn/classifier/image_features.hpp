#pragma once
/// \file
/// Cached features of an encoded-image data set (ImageNet-LT, Places-LT, iNaturalist; SPEC §12)
/// for stage 2 of decoupled training: every item decoded and transformed by a
/// data::image_pipeline — for stage 2 its evaluation transform, Resize + CenterCrop — then passed
/// once through the frozen backbone, giving the feature_table that NCM, τ-normalisation, N_c^τ,
/// post-hoc logit adjustment, the τ search and cRT / LWS on cached features
/// (classifier/decoupled.hpp) work from.
///
/// Difference from Kang et al.: their stage 2 re-runs the frozen backbone on every batch with
/// the stage-1 training augmentation (RandomResizedCrop, flip and, except on iNaturalist,
/// ColorJitter), so a tail image repeated by the class-balanced sampler arrives as a new crop
/// each time. A table built here holds one centre crop per image: cRT and LWS on it see each
/// image's single view, repeated; in exchange an epoch costs a gather instead of a backbone pass
/// over max_c N_c × C decoded images. image_backbone_source below is the faithful variant (as
/// backbone_source of classifier/decoupled.hpp is for in-memory data sets).

#include "ltlearn/backends/contract/upload.hpp"
#include "ltlearn/classifier/decoupled.hpp"
#include "ltlearn/classifier/features.hpp"
#include "ltlearn/data/image/pipeline.hpp"
#include "ltlearn/detail/host.hpp"
#include "ltlearn/eval/scope.hpp"

#include <cstdint>
#include <span>
#include <vector>

namespace ltl::classifier {

/// Options of extract_image_features.
struct image_feature_options {
  index_t batch_size = 256;  ///< images per backbone pass
  int workers = 2;           ///< loader threads decoding ahead (0: decode on the calling thread)
  std::uint64_t seed = 0;    ///< the pipeline's per-sample streams (an evaluation transform draws nothing)
};

namespace detail {
/// `src` as a pass_source whose batches use the per-sample streams of `seed` (a pass asks for
/// seed 0), so that a training transform can be drawn from a chosen seed.
template <real_scalar T>
struct seeded_pipeline {
  const data::image_pipeline<T>* src;
  std::uint64_t seed;
  [[nodiscard]] index_t size() const { return src->size(); }
  [[nodiscard]] index_t num_classes() const { return src->num_classes(); }
  [[nodiscard]] data::batch<T> make_batch(std::span<const index_t> idx, index_t epoch, index_t first,
                                          std::uint64_t) const {
    return src->make_batch(idx, epoch, first, seed);
  }
};
}  // namespace detail

/// f(x) [N, F] of every item of `src`'s data set, in order, as `src` decodes and transforms it
/// (item i at position i of epoch 0), with the model in eval mode (batch-norm running
/// statistics) and no graph recorded; the model's mode is restored afterwards. Labels are the
/// batches' — with bad_image_policy::replace, a replaced item's row is its replacement's image
/// and label.
template <real_scalar T, device D>
feature_table<T> extract_image_features(nn::staged_model<T, D>& model, const data::image_pipeline<T>& src,
                                        const image_feature_options& o = {}) {
  LTL_CHECK(src.size() > 0 && o.batch_size > 0 && o.workers >= 0, value_error,
            "extract_image_features: {} images, batch size {}, {} workers", src.size(), o.batch_size, o.workers);
  return extract_features(model, detail::seeded_pipeline<T>{&src, o.seed}, o.batch_size, o.workers);
}

/// Kang et al.'s stage-2 input on an encoded-image data set: the rows `idx` of batch b of an
/// epoch decoded and augmented by `src` — a pipeline with stage 1's *training* transform — each
/// at its place in the epoch's order (position b·batch_size + k, the per-sample random stream
/// of data::image_pipeline), then passed through the frozen backbone `model` on its device D
/// (eval mode, no graph); the features come back to the host. A feature_source
/// (decoupled.hpp): cRT / LWS fitted on it see a new crop of an image each time the
/// class-balanced sampler repeats it. `batch_size` must be the stage-2 batch size (the fit's
/// batches then sit at their true positions); the model and pipeline must outlive the source.
template <real_scalar T, device D>
class image_backbone_source {
 public:
  image_backbone_source(nn::staged_model<T, D>& model, const data::image_pipeline<T>& src, index_t batch_size,
                        std::uint64_t seed)
      : model_(&model), src_(&src), batch_size_(batch_size), seed_(seed) {
    LTL_CHECK(src.size() > 0 && batch_size > 0, value_error, "image_backbone_source: {} images, batch size {}",
              src.size(), batch_size);
    const index_t first = 0;
    dim_ = batch(0, 0, std::span<const index_t>(&first, 1)).first.size(1);
  }
  [[nodiscard]] std::span<const std::int64_t> labels() const { return src_->dataset().labels(); }
  [[nodiscard]] index_t num_classes() const { return src_->num_classes(); }
  [[nodiscard]] index_t dim() const { return dim_; }
  [[nodiscard]] std::pair<tensor<T>, tensor<std::int64_t>> batch(index_t epoch, index_t b,
                                                                 std::span<const index_t> idx) const {
    auto bt = src_->make_batch(idx, epoch, b * batch_size_, seed_);
    eval::eval_scope scope(*model_);
    auto f = ltl::detail::to_host(model_->features(variable<T, D>(upload_batch<D>(bt.images))).value());
    return {std::move(f), std::move(bt.labels)};
  }

 private:
  nn::staged_model<T, D>* model_;
  const data::image_pipeline<T>* src_;
  index_t batch_size_;
  std::uint64_t seed_;
  index_t dim_ = 0;
};

}  // namespace ltl::classifier
