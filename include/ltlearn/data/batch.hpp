#pragma once
/// \file
/// Building a batch [B, C, H, W] and its labels [B] from dataset indices: images as floats scaled
/// to [0, 1] (make_batch), or as the dataset's bytes whose scaling and normalisation wait for
/// the upload to the model's device (make_byte_batch; see byte_images).

#include "ltlearn/core/concepts.hpp"
#include "ltlearn/core/config.hpp"
#include "ltlearn/core/error.hpp"
#include "ltlearn/core/shape.hpp"
#include "ltlearn/data/dataset.hpp"
#include "ltlearn/data/transforms.hpp"
#include "ltlearn/tensor/tensor.hpp"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <span>
#include <utility>

namespace ltl::data {

/// A batch's images still as the dataset's bytes [B, C, H, W], with the normalisation that turns
/// them into the model's input: y = (x/255 − mean_c)/stddev_c, computed in float as to_floats
/// does. The upload to the model's device applies it (eval::upload_images): on a GPU, a kernel
/// after the copy (host_upload<D>::normalized), so a quarter of the bytes cross the bus and the
/// host does no float work; elsewhere to_floats on the host. Either way the values are the
/// float path's (make_batch, then the same normalisation) bit for bit.
struct byte_images {
  tensor<std::uint8_t> pixels;  ///< [B, C, H, W]
  normalize norm;               ///< one mean and standard deviation per channel
};

/// Images [B, C, H, W] in T and int64 labels [B]. A loader asked for bytes
/// (image_delivery::bytes) leaves `images` undefined and fills `bytes` instead.
template <real_scalar T = float>
struct batch {
  tensor<T> images;
  tensor<std::int64_t> labels;
  std::optional<byte_images> bytes{};
};

/// How a loader over an in-memory dataset hands over its images (data::loader).
enum class image_delivery {
  floats,  ///< scaled to [0, 1] and normalised on the host (batch::images)
  bytes,   ///< augmented as bytes; scaled and normalised at the upload (batch::bytes)
};

namespace detail {
/// Validates `indices` of `ds` (value_error / shape_error naming the index) and returns the
/// empty batch [B, C, H, W] of element type E with the labels filled in.
template <tensor_element E, dataset Ds>
std::pair<tensor<E>, tensor<std::int64_t>> checked_batch(const Ds& ds, std::span<const index_t> indices) {
  const shape im = ds.image_shape();
  LTL_CHECK(im.size() == 3, shape_error, "make_batch: image shape must be [C, H, W], got {}", im);
  const auto B = static_cast<index_t>(indices.size());
  const index_t k = im.numel(), n = static_cast<index_t>(ds.size()), classes = static_cast<index_t>(ds.num_classes());
  std::pair<tensor<E>, tensor<std::int64_t>> out{tensor<E>(shape{B, im[0], im[1], im[2]}),
                                                 tensor<std::int64_t>(shape{B})};
  std::int64_t* y = out.second.data();
  for (index_t b = 0; b < B; ++b) {
    const index_t i = indices[static_cast<std::size_t>(b)];
    LTL_CHECK(i >= 0 && i < n, value_error, "make_batch: index {} (batch position {}) is outside [0, {})", i, b, n);
    LTL_CHECK(static_cast<index_t>(ds.image(i).size()) == k, shape_error,
              "make_batch: image {} has {} bytes, expected {} for {}", i, ds.image(i).size(), k, im);
    y[b] = static_cast<std::int64_t>(ds.label(i));
    LTL_CHECK(y[b] >= 0 && y[b] < classes, value_error, "make_batch: label {} of image {} is outside [0, {})", y[b], i,
              classes);
  }
  return out;
}
}  // namespace detail

/// Converts images `indices` of `ds` to a batch with pixels scaled to [0, 1] (uint8 / 255).
/// Indices and labels are validated up front (value_error) so the parallel copy cannot throw.
template <real_scalar T = float, dataset Ds>
batch<T> make_batch(const Ds& ds, std::span<const index_t> indices) {
  auto [images, labels] = detail::checked_batch<T>(ds, indices);
  const index_t B = images.size(0), k = images.numel() / std::max<index_t>(B, 1);
  T* x = images.data();
  LTL_OMP(omp parallel for schedule(static))
  for (index_t b = 0; b < B; ++b) {
    const auto px = ds.image(indices[static_cast<std::size_t>(b)]);
    T* dst = x + b * k;
    for (index_t j = 0; j < k; ++j) dst[j] = static_cast<T>(px[static_cast<std::size_t>(j)]) / T(255);
  }
  return {std::move(images), std::move(labels)};
}

/// The images `indices` of `ds` as their bytes, to be normalised by `norm` at the upload
/// (batch::bytes; `images` stays undefined). Validated as make_batch.
template <real_scalar T = float, dataset Ds>
batch<T> make_byte_batch(const Ds& ds, std::span<const index_t> indices, normalize norm) {
  auto [pixels, labels] = detail::checked_batch<std::uint8_t>(ds, indices);
  const index_t B = pixels.size(0), k = pixels.numel() / std::max<index_t>(B, 1);
  std::uint8_t* x = pixels.data();
  for (index_t b = 0; b < B; ++b) std::copy_n(ds.image(indices[static_cast<std::size_t>(b)]).data(), k, x + b * k);
  return {tensor<T>{}, std::move(labels), byte_images{std::move(pixels), std::move(norm)}};
}

/// The float images of pending bytes on the host: x/255, then `b.norm` — the operations of
/// make_batch followed by normalize, so the result is theirs bit for bit.
template <real_scalar T = float>
tensor<T> to_floats(const byte_images& b) {
  LTL_CHECK(b.pixels.defined() && b.pixels.dim() == 4, shape_error,
            "to_floats: expected bytes [B, C, H, W], got {}", b.pixels.defined() ? b.pixels.sizes() : shape{});
  const tensor<std::uint8_t> px = b.pixels.contiguous();
  tensor<T> x(px.sizes());
  const std::uint8_t* src = px.data();
  T* dst = x.data();
  const index_t n = px.numel();
  LTL_OMP(omp parallel for schedule(static))
  for (index_t j = 0; j < n; ++j) dst[j] = static_cast<T>(src[j]) / T(255);
  b.norm(x);
  return x;
}

/// The batch's images as floats on the host: `images`, or the pending bytes through to_floats.
template <real_scalar T>
tensor<T> host_images(const batch<T>& b) {
  return b.bytes ? to_floats<T>(*b.bytes) : b.images;
}

/// As make_batch(ds, indices), then normalised per channel by `norm` (evaluation batches).
template <real_scalar T = float, dataset Ds>
batch<T> make_batch(const Ds& ds, std::span<const index_t> indices, const normalize& norm) {
  batch<T> out = make_batch<T>(ds, indices);
  norm(out.images);
  return out;
}

}  // namespace ltl::data
