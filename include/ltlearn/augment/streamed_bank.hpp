#pragma once
/// \file
/// A feature bank for training sets whose maps do not fit in memory (iNaturalist 2018 with a
/// ResNet-50: 437,513 maps of 2048 × 7 × 7 floats, 180 GiB). streamed_bank keeps what phase II
/// reads for every batch — each sample's label and pooled feature f(x) [N, K], and the per-class
/// mean softmax scores [C, C] that choose the confusing classes — and computes the maps, CAMs and
/// non-zero flags of a batch's tail and partner samples when the generator asks for them
/// (prepare), by running the frozen backbone again on those images. The phase-I classifier's
/// weights are kept from construction, so the CAMs are the resident bank's although the
/// classifier is being fine-tuned meanwhile.
///
/// Only at the last feature map (the point before the pool, which is all the method trains
/// through there): at an earlier point the layers that produce the CAM are fine-tuned too.
///
/// The source must make deterministic (evaluation) batches, e.g. data::image_pipeline with an
/// evaluation transform: prepare builds each item on its own, at the position equal to its index,
/// as the resident bank's pass does. The model must outlive the bank and keep its layers up to
/// the point unchanged (fsa_finetune freezes them).
///
/// Cost: one pass over the training set at construction, then per phase-II batch the backbone on
/// its 2·N_t·N_a tail and partner images (a batch of 128 with N_a = 3: 96 images).

#include "ltlearn/augment/confusion.hpp"
#include "ltlearn/augment/feature_bank.hpp"
#include "ltlearn/core/config.hpp"
#include "ltlearn/eval/batched_pass.hpp"
#include "ltlearn/eval/scope.hpp"

#include <algorithm>
#include <cstdint>
#include <exception>
#include <span>
#include <string>
#include <vector>

namespace ltl::augment {

/// A bank at the last feature map whose maps are computed batch by batch (see the file comment).
/// Satisfies fsa_bank<T>; reads its model and source, which must outlive it.
template <real_scalar T, device D, class Src>
  requires eval::pass_source<Src, T>
class streamed_bank {
 public:
  /// Runs `model` (eval mode, no graph) over `src` once for the pooled features and the class
  /// scores under `logit_scale` (a cosine classifier's scale, 1 for a linear one).
  streamed_bank(nn::staged_model<T, D>& model, const Src& src, const std::string& point_name, double logit_scale,
                const bank_options& o = {})
      : point(point_name), model_(&model), src_(&src), opt_(o), scores_(static_cast<index_t>(src.num_classes()),
                                                                          logit_scale) {
    point_index = model.point(point_name);
    const int last = model.feature_point() - 1;
    LTL_CHECK(point_index == last, value_error,
              "streamed_bank: maps are streamed at the last feature map '{}' only, not at '{}' (an earlier point "
              "fine-tunes the layers that make the CAM: use a resident feature_bank)",
              model.points()[static_cast<std::size_t>(last)], point_name);
    const auto N = static_cast<index_t>(src.size());
    LTL_CHECK(N > 0 && o.batch_size > 0, value_error, "streamed_bank: empty dataset or batch size {}", o.batch_size);
    num_classes = static_cast<index_t>(src.num_classes());
    weight_ = classifier_weight(model).clone();  // a copy: on the CPU the host view would follow fine-tuning
    labels.assign(static_cast<std::size_t>(N), 0);
    eval::run_batches(
        model, src,
        [&](const eval::pass_batch<T, D>& bt) {
          const auto maps = model.run(variable<T, D>(bt.images), -1, point_index);
          LTL_CHECK(maps.dim() == 4, shape_error, "streamed_bank: maps at '{}' {} must be [N, K, H, W]", point,
                    maps.sizes());
          const auto z = ltl::detail::to_host(model.run(maps, point_index, model.last_point()).value());
          const auto m = ltl::detail::to_host(maps.value()).contiguous();
          if (bt.first == 0) {
            channels = m.size(1);
            height = m.size(2);
            width = m.size(3);
            pooled = tensor<T>(shape{N, channels});
          }
          const auto y = ltl::detail::to_host(bt.labels);
          for (index_t i = 0; i < bt.size(); ++i) {
            LTL_CHECK(y.data()[i] >= 0 && y.data()[i] < num_classes, value_error,
                      "streamed_bank: label {} of sample {} is outside [0, {})", y.data()[i], bt.first + i, num_classes);
            labels[static_cast<std::size_t>(bt.first + i)] = y.data()[i];
          }
          detail::spatial_means(m, pooled.data() + bt.first * channels);
          scores_.add(z, std::span<const std::int64_t>(y.data(), static_cast<std::size_t>(bt.size())));
        },
        {.batch_size = o.batch_size, .workers = o.workers});
    by_class.assign(static_cast<std::size_t>(num_classes), {});
    for (index_t i = 0; i < N; ++i) by_class[static_cast<std::size_t>(labels[static_cast<std::size_t>(i)])].push_back(i);
    slot_.assign(static_cast<std::size_t>(N), -1);
  }

  std::string point;            ///< model point of the maps (the last feature map)
  int point_index = -1;         ///< its index in the model
  bool last_map = true;         ///< always: global average pooling follows the maps
  index_t num_classes = 0;
  index_t channels = 0, height = 0, width = 0;  ///< K, H, W
  tensor<T> pooled;             ///< [N, K] spatial means of every sample's maps
  std::vector<std::int64_t> labels;            ///< [N]
  std::vector<std::vector<index_t>> by_class;  ///< sample indices of each class

