#pragma once
/// \file
/// The feature bank of feature space augmentation (Chu et al., ECCV 2020, Alg. 1 input: "all
/// training images' features F and their CAM M"): the phase-I model's feature maps of every
/// training image at the augmentation point, each sample's normalised CAM of its own class,
/// which vectors are non-zero, and the model's logits (for the confusing classes). Computed
/// once in eval mode without input augmentation, then shared by every phase-II configuration,
/// so a grid over (h_r, τ_s, τ_g, N_a, N_f) costs one pass over the training set.
///
/// The CAM is defined on the last feature map (global average pooling and the linear
/// classifier follow it). For an earlier augmentation point (the paper's Block2/Block3
/// ablation) the last-map CAM is carried to the point's finer grid by nearest-neighbour resize.
///
/// The bank is host data; the model that fills it (and bank_logits') runs on its device D, its
/// outputs brought to the host batch by batch.

#include "ltlearn/augment/cam.hpp"
#include "ltlearn/augment/confusion.hpp"
#include "ltlearn/data/dataset.hpp"
#include "ltlearn/data/transforms.hpp"
#include "ltlearn/detail/host.hpp"
#include "ltlearn/eval/batched_pass.hpp"
#include "ltlearn/nn/staged_model.hpp"

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <numeric>
#include <span>
#include <string>
#include <vector>

namespace ltl::augment {

/// Feature maps at one model point, stored location-major so that a feature vector (one spatial
/// location, all K channels) is contiguous. L = height·width.
template <real_scalar T>
struct feature_bank {
  std::string point;           ///< model point the maps were taken at ("" when built from tensors)
  int point_index = -1;        ///< index of that point in the model (−1 when built from tensors)
  bool last_map = true;        ///< global average pooling follows the maps directly
  index_t num_classes = 0;
  index_t channels = 0, height = 0, width = 0;  ///< K, H, W
  tensor<T> vectors;           ///< [N, L, K] feature vectors
  tensor<T> cam;               ///< [N, L] normalised CAM of each sample's own class
  tensor<T> pooled;            ///< [N, K] spatial means: the pooled feature f(x) when last_map
  tensor<T> logits;            ///< [N, C] logits of the model that built the bank (undefined from tensors)
  std::vector<std::int64_t> labels;       ///< [N]
  std::vector<std::uint8_t> nonzero;      ///< [N·L] 1 where the vector has a non-zero entry
  std::vector<std::vector<index_t>> by_class;  ///< sample indices of each class

