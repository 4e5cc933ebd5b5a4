#pragma once
/// \file
/// Device tags. A device is a type (ARCHITECTURE §4): `tensor<float, cpu::device>`.
/// The CPU device lives here; `ltlearn/cuda.hpp` adds `cuda::device`.
///
/// Backend kernels are free functions in the namespace of their device tag (`ltl::cpu`,
/// `ltl::cuda`) with identical signatures, so ops reach the right one by argument-dependent
/// lookup on the tensor's device type, independently of include order.

#include "ltlearn/core/error.hpp"

#include <cstddef>
#include <cstring>
#include <new>

namespace ltl {

namespace cpu {
/// The host CPU. Memory is 64-byte aligned so that SIMD loads never straddle cache lines.
struct device {
  static constexpr const char* name = "cpu";
  static constexpr bool is_host = true;
  static constexpr std::size_t alignment = 64;

  /// Raw aligned allocation of `bytes` (> 0); throws std::bad_alloc on failure.
  static void* allocate(std::size_t bytes) { return ::operator new(bytes, std::align_val_t{alignment}); }
  static void deallocate(void* p, std::size_t /*bytes*/) noexcept {
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
