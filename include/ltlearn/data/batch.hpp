#pragma once
/// \file
/// Building a float batch [B, C, H, W] and its labels [B] from dataset indices.

#include "ltlearn/core/concepts.hpp"
#include "ltlearn/core/config.hpp"
#include "ltlearn/core/error.hpp"
#include "ltlearn/core/shape.hpp"
#include "ltlearn/data/dataset.hpp"
#include "ltlearn/data/transforms.hpp"
#include "ltlearn/tensor/tensor.hpp"

#include <cstdint>
#include <span>

namespace ltl::data {

/// Images [B, C, H, W] in T and int64 labels [B].
template <real_scalar T = float>
struct batch {
  tensor<T> images;
  tensor<std::int64_t> labels;
};

/// Converts images `indices` of `ds` to a batch with pixels scaled to [0, 1] (uint8 / 255).
/// Indices and labels are validated up front (value_error) so the parallel copy cannot throw.
template <real_scalar T = float, dataset Ds>
batch<T> make_batch(const Ds& ds, std::span<const index_t> indices) {
  const shape im = ds.image_shape();
  LTL_CHECK(im.size() == 3, shape_error, "make_batch: image shape must be [C, H, W], got {}", im);
  const auto B = static_cast<index_t>(indices.size());
  const index_t k = im.numel(), n = static_cast<index_t>(ds.size()), classes = static_cast<index_t>(ds.num_classes());
  batch<T> out{tensor<T>(shape{B, im[0], im[1], im[2]}), tensor<std::int64_t>(shape{B})};
  std::int64_t* y = out.labels.data();
  for (index_t b = 0; b < B; ++b) {
    const index_t i = indices[static_cast<std::size_t>(b)];
    LTL_CHECK(i >= 0 && i < n, value_error, "make_batch: index {} (batch position {}) is outside [0, {})", i, b, n);
    LTL_CHECK(static_cast<index_t>(ds.image(i).size()) == k, shape_error,
              "make_batch: image {} has {} bytes, expected {} for {}", i, ds.image(i).size(), k, im);
    y[b] = static_cast<std::int64_t>(ds.label(i));
    LTL_CHECK(y[b] >= 0 && y[b] < classes, value_error, "make_batch: label {} of image {} is outside [0, {})", y[b], i,
              classes);
  }
  T* x = out.images.data();
  LTL_OMP(omp parallel for schedule(static))
  for (index_t b = 0; b < B; ++b) {
    const auto px = ds.image(indices[static_cast<std::size_t>(b)]);
    T* dst = x + b * k;
    for (index_t j = 0; j < k; ++j) dst[j] = static_cast<T>(px[static_cast<std::size_t>(j)]) / T(255);
  }
  return out;
}

/// As make_batch(ds, indices), then normalised per channel by `norm` (evaluation batches).
template <real_scalar T = float, dataset Ds>
batch<T> make_batch(const Ds& ds, std::span<const index_t> indices, const normalize& norm) {
  batch<T> out = make_batch<T>(ds, indices);
  norm(out.images);
  return out;
}

}  // namespace ltl::data