  [[nodiscard]] index_t size() const noexcept { return static_cast<index_t>(labels.size()); }
  [[nodiscard]] index_t locations() const noexcept { return height * width; }

  /// Computes the maps of `samples` (any order, repeats allowed), which the accessors below then
  /// read; the previous call's maps are dropped.
  void prepare(std::span<const index_t> samples) const {
    for (index_t i : held_) slot_[static_cast<std::size_t>(i)] = -1;
    held_.assign(samples.begin(), samples.end());
    std::sort(held_.begin(), held_.end());
    held_.erase(std::unique(held_.begin(), held_.end()), held_.end());
    for (index_t i : held_)
      LTL_CHECK(i >= 0 && i < size(), value_error, "streamed_bank::prepare: sample {} outside [0, {})", i, size());
    const auto n = static_cast<index_t>(held_.size());
    window_ = feature_bank<T>{};
    if (n == 0) return;
    detail::bank_allocate(window_, n, channels, height, width, num_classes);
    eval::eval_scope scope(*model_);
    for (index_t b0 = 0; b0 < n; b0 += opt_.batch_size) {
      const index_t m = std::min(opt_.batch_size, n - b0);
      const auto items = build(std::span<const index_t>(held_.data() + b0, static_cast<std::size_t>(m)));
      const auto maps = ltl::detail::to_host(
          model_->run(variable<T, D>(upload_batch<D>(items)), -1, point_index).value());
      std::vector<std::int64_t> y(static_cast<std::size_t>(m));
      for (index_t k = 0; k < m; ++k)
        y[static_cast<std::size_t>(k)] = labels[static_cast<std::size_t>(held_[static_cast<std::size_t>(b0 + k)])];
      detail::bank_fill(window_, b0, maps, normalize_cam(true_class_cam(maps, weight_, y)), y);
    }
    for (index_t k = 0; k < n; ++k) slot_[static_cast<std::size_t>(held_[static_cast<std::size_t>(k)])] = k;
  }

  /// Feature vector of prepared sample i at location p (K values).
  [[nodiscard]] const T* vector(index_t i, index_t p) const { return window_.vector(slot(i), p); }
  /// Normalised CAM value of prepared sample i at location p.
  [[nodiscard]] T cam_at(index_t i, index_t p) const { return window_.cam_at(slot(i), p); }
  [[nodiscard]] bool is_nonzero(index_t i, index_t p) const { return window_.is_nonzero(slot(i), p); }

  /// The mean class scores the confusing classes are ranked by; `scale` must be the one the bank
  /// was built with (the logits themselves are not kept).
  [[nodiscard]] tensor<double> class_scores(double scale) const {
    LTL_CHECK(scale == scores_.scale(), value_error,
              "streamed_bank: class scores were taken at logit scale {}, not {} (build the bank with the grid's scale)",
              scores_.scale(), scale);
    return scores_.means();
  }

 private:
  index_t slot(index_t i) const {
    const index_t s = i >= 0 && i < size() ? slot_[static_cast<std::size_t>(i)] : -1;
    LTL_CHECK(s >= 0, value_error, "streamed_bank: sample {} was not prepared (call prepare with it first)", i);
    return s;
  }

  // Images of `items`, each built on its own at its own position (in parallel, in order).
  tensor<T> build(std::span<const index_t> items) const {
    const auto m = static_cast<index_t>(items.size());
    std::vector<data::batch<T>> one(static_cast<std::size_t>(m));
    std::vector<std::exception_ptr> errors(static_cast<std::size_t>(m));
    LTL_OMP(omp parallel for schedule(dynamic, 1))
    for (index_t k = 0; k < m; ++k) {
      try {
        one[static_cast<std::size_t>(k)] = src_->make_batch(items.subspan(static_cast<std::size_t>(k), 1), 0,
                                                            items[static_cast<std::size_t>(k)], 0);
      } catch (...) {
        errors[static_cast<std::size_t>(k)] = std::current_exception();
      }
    }
    for (auto& e : errors)
      if (e) std::rethrow_exception(e);
    std::vector<tensor<T>> images(static_cast<std::size_t>(m));
    for (index_t k = 0; k < m; ++k)
      images[static_cast<std::size_t>(k)] = data::host_images(one[static_cast<std::size_t>(k)]);
    shape s = images[0].sizes();
    const index_t per = s.numel();
    s[0] = m;
    tensor<T> x(s);
    for (index_t k = 0; k < m; ++k) {
      const auto& im = images[static_cast<std::size_t>(k)];
      LTL_CHECK(im.numel() == per, shape_error, "streamed_bank: item {} gives images {}, the first {}",
                items[static_cast<std::size_t>(k)], im.sizes(), images[0].sizes());
      const auto c = im.contiguous();
      std::copy_n(c.data(), per, x.data() + k * per);
    }
    return x;
  }

  nn::staged_model<T, D>* model_;
  const Src* src_;
  bank_options opt_;
  class_score_means scores_;
  tensor<T> weight_;                 // the phase-I classifier's [C, K]
  mutable feature_bank<T> window_;   // the prepared samples' maps, in held_ order
  mutable std::vector<index_t> held_, slot_;
};

}  // namespace ltl::augment
