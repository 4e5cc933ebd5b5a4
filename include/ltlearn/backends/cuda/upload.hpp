#pragma once
/// \file
/// Uploads of host batches that overlap the compute stream's work, through one staging ring
/// (detail::staging_ring: pinned host buffers, a device buffer per slot, the copy stream):
///   - cuda::batch_uploader: uint8 image batches to normalised float device tensors — what
///     host_upload<cuda::device>::normalized uses (the normalizes_bytes concept), so that
///     loaders over in-memory data sets send bytes (data::image_delivery::bytes);
///   - cuda::value_uploader: any host tensor (float images already transformed on the host,
///     int64 labels) to a device tensor with the same bytes — what the trainer and the batched
///     pass use, through ltl::host_upload<cuda::device> (contract/upload.hpp), so that a run
///     is bit for bit the run that copied with tensor::to<cuda::device>().
///
/// A value upload stages the bytes like a byte batch, and a device-to-device copy on the
/// compute stream (after the copy's event) takes the place of the normalisation kernel.
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

#include "ltlearn/backends/contract/upload.hpp"
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
#include <map>
#include <memory>
#include <span>
#include <tuple>
#include <type_traits>
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

/// The CUDA calls of a staged upload, one member per step, so that staging_ring's order of
/// steps can be checked on the host with a fake (tests/backends/cuda/upload_staging.cu). Streams and
/// events are those of the current device's context.
struct runtime_upload_ops {
  using event = cudaEvent_t;
  static void* host_alloc(std::size_t n) {
    void* p = nullptr;
    LTL_CUDA_CHECK(cudaHostAlloc(&p, n, cudaHostAllocDefault));
    return p;
  }
  static void host_free(void* p) noexcept {
    if (p && cudaFreeHost(p) != cudaSuccess) (void)cudaGetLastError();
  }
  static void* device_alloc(std::size_t n) {
    void* p = nullptr;
    LTL_CUDA_CHECK(cudaMalloc(&p, n));
    return p;
  }
  static void device_free(void* p) noexcept {
    if (p && cudaFree(p) != cudaSuccess) (void)cudaGetLastError();
  }
  static event make_event() {
    cudaEvent_t e = nullptr;
    LTL_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    return e;
  }
  static void destroy_event(event e) noexcept {
    if (e && cudaEventDestroy(e) != cudaSuccess) (void)cudaGetLastError();
  }
  /// The host waits until the work before `e` is done.
  static void host_waits(event e) { LTL_CUDA_CHECK(cudaEventSynchronize(e)); }
  /// Pinned `src` to device `dst`, on the copy stream.
  static void copy_to_device(void* dst, const void* src, std::size_t n) {
    LTL_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, context::current().copy_stream()));
  }
  static void record_on_copy_stream(event e) { LTL_CUDA_CHECK(cudaEventRecord(e, context::current().copy_stream())); }
  /// Work queued on the compute stream from now on starts after `e`.
  static void compute_waits(event e) { LTL_CUDA_CHECK(cudaStreamWaitEvent(context::current().stream(), e, 0)); }
  static void record_on_compute_stream(event e) { LTL_CUDA_CHECK(cudaEventRecord(e, context::current().stream())); }
  /// The host waits for every copy queued on the copy stream; errors are dropped (the caller is
  /// already unwinding from one).
  static void drain_copies() noexcept {
    if (cudaStreamSynchronize(context::current().copy_stream()) != cudaSuccess) (void)cudaGetLastError();
  }
};

/// A ring of staging slots (pinned host buffer, device buffer, two events) over the upload
/// steps of `Ops` (runtime_upload_ops, or a test's fake). stage(src, n, consume):
///   1. the host waits for the slot's previous consumer (so its buffers are free again),
///   2. grows the slot's buffers to n bytes if needed, copies src into the pinned buffer,
///   3. queues the copy into the slot's device buffer on the copy stream and records `copied`,
///   4. makes the compute stream wait for `copied`, calls consume(device buffer), which queues
///      the work that reads it on the compute stream, and records `done` after it.
/// So everything queued on the compute stream before stage() runs while the bytes travel, and
/// a slot is touched again only `slots` uploads later, after its consumer has run. If recording
/// `copied` or the compute stream's wait fails after the copy was queued, the host drains the
/// copy stream before the error propagates, so no later use of the slot can overwrite or free a
/// buffer the copy still reads.
template <class Ops>
class staging_ring {
 public:
  explicit staging_ring(int slots, Ops ops = {}) : cursor_(slots), ops_(std::move(ops)) {
    slots_.resize(static_cast<std::size_t>(slots));
  }
  ~staging_ring() {
    for (auto& s : slots_) release(s);
  }
  staging_ring(const staging_ring&) = delete;
  staging_ring& operator=(const staging_ring&) = delete;

