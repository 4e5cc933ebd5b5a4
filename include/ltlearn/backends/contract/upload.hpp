#pragma once
/// \file
/// How a batch built on the host reaches the compute device: the one customization point the
/// training loop and the batched pass call for every batch they move (images and labels).
///
/// The primary template is `tensor::to<D>()`: a synchronous copy (or, on the CPU, the tensor
/// itself), so devices without a specialisation — the CPU, the test devices — behave exactly as
/// a plain `.to<D>()`. A backend whose copies can overlap compute specialises `host_upload<D>`
/// (the CUDA backend: a pinned staging ring and a copy stream, backends/cuda/upload.hpp); its
/// result must hold the same values bit for bit, so that a run is the same with or without it.

#include "ltlearn/core/device.hpp"
#include "ltlearn/tensor/tensor.hpp"

#include <concepts>
#include <cstdint>
#include <span>

namespace ltl {

/// Moves host batches to device D (see the file comment). Specialisations provide the same
/// static member template `to_device`.
template <class D>
struct host_upload {
  /// `host` as a contiguous tensor on D with the same values; `host` may change or go as soon
  /// as this returns.
  template <class T>
  static tensor<T, D> to_device(const tensor<T, host_device>& host) {
    return host.template to<D>();
  }
};

/// A device whose uploads can also turn image bytes into the model's float input where they
/// arrive: host_upload<D> has
///   static tensor<float, D> normalized(const tensor<std::uint8_t, host_device>& pixels,
///                                      std::span<const double> mean, std::span<const double> stddev);
/// which returns y = (x/255 − mean_c)/stddev_c for x [B, C, H, W] — computed in float, two
/// correctly rounded divisions, exactly as the host's data::to_floats — and, like to_device,
/// lets `pixels` change or go as soon as it returns. The CUDA backend's does the arithmetic in
/// a kernel after the copy, so a quarter of the bytes cross the bus; loaders over in-memory
/// datasets then hand over bytes (data::image_delivery::bytes, eval::upload_images).
template <class D>
concept normalizes_bytes =
    requires(const tensor<std::uint8_t, host_device>& px, std::span<const double> m) {
      { host_upload<D>::normalized(px, m, m) } -> std::same_as<tensor<float, D>>;
    };

/// `host` on device D through host_upload<D>: `upload_batch<D>(batch.images)`.
template <class D, class T>
tensor<T, D> upload_batch(const tensor<T, host_device>& host) {
  return host_upload<D>::to_device(host);
}

}  // namespace ltl
