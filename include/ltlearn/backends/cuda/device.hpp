#pragma once
/// \file
/// ltl::cuda::device: the device tag of CUDA global memory, and host <-> device transfers.
///
/// `tensor<float, cuda::device>` lives on the calling thread's current CUDA device. Memory
/// comes from `caching_allocator<cuda::device>`, specialised here to forward to the stream-aware
/// pool of memory.hpp (keyed by device ordinal and stream; out of memory frees the cache,
/// retries once, then throws out_of_memory_error with requested/in-use/cached/peak bytes).
/// Copies and fills are issued on the device's compute stream (see context.hpp), so they are
/// ordered with every kernel ltlearn launches. Transfers to or from the host synchronise that
/// stream: once `t.to<cpu::device>()` returns, the host data is final.

#include "ltlearn/backends/contract/upload.hpp"
#include "ltlearn/backends/cuda/context.hpp"
#include "ltlearn/backends/cuda/error.hpp"
#include "ltlearn/backends/cuda/memory.hpp"
#include "ltlearn/core/device.hpp"
#include "ltlearn/tensor/allocator.hpp"

#include <cstddef>

namespace ltl::cuda {

/// CUDA global memory of the current device. cudaMalloc aligns blocks to 256 bytes.
struct device {
  static constexpr const char* name = "cuda";
  static constexpr bool is_host = false;
  static constexpr std::size_t alignment = 256;

  /// The calling thread's current GPU (cudaGetDevice): where new tensors are allocated.
  static int current_index();
  /// Raw device allocation of `bytes` (> 0) on the current device, bypassing the cache;
  /// throws out_of_memory_error or cuda_error naming cudaMalloc and the size.
  static void* allocate(std::size_t bytes);
  /// Frees a block from `allocate` (errors at process teardown are ignored: nothing to do then).
  static void deallocate(void* p, std::size_t bytes) noexcept;
  /// Device-to-device copy of `bytes`, stream-ordered.
  static void copy(void* dst, const void* src, std::size_t bytes);
  /// Zeroes `bytes`, stream-ordered.
  static void zero(void* dst, std::size_t bytes);
};

inline int device::current_index() {
  int index = 0;
  LTL_CUDA_CHECK(cudaGetDevice(&index));
  return index;
}

inline void* device::allocate(std::size_t bytes) {
  int index = 0;
  LTL_CUDA_CHECK(cudaGetDevice(&index));
  void* p = runtime_memory_source{}.try_allocate(index, bytes);
  if (!p) {
    throw out_of_memory_error(
        fmt::format("cudaMalloc of {} bytes on device {} failed: out of memory{}", bytes, index, detail::op_suffix()));
  }
  return p;
}

inline void device::deallocate(void* p, std::size_t /*bytes*/) noexcept {
  if (p && cudaFree(p) != cudaSuccess) (void)cudaGetLastError();
}

inline void device::copy(void* dst, const void* src, std::size_t bytes) {
  if (!bytes) return;
  LTL_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, context::current().stream()));
}

inline void device::zero(void* dst, std::size_t bytes) {
  if (!bytes) return;
  LTL_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, context::current().stream()));
}

}  // namespace ltl::cuda

namespace ltl {

/// The CUDA device's allocator: the interface of the generic caching_allocator over
/// `cuda::device_pool()`, allocating on the current device for the thread's allocation stream
/// (the compute stream unless an allocation_stream_guard says otherwise).
template <>
class caching_allocator<cuda::device> {
 public:
  /// The allocator (stateless: the state is the process-wide pool).
  static caching_allocator& instance() {
    static caching_allocator inst;
    return inst;
  }
  /// Bucket size a request of `bytes` is served from.
  static constexpr std::size_t bucket_size(std::size_t bytes) noexcept { return allocation_bucket(bytes); }

  /// A block of at least `bytes` (≥ 1) bytes on the current device; pair it with `release`.
  void* allocate(std::size_t bytes) {
    int index = 0;
    const cudaError_t st = cudaGetDevice(&index);
    if (st != cudaSuccess) {
      (void)cudaGetLastError();
      cuda::device_pool().note_failed_request();
      throw cuda_error(fmt::format("cudaMalloc of {} bytes failed: no usable CUDA device (cudaGetDevice: {} ({})){}",
                                   bucket_size(bytes), cudaGetErrorString(st), cudaGetErrorName(st),
                                   cuda::detail::op_suffix()));
    }
    return cuda::device_pool().allocate(index, cuda::detail::thread_allocation_stream(), bytes);
  }
  /// Returns a block from `allocate` to the cache of the device and stream it came from.
  void release(void* p, std::size_t /*bytes*/) noexcept { cuda::device_pool().release(p); }
  /// Frees every cached block of every device.
  void empty_cache() noexcept { cuda::device_pool().empty_cache(); }
  /// Counters summed over devices (per device: `cuda::memory_stats(index)`).
  [[nodiscard]] allocator_stats stats() const { return cuda::device_pool().stats(); }
  /// Resets the peak counters to the current use.
  void reset_peak() { cuda::device_pool().reset_peak(); }

 private:
  caching_allocator() = default;
};

/// Host batches move through the staging rings of upload.hpp, which defines this (declared
/// here so that no translation unit that knows cuda::device can use the generic copy instead).
template <>
struct host_upload<cuda::device>;

/// Host to device: the host buffer may be released as soon as this returns.
template <>
struct device_transfer<cuda::device, cpu::device> {
  static void copy(void* dst, const void* src, std::size_t bytes) {
    if (!bytes) return;
    auto& ctx = cuda::context::current();
    LTL_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, ctx.stream()));
    ctx.synchronize();
  }
};

/// Device to host: waits for all pending work on the stream, so the host data is final.
template <>
struct device_transfer<cpu::device, cuda::device> {
  static void copy(void* dst, const void* src, std::size_t bytes) {
    if (!bytes) return;
    auto& ctx = cuda::context::current();
    LTL_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, ctx.stream()));
    ctx.synchronize();
  }
};

}  // namespace ltl