  /// Stages bytes [src, src + n) (n > 0) and hands their device copy to `consume` (above).
  template <class Consume>
  void stage(const void* src, std::size_t n, Consume&& consume) {
    slot& s = slots_[static_cast<std::size_t>(cursor_.next())];
    if (s.used) ops_.host_waits(s.done);
    reserve(s, n);
    std::memcpy(s.pinned, src, n);
    ops_.copy_to_device(s.staged, s.pinned, n);
    try {
      ops_.record_on_copy_stream(s.copied);
      ops_.compute_waits(s.copied);
    } catch (...) {
      ops_.drain_copies();  // `done` does not cover this copy: wait for it here
      throw;
    }
    s.used = true;
    try {
      consume(static_cast<const void*>(s.staged));
    } catch (...) {
      ops_.record_on_compute_stream(s.done);  // the next use still waits for the copy
      throw;
    }
    ops_.record_on_compute_stream(s.done);
  }

  /// Uploads staged so far.
  [[nodiscard]] std::uint64_t count() const noexcept { return cursor_.count(); }
  /// Bytes slot `k` can hold without growing.
  [[nodiscard]] std::size_t capacity(int k) const { return slots_.at(static_cast<std::size_t>(k)).capacity; }
  [[nodiscard]] Ops& ops() noexcept { return ops_; }

 private:
  struct slot {
    void* pinned = nullptr;
    void* staged = nullptr;
    std::size_t capacity = 0;
    typename Ops::event copied{}, done{};
    bool has_events = false, used = false;
  };

  void reserve(slot& s, std::size_t n) {
    if (!s.has_events) {
      s.copied = ops_.make_event();
      s.done = ops_.make_event();
      s.has_events = true;
    }
    if (s.capacity >= n) return;
    free_buffers(s);
    s.pinned = ops_.host_alloc(n);
    s.staged = ops_.device_alloc(n);
    s.capacity = n;
  }
  void free_buffers(slot& s) noexcept {
    ops_.host_free(s.pinned);
    ops_.device_free(s.staged);
    s.pinned = s.staged = nullptr;
    s.capacity = 0;
  }
  void release(slot& s) noexcept {
    if (s.used) {
      try {
        ops_.host_waits(s.done);
      } catch (...) {  // a failed device: nothing left to wait for
      }
    }
    free_buffers(s);
    if (s.has_events) {
      ops_.destroy_event(s.copied);
      ops_.destroy_event(s.done);
    }
  }

  ring_cursor cursor_;
  Ops ops_;
  std::vector<slot> slots_;
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

/// The affine constants of options `o` (already validated), in float as the host uses them.
inline upload_affine make_affine(const upload_options& o) {
  upload_affine a{};
  for (std::size_t c = 0; c < o.mean.size(); ++c) {
    a.mean[c] = static_cast<float>(o.mean[c]);
    a.stddev[c] = static_cast<float>(o.stddev[c]);
  }
  return a;
}

/// Queues normalize_bytes on the compute stream: device bytes `x` of shape `s` into `out`.
inline void launch_normalize_bytes(const std::uint8_t* x, tensor<float, device>& out, const shape& s,
                                   const upload_affine& a, int channels) {
  const index_t n = s.numel(), hw = s[2] * s[3];
  if (n == 0) return;
  const int threads = 256;
  const auto blocks = static_cast<unsigned>(std::min<index_t>((n + threads - 1) / threads, 65535));
  normalize_bytes<float><<<blocks, threads, 0, context::current().stream()>>>(x, out.data(), n, hw, channels, a);
  ltl::cuda::detail::check_launch("normalize_bytes");
}

/// The device an uploader's staging buffers and events were made on: the current one at the
/// first check(); later checks throw device_error naming `op` if another device is current
/// (the ring's events and buffers cannot serve another device's streams).
class device_binding {
 public:
  void check(const char* op) {
    const int now = context::current().device_index();
    if (device_ < 0) device_ = now;
    LTL_CHECK(now == device_, device_error, "{}: this uploader belongs to CUDA device {}, but device {} is current",
              op, device_, now);
  }

