#pragma once
/// \file
/// Portable fixed-width vectors for the CPU kernels: GCC/Clang vector extensions of 64 bytes
/// (one AVX-512 register with -march=native; two AVX2 or four SSE registers otherwise, which
/// the compiler splits). They give explicit vectorisation where the compiler may not reorder on
/// its own — float reductions without -ffast-math — and keep the summation order fixed, so
/// results do not depend on the instruction set's width beyond what the lane count fixes.

#include "ltlearn/core/shape.hpp"

#include <cstring>
#include <utility>

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


/// One stage of transpose16: for the pairs of rows (i, i + K) with bit K of i clear, the lanes
/// with bit K set of row i and those with it clear of row i + K trade places.
template <int K, int... J>
inline void transpose_stage(simd<float>::type* r, std::integer_sequence<int, J...>) noexcept {
  constexpr int L = simd<float>::lanes;
  for (int i = 0; i < L; ++i)
    if ((i & K) == 0) {
      const auto a = r[i], b = r[i + K];
#if defined(__GNUC__) && !defined(__CUDACC__)
      r[i] = __builtin_shufflevector(a, b, ((J & K) ? L + J - K : J)...);
      r[i + K] = __builtin_shufflevector(a, b, ((J & K) ? L + J : J + K)...);
#else  // nvcc's front end parses this host code (ltlearn/cuda.hpp includes the CPU backend) but not the shuffle builtin
      for (int j = 0; j < L; ++j)
        if (j & K) r[i][j] = b[j - K], r[i + K][j - K] = a[j];
#endif
    }
}

/// Transposes the 16 × 16 floats in r (r[i][j] ↔ r[j][i]) in registers: four stages swap the
/// off-diagonal blocks of 8, 4, 2 and 1 lanes, 64 two-vector permutations in all.
inline void transpose16(simd<float>::type* r) noexcept {
  constexpr auto seq = std::make_integer_sequence<int, simd<float>::lanes>{};
  transpose_stage<8>(r, seq);
  transpose_stage<4>(r, seq);
  transpose_stage<2>(r, seq);
  transpose_stage<1>(r, seq);
}

}  // namespace ltl::detail

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
