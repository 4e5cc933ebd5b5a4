#pragma once
/// \file
/// The one pass of a model over a dataset in batches, as evaluation, feature extraction, the
/// per-class analysis and FSA's feature bank all need it: images [B, C, H, W] in dataset order,
/// never augmented, built on the host and moved to the model's device D. The images come from
///   - an in-memory dataset, scaled to [0, 1] and normalised by a data::normalize, or
///   - a pass_source: a batch source that makes its own (evaluation) batches, e.g.
///     data::image_pipeline with data::imagenet_eval_transform();
/// the first form is the second over normalized_dataset, so both run the same loop.
///   - for_each_batch(ds, norm, fn) / for_each_batch(src, fn): the batches alone;
///   - run_batches(model, ds, norm, fn) / run_batches(model, src, fn): the same inside an
///     eval_scope of the model;
///   - collect(model, ds, norm, {.point = …}): the model's outputs at one point for every image,
///     stacked into a host tensor [N, ...] with the labels [N].
/// A pass may cover a range of items (a rank's shard) and build batches ahead on loader threads.

#include "ltlearn/backends/contract/upload.hpp"
#include "ltlearn/data/batch.hpp"
#include "ltlearn/data/dataset.hpp"
#include "ltlearn/data/loader.hpp"
#include "ltlearn/data/transforms.hpp"
#include "ltlearn/detail/host.hpp"
#include "ltlearn/eval/scope.hpp"
#include "ltlearn/nn/staged_model.hpp"

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <numeric>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace ltl::eval {

/// Options of a pass over a dataset.
struct pass_options {
  index_t batch_size = 256;
  bool record_graph = false;  ///< run_batches: record the autograd graph (gradient analysis)
  index_t begin = 0;          ///< first item of the pass
  index_t end = -1;           ///< one past its last item (-1: the end of the dataset)
  int workers = 0;            ///< loader threads building batches ahead (0: on the calling thread)
};

/// What a pass reads besides an in-memory dataset: a batch source that knows its size and class
/// count and builds deterministic (evaluation) batches.
///
/// Requires data::batch_source<S, T>, `size()` and `num_classes()`. A pass asks for items in
/// index order, each at the position equal to its index, in epoch 0 with seed 0: a batch depends
/// only on which items it holds, not on how the pass is split into batches or shards.
template <class S, class T>
concept pass_source = data::batch_source<S, T> && requires(const S& s) {
  { s.size() } -> std::convertible_to<index_t>;
  { s.num_classes() } -> std::convertible_to<index_t>;
};

/// How batches of T reach device D best: as bytes normalised by the device's upload where it
/// can (normalizes_bytes<D>, float batches), else as floats normalised on the host.
template <class D, class T>
inline constexpr data::image_delivery delivery_for =
    std::same_as<T, float> && normalizes_bytes<D> ? data::image_delivery::bytes : data::image_delivery::floats;

/// A batch's images on device D: float images through host_upload<D>; pending bytes
/// (data::batch::bytes) normalised by the device's upload where it can, else on the host by
/// data::to_floats and then uploaded. The values are the same either way.
template <device D, real_scalar T>
tensor<T, D> upload_images(const data::batch<T>& b) {
  if (!b.bytes) return upload_batch<D>(b.images);
  if constexpr (std::same_as<T, float> && normalizes_bytes<D>)
    return host_upload<D>::normalized(b.bytes->pixels, b.bytes->norm.mean, b.bytes->norm.stddev);
  else
    return upload_batch<D>(data::to_floats<T>(*b.bytes));
}

/// An in-memory dataset as a pass_source: images scaled to [0, 1] and normalised by `norm`
/// (data::make_batch(ds, indices, norm)), or with image_delivery::bytes the bytes with `norm`
/// pending (data::make_byte_batch, for upload_images). Holds a reference to `ds`, which must
/// outlive it.
template <real_scalar T, data::dataset Ds>
class normalized_dataset {
 public:
  normalized_dataset(const Ds& ds, data::normalize norm,
                     data::image_delivery delivery = data::image_delivery::floats)
      : ds_(&ds), norm_(std::move(norm)), delivery_(delivery) {}
  [[nodiscard]] index_t size() const { return static_cast<index_t>(ds_->size()); }
  [[nodiscard]] index_t num_classes() const { return static_cast<index_t>(ds_->num_classes()); }
  [[nodiscard]] shape image_shape() const { return ds_->image_shape(); }
  /// Items `indices`, normalised or pending (epoch, position and seed play no part).
  [[nodiscard]] data::batch<T> make_batch(std::span<const index_t> indices, index_t, index_t, std::uint64_t) const {
    if (delivery_ == data::image_delivery::bytes) return data::make_byte_batch<T>(*ds_, indices, norm_);
    return data::make_batch<T>(*ds_, indices, norm_);
  }

 private:
  const Ds* ds_;
  data::normalize norm_;
  data::image_delivery delivery_;
};

namespace detail {
/// A pass_source whose loader positions start at `offset` (a pass over [offset, end) hands each
/// item its own index as its position).
template <real_scalar T, class Src>
struct offset_positions {
  const Src* src;
  index_t offset;
  [[nodiscard]] data::batch<T> make_batch(std::span<const index_t> idx, index_t epoch, index_t first,
                                          std::uint64_t seed) const {
    return src->make_batch(idx, epoch, first + offset, seed);
  }
};
}  // namespace detail

/// One batch of a pass: images [B, C, H, W] and labels [B] on device D; `first` is the dataset
/// index of its first image (the batch holds images first … first + B − 1).
template <real_scalar T, device D>
struct pass_batch {
  index_t first = 0;
  tensor<T, D> images;
  tensor<std::int64_t, D> labels;
  [[nodiscard]] index_t size() const { return labels.numel(); }
};

/// Calls `fn(const pass_batch<T, D>&)` for consecutive batches of `src` in index order, over the
/// items [o.begin, o.end). Grad mode and module modes are the caller's (see run_batches).
template <real_scalar T, device D = cpu::device, class Src, class Fn>
  requires pass_source<Src, T>
void for_each_batch(const Src& src, Fn&& fn, const pass_options& o = {}) {
  const auto N = static_cast<index_t>(src.size());
  const index_t lo = o.begin, hi = o.end < 0 ? N : o.end;
  LTL_CHECK(N > 0 && o.batch_size > 0, value_error, "batched pass: {} images, batch size {}", N, o.batch_size);
  LTL_CHECK(0 <= lo && lo <= hi && hi <= N, value_error, "batched pass: items [{}, {}) are outside [0, {})", lo, hi, N);
  if (lo == hi) return;
  const detail::offset_positions<T, Src> shifted{&src, lo};
  const data::loader<T, detail::offset_positions<T, Src>> loader(shifted, {.batch_size = o.batch_size, .workers = o.workers});
  std::vector<index_t> order(static_cast<std::size_t>(hi - lo));
  std::iota(order.begin(), order.end(), lo);
  auto run = loader.run(0, std::move(order));
  for (index_t b0 = lo; auto bt = run->next(); b0 += o.batch_size) {
    const pass_batch<T, D> pb{b0, upload_images<D>(*bt), upload_batch<D>(bt->labels)};
    fn(pb);
  }
}

/// Calls `fn(const pass_batch<T, D>&)` for consecutive batches of `ds` in order, normalised by
/// `norm` (on the device where its upload can: delivery_for). Grad mode and module modes are
/// the caller's (see run_batches).
template <real_scalar T, device D = cpu::device, data::dataset Ds, class Fn>
void for_each_batch(const Ds& ds, const data::normalize& norm, Fn&& fn, const pass_options& o = {}) {
  for_each_batch<T, D>(normalized_dataset<T, Ds>(ds, norm, delivery_for<D, T>), std::forward<Fn>(fn), o);
}

/// for_each_batch inside an eval_scope of `model` (eval mode; no graph unless o.record_graph),
/// which restores the model's mode and the grad mode afterwards.
template <real_scalar T, device D, data::dataset Ds, class Fn>
void run_batches(nn::module<T, D>& model, const Ds& ds, const data::normalize& norm, Fn&& fn,
                 const pass_options& o = {}) {
  eval_scope scope(model, {.record_graph = o.record_graph});
  for_each_batch<T, D>(ds, norm, fn, o);
}

/// run_batches over a pass_source (which makes and normalises its own batches).
template <real_scalar T, device D, class Src, class Fn>
  requires pass_source<Src, T>
void run_batches(nn::module<T, D>& model, const Src& src, Fn&& fn, const pass_options& o = {}) {
  eval_scope scope(model, {.record_graph = o.record_graph});
  for_each_batch<T, D>(src, fn, o);
}

/// What collect() returns: the outputs of every image on the host, in dataset order.
template <real_scalar T>
struct collected {
  tensor<T> outputs;            ///< [N, ...] contiguous
  tensor<std::int64_t> labels;  ///< [N]
};

/// Which outputs collect() gathers.
struct collect_options {
  std::string point = "pool";  ///< the model point whose outputs are kept ("pool": f(x) [N, F])
  index_t batch_size = 256;
};

/// The outputs of `model` at `o.point` (eval mode, no graph) for every item of the pass_source
/// `src`, built `workers` loader threads ahead.
template <real_scalar T, device D, class Src>
  requires pass_source<Src, T>
collected<T> collect(nn::staged_model<T, D>& model, const Src& src, const collect_options& o = {}, int workers = 0) {
  const int p = model.point(o.point);
  const auto N = static_cast<index_t>(src.size());
  collected<T> out{{}, tensor<std::int64_t>(shape{N})};
  run_batches(
      model, src,
      [&](const pass_batch<T, D>& b) {
        const auto v = ltl::detail::to_host(model.run(variable<T, D>(b.images), -1, p).value());
        if (!out.outputs.defined()) {
          shape s = v.sizes();
          s[0] = N;
          out.outputs = tensor<T>(s);
        }
        std::copy_n(v.data(), v.numel(), out.outputs.data() + b.first * (v.numel() / b.size()));
        const auto y = ltl::detail::to_host(b.labels);
        std::copy_n(y.data(), b.size(), out.labels.data() + b.first);
      },
      {.batch_size = o.batch_size, .workers = workers});
  return out;
}

/// The outputs of `model` at `o.point` (eval mode, no graph) for every image of `ds`.
template <real_scalar T, device D, data::dataset Ds>
collected<T> collect(nn::staged_model<T, D>& model, const Ds& ds, const data::normalize& norm,
                     const collect_options& o = {}) {
  return collect(model, normalized_dataset<T, Ds>(ds, norm), o);
}

}  // namespace ltl::eval