 private:
  int device_ = -1;
};

}  // namespace detail

/// Uploads uint8 batches through a ring of pinned staging buffers (see the file comment). Not
/// thread-safe (one loader thread per uploader). Its buffers and events belong to the device
/// current at its first upload; uploading while another device is current is a device_error.
class batch_uploader {
 public:
  /// Validates `o` (value_error); touches no GPU until the first upload.
  explicit batch_uploader(upload_options o)
      : opt_(std::move(o)),
        ring_((detail::check_upload_options(opt_), opt_.slots)),
        affine_(detail::make_affine(opt_)) {}

  /// The batch `pixels` ([B, C, H, W] bytes, shape `s`) as normalised floats on the current
  /// device. Returns once the bytes are in pinned memory; the copy and the kernel are queued.
  tensor<float, device> upload(std::span<const std::uint8_t> pixels, const shape& s) {
    detail::check_upload_batch(s, pixels.size(), opt_.mean.size());
    tensor<float, device> out(s);
    if (pixels.empty()) return out;
    owner_.check("batch_uploader::upload");
    ring_.stage(pixels.data(), pixels.size(), [&](const void* staged) {
      detail::launch_normalize_bytes(static_cast<const std::uint8_t*>(staged), out, s, affine_,
                                     static_cast<int>(opt_.mean.size()));
    });
    return out;
  }

  /// As upload(), for bytes already on the device (no staging): the normalisation kernel alone,
  /// queued on the compute stream.
  tensor<float, device> normalize_on_device(const tensor<std::uint8_t, device>& pixels) const {
    LTL_CHECK(pixels.defined() && pixels.is_contiguous(), value_error,
              "batch_uploader::normalize_on_device: the bytes must be a defined contiguous tensor");
    detail::check_upload_batch(pixels.sizes(), static_cast<std::size_t>(pixels.numel()), opt_.mean.size());
    tensor<float, device> out(pixels.sizes());
    if (pixels.numel() == 0) return out;
    require_device_memory(pixels.data(), "batch_uploader::normalize_on_device", "bytes");
    detail::launch_normalize_bytes(pixels.data(), out, pixels.sizes(), affine_, static_cast<int>(opt_.mean.size()));
    return out;
  }

  /// Uploads issued so far.
  [[nodiscard]] std::uint64_t uploads() const noexcept { return ring_.count(); }
  [[nodiscard]] const upload_options& options() const noexcept { return opt_; }

 private:
  upload_options opt_;
  detail::staging_ring<detail::runtime_upload_ops> ring_;
  detail::upload_affine affine_{};
  detail::device_binding owner_;
};

/// Uploads host tensors of any element type unchanged (the same bytes) through a staging ring
/// and the copy stream; the result is ordered on the compute stream like any op's output. Not
/// thread-safe; bound to the device current at its first upload, as batch_uploader.
class value_uploader {
 public:
  /// A ring of `slots` (≥ 1) staging buffers; touches no GPU until the first upload.
  explicit value_uploader(int slots = 2) : ring_(slots) {}

  /// `host` as a contiguous tensor on the current device, bit for bit. Returns once the values
  /// are in pinned memory; `host` may then change or go.
  template <class T>
  tensor<T, device> upload(const tensor<T, host_device>& host) {
    LTL_CHECK(host.defined(), value_error, "value_uploader::upload: the host tensor is undefined");
    const tensor<T, host_device> hc = host.contiguous();
    tensor<T, device> out(hc.sizes());
    const std::size_t bytes = hc.bytes();
    if (bytes == 0) return out;
    owner_.check("value_uploader::upload");
    ring_.stage(hc.data(), bytes, [&](const void* staged) {
      LTL_CUDA_CHECK(cudaMemcpyAsync(out.data(), staged, bytes, cudaMemcpyDeviceToDevice, context::current().stream()));
    });
    return out;
  }

