#pragma once
/// \file
/// ltl::cuda::device: the device tag of CUDA global memory, and host <-> device transfers.
///
/// `tensor<float, cuda::device>` lives on the calling thread's current CUDA device. Memory
/// comes from cudaMalloc through the generic `caching_allocator<cuda::device>`; copies and
/// fills are issued on the device's context stream (see context.hpp), so they are ordered with
/// every kernel ltlearn launches. Transfers to or from the host synchronise that stream: once
/// `t.to<cpu::device>()` returns, the host data is final.

#include "ltlearn/backends/cuda/context.hpp"
#include "ltlearn/backends/cuda/error.hpp"
#include "ltlearn/core/device.hpp"
#include "ltlearn/tensor/allocator.hpp"

#include <cstddef>

namespace ltl::cuda {

/// CUDA global memory of the current device. cudaMalloc aligns blocks to 256 bytes.
struct device {
  static constexpr const char* name = "cuda";
  static constexpr bool is_host = false;
  static constexpr std::size_t alignment = 256;

  /// Raw device allocation of `bytes` (> 0); throws cuda_error naming cudaMalloc and the size.
  static void* allocate(std::size_t bytes);
  /// Frees a block from `allocate` (errors at process teardown are ignored: nothing to do then).
  static void deallocate(void* p, std::size_t bytes) noexcept;
  /// Device-to-device copy of `bytes`, stream-ordered.
  static void copy(void* dst, const void* src, std::size_t bytes);
  /// Zeroes `bytes`, stream-ordered.
  static void zero(void* dst, std::size_t bytes);
};

inline void* device::allocate(std::size_t bytes) {
  void* p = nullptr;
  cudaError_t st = cudaMalloc(&p, bytes);
  if (st == cudaErrorMemoryAllocation) {
    // Blocks cached for other sizes may be what stands in the way: give them back and retry
    // once. (The caching allocator retries only on std::bad_alloc, which CUDA never throws.)
    (void)cudaGetLastError();
    caching_allocator<device>::instance().empty_cache();
    st = cudaMalloc(&p, bytes);
  }
  if (st != cudaSuccess) {
    (void)cudaGetLastError();
    throw cuda_error(fmt::format("cudaMalloc of {} bytes failed: {} ({})", bytes, cudaGetErrorString(st),
                                 cudaGetErrorName(st)));
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
