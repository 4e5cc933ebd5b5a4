#pragma once
/// \file
/// The one pass of a model over a dataset in batches, as evaluation, feature extraction, the
/// per-class analysis and FSA's feature bank all need it: images [B, C, H, W] scaled to [0, 1]
/// and normalised (never augmented), in dataset order, built on the host and moved to the
/// model's device D.
///   - for_each_batch(ds, norm, fn): the batches alone (fn(pass_batch) per batch);
///   - run_batches(model, ds, norm, fn): the same inside an eval_scope of the model;
///   - collect(model, ds, norm, {.point = …}): the model's outputs at one point for every image,
///     stacked into a host tensor [N, ...] with the labels [N].

#include "ltlearn/backends/contract/upload.hpp"
#include "ltlearn/data/batch.hpp"
#include "ltlearn/data/dataset.hpp"
#include "ltlearn/data/transforms.hpp"
#include "ltlearn/detail/host.hpp"
#include "ltlearn/eval/scope.hpp"
#include "ltlearn/nn/staged_model.hpp"

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <span>
#include <string>
#include <vector>

namespace ltl::eval {

/// Options of a pass over a dataset.
struct pass_options {
  index_t batch_size = 256;
  bool record_graph = false;  ///< run_batches: record the autograd graph (gradient analysis)
};

/// One batch of a pass: images [B, C, H, W] and labels [B] on device D; `first` is the dataset
/// index of its first image (the batch holds images first … first + B − 1).
template <real_scalar T, device D>
struct pass_batch {
  index_t first = 0;
  tensor<T, D> images;
  tensor<std::int64_t, D> labels;
  [[nodiscard]] index_t size() const { return labels.numel(); }
};

/// Calls `fn(const pass_batch<T, D>&)` for consecutive batches of `ds` in order, normalised by
/// `norm`. Grad mode and module modes are the caller's (see run_batches).
template <real_scalar T, device D = cpu::device, data::dataset Ds, class Fn>
void for_each_batch(const Ds& ds, const data::normalize& norm, Fn&& fn, const pass_options& o = {}) {
  const auto N = static_cast<index_t>(ds.size());
  LTL_CHECK(N > 0 && o.batch_size > 0, value_error, "batched pass: {} images, batch size {}", N, o.batch_size);
  std::vector<index_t> idx;
  for (index_t b0 = 0; b0 < N; b0 += o.batch_size) {
    const index_t b1 = std::min(N, b0 + o.batch_size);
    idx.resize(static_cast<std::size_t>(b1 - b0));
    std::iota(idx.begin(), idx.end(), b0);
    auto bt = data::make_batch<T>(ds, std::span<const index_t>(idx), norm);
    const pass_batch<T, D> pb{b0, upload_batch<D>(bt.images), upload_batch<D>(bt.labels)};
    fn(pb);
  }
}

/// for_each_batch inside an eval_scope of `model` (eval mode; no graph unless o.record_graph),
/// which restores the model's mode and the grad mode afterwards.
template <real_scalar T, device D, data::dataset Ds, class Fn>
void run_batches(nn::module<T, D>& model, const Ds& ds, const data::normalize& norm, Fn&& fn,
                 const pass_options& o = {}) {
  eval_scope scope(model, {.record_graph = o.record_graph});
  for_each_batch<T, D>(ds, norm, fn, o);
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

/// The outputs of `model` at `o.point` (eval mode, no graph) for every image of `ds`.
template <real_scalar T, device D, data::dataset Ds>
collected<T> collect(nn::staged_model<T, D>& model, const Ds& ds, const data::normalize& norm,
                     const collect_options& o = {}) {
  const int p = model.point(o.point);
  const auto N = static_cast<index_t>(ds.size());
  collected<T> out{{}, tensor<std::int64_t>(shape{N})};
  run_batches(
      model, ds, norm,
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
      {.batch_size = o.batch_size});
  return out;
}

}  // namespace ltl::eval