  /// Uploads issued so far.
  [[nodiscard]] std::uint64_t uploads() const noexcept { return ring_.count(); }

 private:
  detail::staging_ring<detail::runtime_upload_ops> ring_;
  detail::device_binding owner_;
};

namespace detail {
/// The calling thread's value_uploader for the current device and element size class `key`
/// (images and labels get rings of their own, so that a step's label upload never waits for
/// the previous step's images). Deliberately never destroyed (freeing pinned memory from exit
/// handlers would race the CUDA runtime's teardown): each thread that uploads keeps its rings,
/// two pinned and two device buffers of its largest batch each, until the process ends, so
/// uploads belong on long-lived threads (the trainer's and the batched pass's calling threads are).
inline value_uploader& thread_value_uploader(int key) {
  thread_local auto* rings = new std::map<std::pair<int, int>, std::unique_ptr<value_uploader>>();
  auto& u = (*rings)[{context::current().device_index(), key}];
  if (!u) u = std::make_unique<value_uploader>(2);
  return *u;
}

/// The calling thread's batch_uploader for the current device and normalisation (mean, stddev);
/// never destroyed, as thread_value_uploader. A process uses a handful of normalisations (one
/// per data set), so the map stays small.
inline batch_uploader& thread_batch_uploader(std::span<const double> mean, std::span<const double> stddev) {
  using key = std::tuple<int, std::vector<double>, std::vector<double>>;
  thread_local auto* rings = new std::map<key, std::unique_ptr<batch_uploader>>();
  upload_options o{.mean = std::vector<double>(mean.begin(), mean.end()),
                   .stddev = std::vector<double>(stddev.begin(), stddev.end())};
  // Validated before the lookup: a NaN in a key would make it compare equal to every other key
  // (vector's <=> is unordered) and hand one data set's uploader to another.
  check_upload_options(o);
  key k{context::current().device_index(), o.mean, o.stddev};
  auto it = rings->find(k);
  if (it == rings->end()) it = rings->emplace(std::move(k), std::make_unique<batch_uploader>(std::move(o))).first;
  return *it->second;
}
}  // namespace detail

}  // namespace ltl::cuda

namespace ltl {

/// Host batches reach a CUDA device through the calling thread's staging rings (one per
/// device and element type), so that the copy overlaps the work already queued; with
/// settings::staged_uploads off, through tensor::to.
template <>
struct host_upload<cuda::device> {
  template <class T>
  static tensor<T, cuda::device> to_device(const tensor<T, host_device>& host) {
    if (!cuda::context::current().settings().staged_uploads) return host.template to<cuda::device>();
    return cuda::detail::thread_value_uploader(static_cast<int>(sizeof(T)) * 2 + (std::is_integral_v<T> ? 1 : 0))
        .upload(host);
  }

  /// Image bytes [B, C, H, W] as normalised floats on the current device (normalizes_bytes):
  /// through the thread's staging ring and the normalisation kernel; with
  /// settings::staged_uploads off, a plain copy of the bytes and the same kernel. value_error /
  /// shape_error for bad statistics or a batch that disagrees with them.
  static tensor<float, cuda::device> normalized(const tensor<std::uint8_t, host_device>& pixels,
                                                std::span<const double> mean, std::span<const double> stddev) {
    LTL_CHECK(pixels.defined(), value_error, "host_upload<cuda>::normalized: the bytes are undefined");
    auto& up = cuda::detail::thread_batch_uploader(mean, stddev);
    const tensor<std::uint8_t, host_device> px = pixels.contiguous();
    if (!cuda::context::current().settings().staged_uploads) {
      cuda::detail::check_upload_batch(px.sizes(), static_cast<std::size_t>(px.numel()), mean.size());
      return up.normalize_on_device(px.template to<cuda::device>());
    }
    return up.upload(std::span<const std::uint8_t>(px.data(), static_cast<std::size_t>(px.numel())), px.sizes());
  }
};

}  // namespace ltl
