#pragma once
/// \file
/// The CUDA caching allocator: `block_pool` (memory_pool.hpp) over the CUDA runtime, one pool
/// for all devices keyed by device ordinal and stream, and the thread's allocation stream.
///
/// Every ltlearn op allocates on the current device for that device's compute stream. Code that
/// issues work on another stream (the copy stream of an upload pipeline) makes that stream the
/// allocation stream with `allocation_stream_guard`, and calls `record_stream(p, s)` for a block
/// it hands from one stream to another, so that the block is reused only after the other
/// stream's work on it is done. `memory_stats(device)` reports in-use, cached and peak bytes.

#include "ltlearn/backends/cuda/context.hpp"
#include "ltlearn/backends/cuda/error.hpp"
#include "ltlearn/backends/cuda/memory_pool.hpp"

#include <cstddef>

namespace ltl::cuda {

/// The CUDA runtime as the block pool's source: cudaMalloc/cudaFree and events.
struct runtime_memory_source {
  using event = cudaEvent_t;

  [[nodiscard]] const char* name() const noexcept { return "cudaMalloc"; }

  void* try_allocate(int device, std::size_t bytes) {
    device_guard g(device);
    void* p = nullptr;
    const cudaError_t st = cudaMalloc(&p, bytes);
    if (st == cudaSuccess) return p;
    (void)cudaGetLastError();
    if (st == cudaErrorMemoryAllocation) return nullptr;
    throw cuda_error(fmt::format("cudaMalloc of {} bytes on device {} failed: {} ({})", bytes, device,
                                 cudaGetErrorString(st), cudaGetErrorName(st)));
  }

  void deallocate(int device, void* p, std::size_t /*bytes*/) noexcept {
    // Errors here come from process teardown or an already failed device: nothing to do then.
    try {
      device_guard g(device);
      if (cudaFree(p) != cudaSuccess) (void)cudaGetLastError();
    } catch (...) {
      (void)cudaGetLastError();
    }
  }

  event record(int device, stream_id s) {
    device_guard g(device);
    cudaEvent_t e = nullptr;
    LTL_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    const cudaError_t st = cudaEventRecord(e, resolve(device, s));
    if (st != cudaSuccess) {
      (void)cudaEventDestroy(e);
      LTL_CUDA_CHECK(st);
    }
    return e;
  }

  bool done(int /*device*/, const event& e) {
    const cudaError_t st = cudaEventQuery(e);
    if (st == cudaSuccess) return true;
    if (st == cudaErrorNotReady) {
      (void)cudaGetLastError();
      return false;
    }
    LTL_CUDA_CHECK(st);
    return false;
  }

  void destroy(int /*device*/, const event& e) noexcept {
    if (cudaEventDestroy(e) != cudaSuccess) (void)cudaGetLastError();
  }

  void synchronize(int device) {
    device_guard g(device);
    LTL_CUDA_CHECK(cudaDeviceSynchronize());
  }

  /// The CUDA stream a pool stream id stands for (null: the device's compute stream).
  static cudaStream_t resolve(int device, stream_id s) {
    return s ? static_cast<cudaStream_t>(const_cast<void*>(s)) : context::get(device).stream();
  }
};

/// The process-wide pool of device memory (never destroyed: storages released during static
/// destruction still find it).
inline block_pool<runtime_memory_source>& device_pool() {
  static auto* pool = new block_pool<runtime_memory_source>();
  return *pool;
}

namespace detail {
inline stream_id& thread_allocation_stream() noexcept {
  thread_local stream_id s = nullptr;
  return s;
}
}  // namespace detail

/// The pool's id of `s` on `device`: null for the device's compute stream.
inline stream_id to_stream_id(int device, cudaStream_t s) {
  return s == context::get(device).stream() ? nullptr : static_cast<stream_id>(s);
}

/// Makes `s` the stream that the calling thread's device allocations are made for, for the
/// guard's lifetime (the compute stream before and after).
class allocation_stream_guard {
 public:
  allocation_stream_guard(int device, cudaStream_t s) : previous_(detail::thread_allocation_stream()) {
    detail::thread_allocation_stream() = to_stream_id(device, s);
  }
  ~allocation_stream_guard() { detail::thread_allocation_stream() = previous_; }
  allocation_stream_guard(const allocation_stream_guard&) = delete;
  allocation_stream_guard& operator=(const allocation_stream_guard&) = delete;

 private:
  stream_id previous_;
};

/// Block `p` of device `device` is also used on stream `s`: its reuse after release waits for
/// the work issued on `s` until then.
inline void record_stream(const void* p, int device, cudaStream_t s) {
  device_pool().record_stream(const_cast<void*>(p), to_stream_id(device, s));
}

/// Throws device_error naming `op` and the operand `what` unless `p` is device memory of the
/// current device (not host memory, not another GPU's).
inline void require_device_memory(const void* p, const char* op, const char* what) {
  int current = 0;
  LTL_CUDA_CHECK(cudaGetDevice(&current));
  cudaPointerAttributes attr{};
  const cudaError_t st = cudaPointerGetAttributes(&attr, p);
  if (st != cudaSuccess) (void)cudaGetLastError();
  const bool device_memory = st == cudaSuccess && (attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged);
  LTL_CHECK(device_memory, device_error, "{}: the {} is not CUDA device memory", op, what);
  LTL_CHECK(attr.device == current, device_error, "{}: the {} is on CUDA device {}, but the current device is {}", op,
            what, attr.device, current);
}

/// In-use, cached and peak bytes of device `device` (peak since the last reset_peak).
[[nodiscard]] inline allocator_stats memory_stats(int device) { return device_pool().stats(device); }

}  // namespace ltl::cuda
