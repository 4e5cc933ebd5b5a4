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

/// `host` on device D through host_upload<D>: `upload_batch<D>(batch.images)`.
template <class D, class T>
tensor<T, D> upload_batch(const tensor<T, host_device>& host) {
  return host_upload<D>::to_device(host);
}

}  // namespace ltl
