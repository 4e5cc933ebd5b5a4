#pragma once
/// \file
/// ltl::cuda::batch_uploader: uint8 image batches to normalised float device tensors, with the
/// host-to-device copy overlapping the compute stream's work.
///
/// The host copies a batch [B, C, H, W] of bytes into a pinned staging buffer (one slot of a
/// ring), the copy stream moves it into a device byte buffer of the same slot, and a kernel on
/// the compute stream (context::stream()) turns it into floats y = (x/255 − mean_c)/std_c —
/// the operations, in the order and precision, of data::make_batch followed by data::normalize
/// on the host, so the values are the CPU's bit for bit. The compute stream waits for the copy
/// through an event, so everything queued on it before the upload runs while the bytes travel,
/// and everything queued after sees the batch. The output is allocated in compute-stream order
/// like any other tensor, so the caching allocator's reuse rules are unchanged.
///
/// A slot is reused `slots` uploads later; the host first waits for the slot's previous
/// normalisation kernel (which follows its copy), so with two or more slots the host fills
/// batch k+1 while batch k is still travelling.
///
/// The copy stream is the context's (context::copy_stream(): non-blocking, one per device).

#include "ltlearn/backends/cuda/context.hpp"
#include "ltlearn/backends/cuda/device.hpp"
#include "ltlearn/backends/cuda/error.hpp"
#include "ltlearn/core/error.hpp"
#include "ltlearn/core/shape.hpp"
#include "ltlearn/tensor/tensor.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <utility>
#include <vector>

namespace ltl::cuda {

/// Options of batch_uploader. mean/stddev as data::normalize's (per channel, stddev > 0).
struct upload_options {
  std::vector<double> mean;    ///< [C]
  std::vector<double> stddev;  ///< [C]
  int slots = 2;               ///< staging buffers in the ring (≥ 1; 2 double-buffers)
};

namespace detail {

/// Most channels the normalisation kernel takes (its per-channel constants travel by value).
inline constexpr int upload_max_channels = 8;

/// Per-channel constants of the normalisation kernel, already in float as the host uses them.
struct upload_affine {
  float mean[upload_max_channels];
  float stddev[upload_max_channels];
};

/// Checks upload options (value_error naming the field); called by the uploader's constructor.
inline void check_upload_options(const upload_options& o) {
  LTL_CHECK(o.slots >= 1, value_error, "batch_uploader: slots must be at least 1, got {}", o.slots);
  LTL_CHECK(!o.mean.empty() && o.mean.size() == o.stddev.size(), value_error,
            "batch_uploader: {} means and {} standard deviations (one of each per channel)", o.mean.size(),
            o.stddev.size());
  LTL_CHECK(o.mean.size() <= static_cast<std::size_t>(upload_max_channels), value_error,
            "batch_uploader: {} channels; at most {} are supported", o.mean.size(), upload_max_channels);
  for (std::size_t c = 0; c < o.mean.size(); ++c)
    LTL_CHECK(o.stddev[c] > 0 && std::isfinite(o.stddev[c]) && std::isfinite(o.mean[c]), value_error,
              "batch_uploader: channel {} has mean {} and stddev {} (stddev must be positive and finite)", c,
              o.mean[c], o.stddev[c]);
}

/// Checks a batch of `bytes` bytes against shape `s` and the options' channel count;
/// shape_error naming what disagrees.
inline void check_upload_batch(const shape& s, std::size_t bytes, std::size_t channels) {
  LTL_CHECK(s.size() == 4, shape_error, "batch_uploader::upload: batch shape must be [B, C, H, W], got {}", s);
  for (index_t e : s) LTL_CHECK(e >= 0, shape_error, "batch_uploader::upload: negative extent in {}", s);
  LTL_CHECK(s[1] == static_cast<index_t>(channels), shape_error,
            "batch_uploader::upload: batch {} has {} channels, the normalisation {}", s, s[1], channels);
  LTL_CHECK(static_cast<std::size_t>(s.numel()) == bytes, shape_error,
            "batch_uploader::upload: {} bytes for a batch of shape {} ({} pixels)", bytes, s, s.numel());
}

/// Which slot of a ring of `slots` buffers the next upload uses: 0, 1, …, slots − 1, 0, …
class ring_cursor {
 public:
  explicit ring_cursor(int slots) : slots_(slots) {
    LTL_CHECK(slots >= 1, value_error, "ring_cursor: slots must be at least 1, got {}", slots);
  }
  /// The slot of the next upload; advances the ring.
  int next() noexcept {
    const int s = static_cast<int>(count_ % static_cast<std::uint64_t>(slots_));
    ++count_;
    return s;
  }
  /// How many uploads slot `s` has been handed out for so far.
  [[nodiscard]] std::uint64_t uses(int s) const noexcept {
    const auto k = static_cast<std::uint64_t>(s), n = static_cast<std::uint64_t>(slots_);
    return count_ > k ? (count_ - k - 1) / n + 1 : 0;
  }
  [[nodiscard]] int slots() const noexcept { return slots_; }
  /// Uploads issued so far.
  [[nodiscard]] std::uint64_t count() const noexcept { return count_; }

