#pragma once
/// \file
/// Device tags. A device is a type (ARCHITECTURE §4): `tensor<float, cpu::device>`.
/// The CPU device lives here; `ltlearn/cuda.hpp` adds `cuda::device`.
///
/// Backend kernels are free functions in the namespace of their device tag (`ltl::cpu`,
/// `ltl::cuda`) with identical signatures, so ops reach the right one by argument-dependent
/// lookup on the tensor's device type, independently of include order.

#include "ltlearn/core/error.hpp"

#include <concepts>
#include <cstddef>
#include <cstring>
#include <new>
#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace ltl {

namespace cpu {
/// The host CPU. Memory is 64-byte aligned so that SIMD loads never straddle cache lines;
/// on Linux, blocks from 4 MiB are 2 MiB-aligned and advised for transparent huge pages (the
/// fused loss at (512, 8142) measured 5–16 % faster with them, copies 4 %; benchmarks/README.md).
/// deallocate must get the size allocate got (the caching allocator passes its bucket size).
struct device {
  static constexpr const char* name = "cpu";
  static constexpr bool is_host = true;
  static constexpr std::size_t alignment = 64;

  /// Allocations from this size are aligned to 2 MiB and marked for transparent huge pages.
  static constexpr std::size_t huge_from = std::size_t{4} << 20, huge_page = std::size_t{2} << 20;

  /// Raw aligned allocation of `bytes` (> 0); throws std::bad_alloc on failure.
  static void* allocate(std::size_t bytes) {
#if defined(__linux__)
    if (bytes >= huge_from) {
      void* p = ::operator new(bytes, std::align_val_t{huge_page});
      // A hint: if the kernel refuses it, the block is an ordinary one.
      ::madvise(p, (bytes + huge_page - 1) / huge_page * huge_page, MADV_HUGEPAGE);
      return p;
    }
#endif
    return ::operator new(bytes, std::align_val_t{alignment});
  }
  static void deallocate(void* p, std::size_t bytes) noexcept {
#if defined(__linux__)
    if (bytes >= huge_from) {
      ::operator delete(p, std::align_val_t{huge_page});
      return;
    }
#endif
    ::operator delete(p, std::align_val_t{alignment});
  }
  static void copy(void* dst, const void* src, std::size_t bytes) {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  static void zero(void* dst, std::size_t bytes) {
    if (bytes) std::memset(dst, 0, bytes);
  }
};
}  // namespace cpu

/// Index of the calling thread's current device of type D: `D::current_index()` for a device
/// type with several instances (cuda::device: cudaGetDevice), 0 for the others.
template <class D>
[[nodiscard]] int current_device_index() {
  if constexpr (requires { { D::current_index() } -> std::convertible_to<int>; }) {
    return D::current_index();
  } else {
    return 0;
  }
}

/// The device whose memory host code reads and writes directly: host-side staging of tensor
/// values (initialisers, `tensor::from`, `item`, printing, checkpoints). A name of its own, so
/// that code generic over the compute device says "on the host", not "on the CPU backend".
using host_device = cpu::device;

/// Copies bytes from memory of device `Src` to memory of device `Dst`. Specialised by each
/// backend for the pairs it supports; the primary template handles host-to-host.
template <class Dst, class Src>
struct device_transfer {
  static void copy(void* dst, const void* src, std::size_t bytes) {
    static_assert(Dst::is_host && Src::is_host,
                  "no transfer between these devices: include the backend header (e.g. ltlearn/cuda.hpp)");
    if (bytes) std::memcpy(dst, src, bytes);
  }
};

}  // namespace ltl
