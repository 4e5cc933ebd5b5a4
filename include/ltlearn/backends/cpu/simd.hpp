#pragma once
/// \file
/// Portable fixed-width vectors for the CPU kernels: GCC/Clang vector extensions of 64 bytes
/// (one AVX-512 register with -march=native; two AVX2 or four SSE registers otherwise, which
/// the compiler splits). They give explicit vectorisation where the compiler may not reorder on
/// its own — float reductions without -ffast-math — and keep the summation order fixed, so
/// results do not depend on the instruction set's width beyond what the lane count fixes.

#include "ltlearn/core/shape.hpp"

#include <cstring>

// 64-byte vectors passed by value between these inline helpers: GCC's note that their ABI
// differs without AVX-512 (-Wpsabi) concerns only non-inline interfaces.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace ltl::detail {

/// 64-byte vector of T and its lane count.
template <class T>
struct simd {
  static constexpr int lanes = static_cast<int>(64 / sizeof(T));
  typedef T type __attribute__((vector_size(64)));
};

/// Unaligned load of one simd<T> vector.
template <class T>
inline typename simd<T>::type load(const T* p) noexcept {
  typename simd<T>::type v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

/// Unaligned store of one simd<T> vector.
template <class T>
inline void store(T* p, const typename simd<T>::type& v) noexcept {
  std::memcpy(p, &v, sizeof(v));
}

/// Eight doubles, and eight T to widen into them (sums of float data accumulated in double).
using double8 = double __attribute__((vector_size(64)));
template <class T>
struct widen8 {
  typedef T type __attribute__((vector_size(8 * sizeof(T))));
  static double8 load(const T* p) noexcept {
    type v;
    std::memcpy(&v, p, sizeof(v));
    return __builtin_convertvector(v, double8);
  }
};

/// Sum of the eight lanes, in a fixed order.
inline double hsum(const double8& v) noexcept {
  return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}

}  // namespace ltl::detail

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