 private:
  int slots_;
  std::uint64_t count_ = 0;
};

/// y[i] = (x[i]/255 − mean_c)/stddev_c for x [B, C, H, W] bytes, c = (i / hw) mod C.
template <class T>
__global__ void normalize_bytes(const std::uint8_t* __restrict__ x, T* __restrict__ y, index_t n,
                                       index_t hw, int channels, upload_affine a) {
  for (index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<index_t>(gridDim.x) * blockDim.x) {
    const int c = static_cast<int>((i / hw) % channels);
    // Two correctly rounded divisions, as on the host (no reciprocal, no contraction possible).
    const T v = static_cast<T>(x[i]) / T(255);
    y[i] = (v - a.mean[c]) / a.stddev[c];
  }
}

}  // namespace detail

/// Uploads uint8 batches through a ring of pinned staging buffers (see the file comment). Uses
/// the device current at construction; not thread-safe (one loader thread per uploader).
class batch_uploader {
 public:
  /// Validates `o` (value_error); touches no GPU until the first upload.
  explicit batch_uploader(upload_options o) : opt_(std::move(o)), cursor_((detail::check_upload_options(opt_), opt_.slots)) {
    for (std::size_t c = 0; c < opt_.mean.size(); ++c) {
      affine_.mean[c] = static_cast<float>(opt_.mean[c]);
      affine_.stddev[c] = static_cast<float>(opt_.stddev[c]);
    }
    slots_.resize(static_cast<std::size_t>(opt_.slots));
  }
  ~batch_uploader() {
    for (auto& s : slots_) release(s);
  }
  batch_uploader(const batch_uploader&) = delete;
  batch_uploader& operator=(const batch_uploader&) = delete;

  /// The batch `pixels` ([B, C, H, W] bytes, shape `s`) as normalised floats on the current
  /// device. Returns once the bytes are in pinned memory; the copy and the kernel are queued.
  tensor<float, device> upload(std::span<const std::uint8_t> pixels, const shape& s) {
    detail::check_upload_batch(s, pixels.size(), opt_.mean.size());
    tensor<float, device> out(s);
    if (pixels.empty()) return out;
    auto& ctx = context::current();
    const int k = cursor_.next();
    slot& sl = slots_[static_cast<std::size_t>(k)];
    // The slot's previous kernel (after its copy) must be done before its buffers are touched.
    if (sl.done) LTL_CUDA_CHECK(cudaEventSynchronize(sl.done));
    reserve(sl, pixels.size());
    std::memcpy(sl.pinned, pixels.data(), pixels.size());
    LTL_CUDA_CHECK(cudaMemcpyAsync(sl.bytes, sl.pinned, pixels.size(), cudaMemcpyHostToDevice, ctx.copy_stream()));
    LTL_CUDA_CHECK(cudaEventRecord(sl.copied, ctx.copy_stream()));
    LTL_CUDA_CHECK(cudaStreamWaitEvent(ctx.stream(), sl.copied, 0));
    const index_t n = s.numel(), hw = s[2] * s[3];
    const int threads = 256;
    const auto blocks = static_cast<unsigned>(std::min<index_t>((n + threads - 1) / threads, 65535));
    detail::normalize_bytes<float><<<blocks, threads, 0, ctx.stream()>>>(sl.bytes, out.data(), n, hw,
                                                                  static_cast<int>(opt_.mean.size()), affine_);
    ltl::cuda::detail::check_launch("normalize_bytes");
    LTL_CUDA_CHECK(cudaEventRecord(sl.done, ctx.stream()));
    return out;
  }

  /// Uploads issued so far.
  [[nodiscard]] std::uint64_t uploads() const noexcept { return cursor_.count(); }
  [[nodiscard]] const upload_options& options() const noexcept { return opt_; }

 private:
  struct slot {
    std::uint8_t* pinned = nullptr;  ///< cudaHostAlloc'd staging buffer
    std::uint8_t* bytes = nullptr;   ///< device copy of it, read by the kernel
    std::size_t capacity = 0;
    cudaEvent_t copied = nullptr, done = nullptr;
  };

  /// Grows the slot's buffers to `n` bytes (its previous work has finished: see upload).
  static void reserve(slot& s, std::size_t n) {
    if (!s.copied) {
      LTL_CUDA_CHECK(cudaEventCreateWithFlags(&s.copied, cudaEventDisableTiming));
      LTL_CUDA_CHECK(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming));
    }
    if (s.capacity >= n) return;
    free_buffers(s);
    LTL_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&s.pinned), n, cudaHostAllocDefault));
    LTL_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&s.bytes), n));
    s.capacity = n;
  }
  static void free_buffers(slot& s) noexcept {
    if (s.pinned && cudaFreeHost(s.pinned) != cudaSuccess) (void)cudaGetLastError();
    if (s.bytes && cudaFree(s.bytes) != cudaSuccess) (void)cudaGetLastError();
    s.pinned = nullptr;
    s.bytes = nullptr;
    s.capacity = 0;
  }
  static void release(slot& s) noexcept {
    if (s.done && cudaEventSynchronize(s.done) != cudaSuccess) (void)cudaGetLastError();
    free_buffers(s);
    for (cudaEvent_t e : {s.copied, s.done})
      if (e && cudaEventDestroy(e) != cudaSuccess) (void)cudaGetLastError();
  }

  upload_options opt_;
  detail::ring_cursor cursor_;
  detail::upload_affine affine_{};
  std::vector<slot> slots_;
};

}  // namespace ltl::cuda