  [[nodiscard]] index_t size() const noexcept { return static_cast<index_t>(labels.size()); }
  [[nodiscard]] index_t locations() const noexcept { return height * width; }
  /// Feature vector of sample i at location p: K contiguous values.
  [[nodiscard]] const T* vector(index_t i, index_t p) const {
    return vectors.data() + (i * locations() + p) * channels;
  }
  /// Normalised CAM value of sample i at location p.
  [[nodiscard]] T cam_at(index_t i, index_t p) const { return cam.data()[i * locations() + p]; }
  [[nodiscard]] bool is_nonzero(index_t i, index_t p) const {
    return nonzero[static_cast<std::size_t>(i * locations() + p)] != 0;
  }
  /// Every sample's maps are resident: nothing to prepare (fsa_bank).
  void prepare(std::span<const index_t>) const noexcept {}
  /// Mean softmax scores per true class of the banked logits (mean_class_scores).
  [[nodiscard]] tensor<double> class_scores(double scale) const {
    LTL_CHECK(logits.defined(), value_error, "feature_bank: no logits (a bank made from tensors has none)");
    return mean_class_scores(logits, labels, scale);
  }
  /// Maps of samples [first, first + count) in the model's layout [count, K, H, W].
  [[nodiscard]] tensor<T> maps(index_t first, index_t count) const {
    LTL_CHECK(first >= 0 && count >= 0 && first + count <= size(), value_error,
              "feature_bank::maps: samples [{}, {}) outside [0, {})", first, first + count, size());
    return vectors.narrow(0, first, count).transpose(1, 2).contiguous().reshape(shape{count, channels, height, width});
  }
};

/// What fsa_generator and fsa_grid_search read from a bank B of T maps: the resident
/// feature_bank<T> or a streamed_bank. Requires the fields num_classes, channels, height, width
/// (index_t), last_map, point_index, pooled ([N, K]), labels ([N]) and by_class ([C] lists), and
/// `size()`, `locations()`, `prepare(samples)` (make the maps of these samples readable),
/// `vector(i, p)`, `cam_at(i, p)`, `is_nonzero(i, p)` for prepared samples, and
/// `class_scores(scale)` ([C, C] mean softmax scores).
template <class B, class T>
concept fsa_bank = requires(const B& b, index_t i, std::span<const index_t> samples, double scale) {
  { b.size() } -> std::convertible_to<index_t>;
  { b.locations() } -> std::convertible_to<index_t>;
  { b.num_classes } -> std::convertible_to<index_t>;
  { b.channels } -> std::convertible_to<index_t>;
  { b.height } -> std::convertible_to<index_t>;
  { b.width } -> std::convertible_to<index_t>;
  { b.last_map } -> std::convertible_to<bool>;
  { b.point_index } -> std::convertible_to<int>;
  { b.pooled.data() } -> std::convertible_to<const T*>;
  { b.labels[0] } -> std::convertible_to<std::int64_t>;
  { b.by_class[0] } -> std::convertible_to<const std::vector<index_t>&>;
  b.prepare(samples);
  { b.vector(i, i) } -> std::convertible_to<const T*>;
  { b.cam_at(i, i) } -> std::convertible_to<T>;
  { b.is_nonzero(i, i) } -> std::convertible_to<bool>;
  { b.class_scores(scale) } -> std::same_as<tensor<double>>;
};

namespace detail {

/// Spatial means of maps [n, K, H, W] (contiguous), summed in double: out[i·K + k].
template <real_scalar T>
void spatial_means(const tensor<T>& maps, T* out) {
  const index_t n = maps.size(0), K = maps.size(1), L = maps.size(2) * maps.size(3);
  const T* src = maps.data();
  LTL_OMP(omp parallel for schedule(static) if (n >= 2))
  for (index_t i = 0; i < n; ++i)
    for (index_t k = 0; k < K; ++k) {
      double acc = 0;
      for (index_t p = 0; p < L; ++p) acc += static_cast<double>(src[(i * K + k) * L + p]);
      out[i * K + k] = static_cast<T>(acc / static_cast<double>(L));
    }
}

/// Allocates a bank for N samples of maps [·, K, H, W].
template <real_scalar T>
void bank_allocate(feature_bank<T>& b, index_t N, index_t K, index_t H, index_t W, index_t C) {
  b.num_classes = C;
  b.channels = K;
  b.height = H;
  b.width = W;
  b.vectors = tensor<T>(shape{N, H * W, K});
  b.cam = tensor<T>(shape{N, H * W});
  b.pooled = tensor<T>(shape{N, K});
  b.labels.assign(static_cast<std::size_t>(N), 0);
  b.nonzero.assign(static_cast<std::size_t>(N * H * W), 0);
}

/// Writes samples [offset, offset + n) from maps [n, K, H, W], normalised CAMs [n, H, W] (any
/// grid: resized to H×W) and labels [n].
template <real_scalar T>
void bank_fill(feature_bank<T>& b, index_t offset, const tensor<T>& maps, tensor<T> cam,
               std::span<const std::int64_t> labels) {
  const index_t n = maps.size(0), K = b.channels, L = b.locations();
  LTL_CHECK(maps.dim() == 4 && maps.size(1) == K && maps.size(2) == b.height && maps.size(3) == b.width &&
                cam.dim() == 3 && cam.size(0) == n && static_cast<index_t>(labels.size()) == n,
            shape_error, "feature_bank: maps {}, CAMs {} and {} labels do not fit a bank of [K, H, W] = [{}, {}, {}]",
            maps.sizes(), cam.sizes(), labels.size(), K, b.height, b.width);
  if (cam.size(1) != b.height || cam.size(2) != b.width) cam = resize_nearest(cam, b.height, b.width);
  cam = cam.contiguous();
  const auto m = maps.contiguous();
  for (index_t i = 0; i < n; ++i) {
    const std::int64_t y = labels[static_cast<std::size_t>(i)];
    LTL_CHECK(y >= 0 && y < b.num_classes, value_error, "feature_bank: label {} of sample {} is outside [0, {})", y,
              offset + i, b.num_classes);
    b.labels[static_cast<std::size_t>(offset + i)] = y;
  }
  // Samples are independent host work (each written by one thread): a host parallel loop.
  LTL_OMP(omp parallel for schedule(static) if (n >= 2))
  for (index_t i = 0; i < n; ++i) {
    const T* src = m.data() + i * K * L;
    T* v = b.vectors.data() + (offset + i) * L * K;
    for (index_t k = 0; k < K; ++k)
      for (index_t p = 0; p < L; ++p) v[p * K + k] = src[k * L + p];
    for (index_t p = 0; p < L; ++p) {
      const T* vp = v + p * K;
      b.nonzero[static_cast<std::size_t>((offset + i) * L + p)] =
          std::any_of(vp, vp + K, [](T x) { return x != T(0); }) ? 1 : 0;
    }
    std::copy_n(cam.data() + i * L, L, b.cam.data() + (offset + i) * L);
  }
  spatial_means(m, b.pooled.data() + offset * K);
}

template <real_scalar T>
void bank_index_classes(feature_bank<T>& b) {
  b.by_class.assign(static_cast<std::size_t>(b.num_classes), {});
  for (index_t i = 0; i < b.size(); ++i)
    b.by_class[static_cast<std::size_t>(b.labels[static_cast<std::size_t>(i)])].push_back(i);
}

}  // namespace detail

/// A bank from tensors: maps [N, K, H, W] at the augmentation point, normalised CAMs
/// [N, H', W'] of each sample's class (resized to H×W when the grids differ), labels [N].
template <real_scalar T>
feature_bank<T> make_feature_bank(const tensor<T>& maps, const tensor<T>& cam, std::span<const std::int64_t> labels,
                                  index_t num_classes, bool last_map = true) {
  LTL_CHECK(maps.dim() == 4 && maps.size(0) > 0, shape_error, "make_feature_bank: maps {} must be [N, K, H, W], N > 0",
            maps.sizes());
  LTL_CHECK(num_classes > 0, value_error, "make_feature_bank: num_classes {} must be positive", num_classes);
  feature_bank<T> b;
  b.last_map = last_map;
  detail::bank_allocate(b, maps.size(0), maps.size(1), maps.size(2), maps.size(3), num_classes);
  detail::bank_fill(b, 0, maps, cam, labels);
  detail::bank_index_classes(b);
  return b;
}

/// The weight [C, K] of the model's classifier (its parameter "weight"), on the host.
template <real_scalar T, device D>
tensor<T> classifier_weight(nn::staged_model<T, D>& model) {
  for (auto& [name, p] : model.classifier().named_parameters())
    if (name == "weight") {
      LTL_CHECK(p.dim() == 2, shape_error, "classifier_weight: the classifier's weight {} is not [C, K]", p.sizes());
      return ltl::detail::to_host(p.value());
    }
  throw value_error("classifier_weight: the classifier has no parameter 'weight'; CAMs need a linear classifier");
}

/// Host bytes a bank of N samples of maps [K, H, W] and C classes holds (vectors, CAMs, pooled
/// features, logits, labels, non-zero flags, class lists).
template <real_scalar T>
std::uint64_t feature_bank_bytes(index_t N, index_t K, index_t H, index_t W, index_t C) {
  const auto n = static_cast<std::uint64_t>(N), L = static_cast<std::uint64_t>(H * W);
  return n * (sizeof(T) * (L * static_cast<std::uint64_t>(K) + L + static_cast<std::uint64_t>(K + C)) +
              sizeof(std::int64_t) + L + sizeof(index_t));
}

/// Options of build_feature_bank.
struct bank_options {
  index_t batch_size = 256;
  int workers = 0;              ///< loader threads building (decoding) batches ahead of the model
  std::uint64_t max_bytes = 0;  ///< refuse (before allocating) a bank above this size; 0: no limit
};

/// Runs `model` (eval mode, no graph) over the pass_source `src` (evaluation batches: not
/// augmented) and banks its maps at `point`, which must be the last feature map (the point
/// before "pool") or an earlier one. The bank's size is known after the first batch; above
/// o.max_bytes it is refused with a value_error stating both sizes, before it is allocated.
template <real_scalar T, device D, class Src>
  requires eval::pass_source<Src, T>
feature_bank<T> build_feature_bank(nn::staged_model<T, D>& model, const Src& src, const std::string& point,
                                   const bank_options& o = {}) {
  const int P = model.point(point), last = model.feature_point() - 1;
  LTL_CHECK(P <= last, value_error,
            "build_feature_bank: point '{}' lies after the last feature map '{}'; augment at or before it", point,
            model.points()[static_cast<std::size_t>(last)]);
  LTL_CHECK(src.size() > 0 && o.batch_size > 0, value_error, "build_feature_bank: empty dataset or batch size {}",
            o.batch_size);
  const auto W = classifier_weight(model);
  const auto N = static_cast<index_t>(src.size());
  const auto C = static_cast<index_t>(src.num_classes());
  feature_bank<T> b;
  b.point = point;
  b.point_index = P;
  b.last_map = P == last;
  eval::run_batches(
      model, src,
      [&](const eval::pass_batch<T, D>& bt) {
        const index_t b0 = bt.first, n = bt.size();
        const auto hp = model.run(variable<T, D>(bt.images), -1, P);
        const auto hl = P == last ? hp : model.run(hp, P, last);
        LTL_CHECK(hp.dim() == 4 && hl.dim() == 4, shape_error,
                  "build_feature_bank: maps at '{}' {} and at the last map {} must be [N, K, H, W]", point,
                  hp.sizes(), hl.sizes());
        const auto z = ltl::detail::to_host(model.run(hl, last, model.last_point()).value());
        if (b0 == 0) {
          const std::uint64_t need = feature_bank_bytes<T>(N, hp.size(1), hp.size(2), hp.size(3), C);
          LTL_CHECK(o.max_bytes == 0 || need <= o.max_bytes, value_error,
                    "build_feature_bank: a bank of {} maps [{}, {}, {}] at '{}' needs {:.2f} GiB, over the limit of "
                    "{:.2f} GiB (raise the limit, or augment at a point with smaller maps)",
                    N, hp.size(1), hp.size(2), hp.size(3), point, static_cast<double>(need) / 1073741824.0,
                    static_cast<double>(o.max_bytes) / 1073741824.0);
          detail::bank_allocate(b, N, hp.size(1), hp.size(2), hp.size(3), C);
          b.logits = tensor<T>(shape{N, z.size(1)});
        }
        const auto labels = ltl::detail::to_host(bt.labels);
        const std::span<const std::int64_t> y(labels.data(), static_cast<std::size_t>(n));
        detail::bank_fill(b, b0, ltl::detail::to_host(hp.value()),
                          normalize_cam(true_class_cam(ltl::detail::to_host(hl.value()), W, y)), y);
        std::copy_n(z.data(), z.numel(), b.logits.data() + b0 * z.size(1));
      },
      {.batch_size = o.batch_size, .workers = o.workers});
  detail::bank_index_classes(b);
  return b;
}

/// The host bytes build_feature_bank(model, src, point) would hold (feature_bank_bytes), from
/// the maps of the source's first item.
template <real_scalar T, device D, class Src>
  requires eval::pass_source<Src, T>
std::uint64_t resident_bank_bytes(nn::staged_model<T, D>& model, const Src& src, const std::string& point) {
  const int P = model.point(point);
  LTL_CHECK(src.size() > 0, value_error, "resident_bank_bytes: empty dataset");
  std::uint64_t bytes = 0;
  eval::run_batches(
      model, src,
      [&](const eval::pass_batch<T, D>& bt) {
        const auto hp = model.run(variable<T, D>(bt.images), -1, P);
        LTL_CHECK(hp.dim() == 4, shape_error, "resident_bank_bytes: maps at '{}' {} must be [N, K, H, W]", point,
                  hp.sizes());
        bytes = feature_bank_bytes<T>(static_cast<index_t>(src.size()), hp.size(1), hp.size(2), hp.size(3),
                                      static_cast<index_t>(src.num_classes()));
      },
      {.batch_size = 1, .end = 1});
  return bytes;
}

/// build_feature_bank over an in-memory dataset `ds`, its batches normalised by `norm`.
template <real_scalar T, device D, data::dataset Ds>
feature_bank<T> build_feature_bank(nn::staged_model<T, D>& model, const Ds& ds, const data::normalize& norm,
                                   const std::string& point, index_t batch_size = 256) {
  return build_feature_bank(model, eval::normalized_dataset<T, Ds>(ds, norm, eval::delivery_for<D, T>), point,
                            {.batch_size = batch_size});
}

/// Logits [N, C] of the banked maps under the model's current weights (eval mode): what
/// "recompute the confusing classes" needs after fine-tuning.
template <real_scalar T, device D>
tensor<T> bank_logits(nn::staged_model<T, D>& model, const feature_bank<T>& b, index_t batch_size = 256) {
  LTL_CHECK(b.point_index >= 0, value_error, "bank_logits: the bank was not built from a model");
  eval::eval_scope scope(model);
  tensor<T> out;
  for (index_t b0 = 0; b0 < b.size(); b0 += batch_size) {
    const index_t n = std::min(batch_size, b.size() - b0);
    const variable<T, D> maps(b.maps(b0, n).template to<D>());
    const auto z = ltl::detail::to_host(model.run(maps, b.point_index, model.last_point()).value());
    if (b0 == 0) out = tensor<T>(shape{b.size(), z.size(1)});
    std::copy_n(z.data(), z.numel(), out.data() + b0 * z.size(1));
  }
  return out;
}

}  // namespace ltl::augment
