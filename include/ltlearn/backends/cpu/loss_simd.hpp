#pragma once
/// \file
/// Vectorised pieces of the fused loss's float path (backends/cpu/loss.hpp): a polynomial
/// e^x for x ≤ 0, a double-precision log of eight positive values, and the three passes over
/// rows of logits (max of the adjusted logits; their exponentials, stored in a row buffer
/// padded with zeros to whole 64-byte vectors, and their sum; the gradient), pipelined over
/// consecutive rows.

#include "ltlearn/backends/cpu/simd.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>
#if defined(__unix__)
#include <unistd.h>
#endif
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

// 64-byte vectors passed by value between these inline helpers: GCC's note that their ABI
// differs without AVX-512 (-Wpsabi) concerns only non-inline interfaces.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace ltl::detail::loss_simd {

using vf = simd<float>::type;
using vi = int __attribute__((vector_size(64)));
using vl = long long __attribute__((vector_size(64)));
inline constexpr int lanes = simd<float>::lanes;

/// e^x for x ≤ 0 in every lane (Cephes' expf polynomial on x − n·ln 2, times 2^n, ≈ 1 ulp).
/// Lanes below −80 give 0 (e^−80 ≈ 1.8e−35 is nothing next to a row's e^0 = 1, and a zero
/// keeps the gradient's products clear of denormals, which cost a microcode assist each).
/// 2^n is applied by AVX-512's scalef where available, else built in the exponent bits; the
/// scaling is exact either way (results are normal), so both give the same bits.
/// A NaN lane stays NaN (the caller's check for a NaN loss relies on it). Always inlined: a
/// call would spill the polynomial's constants in every row loop that uses it.
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
inline vf exp_nonpositive(vf x0) noexcept {
#if defined(__AVX512F__)
  // No clamp: lanes below −80 (−∞ included, whose arithmetic below gives NaN) are zeroed by the
  // final masked scalef, and a NaN lane passes the mask and stays NaN.
  const vf x = x0;
#else
  const vf x = x0 < -80.0f ? vf{} - 80.0f : x0;
#endif
  const vf shifter = vf{} + 12582912.0f;  // 1.5·2^23: adding it rounds to an integer in the low bits
  const vf t = x * 1.44269504088896341f + shifter;
  const vf n = t - shifter;
  const vf r = (x - n * 0.693359375f) - n * -2.12194440e-4f;  // x − n·ln 2 in two parts
  vf p = vf{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = (p * r + 1.0f) * r + 1.0f;  // 1 + r + r²·P(r), two fused steps
#if defined(__AVX512F__)
  const __mmask16 keep = _mm512_cmp_ps_mask(reinterpret_cast<const __m512&>(x0), _mm512_set1_ps(-80.0f), _CMP_NLT_UQ);
  const __m512 e = _mm512_maskz_scalef_ps(keep, reinterpret_cast<const __m512&>(p), reinterpret_cast<const __m512&>(n));
  return reinterpret_cast<const vf&>(e);
#else
  vi k;
  std::memcpy(&k, &t, sizeof(k));
  const vi bits = (k - (0x4B400000 - 127)) << 23;  // (n + 127) in the exponent field
  vf scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return x0 < -80.0f ? vf{} : p * scale;
#endif
}

/// log x of eight positive normal doubles (or NaN), to ~1e−16 relative: x = 2^e·m with m in
/// [1/√2, √2), log m = 2·atanh((m − 1)/(m + 1)) by its series to s^21.
inline double8 log_positive(double8 x) noexcept {
  vl bits;
  std::memcpy(&bits, &x, sizeof(bits));
  vl e = ((bits >> 52) & 0x7ff) - 1023;
  const vl mbits = (bits & 0x000fffffffffffffLL) | 0x3ff0000000000000LL;
  double8 m;
  std::memcpy(&m, &mbits, sizeof(m));
  const vl big = m > 1.4142135623730951;  // all ones where true
  m = big ? m * 0.5 : m;
  e -= big;
  const double8 s = (m - 1.0) / (m + 1.0), s2 = s * s;
  double8 p = double8{} + 1.0 / 21;
  for (int k = 19; k >= 3; k -= 2) p = p * s2 + 1.0 / k;
  p = p * s2 + 1.0;
  const double8 r = __builtin_convertvector(e, double8) * 0.6931471805599453094 + 2.0 * s * p;
  return x == x ? r : x;  // NaN stays NaN (its bits would otherwise read as a finite value)
}

/// Adjusted logits of a row minus a shift: z[c]·m + off[c] − shift, with one multiplier m for
/// every class (Uniform) or m = mult[c] per class (CDT's temperatures), and offsets if Off.
/// Compile-time flags keep the inner loops free of branches and let z·m − shift fuse.
template <bool Uniform, bool Off>
struct adjust {
  const float* mult;
  float m;
  const float* off;
  vf operator()(const float* z, index_t c, float shift) const noexcept {
    const vf zm = Uniform ? load(z + c) * m : load(z + c) * load(mult + c);
    if constexpr (Off) return (zm + load(off + c)) - shift;
    return zm - shift;
  }
  float operator()(const float* z, index_t c) const noexcept {
    const float zm = z[c] * (Uniform ? m : mult[c]);
    return Off ? zm + off[c] : zm;
  }
};

/// Lane-wise max.
inline vf max_v(const vf& a, const vf& b) noexcept { return a > b ? a : b; }

/// One sweep of the three-stage row pipeline of a thread (all rows have C classes). With rows
/// i−1, i, i+1 in flight it does, vector by vector in one loop:
///   M: the max of row i+1's adjusted logits (its first read from memory)   → max_next
///   E: e[c] = e^(adjusted z[c] − mx) of row i into `e`, padded with zeros to whole vectors;
///      Σ e in double (blocks of four vectors are added in float, three roundings relative
///      to four terms, then widened; a fixed order)                          → returned
///   G: row i−1's gradient d[c] = k·e_prev[c]·mult[c] (mult null: k·e_prev[c]); the label's
///      entry is fixed by the caller. With `stream`, whole aligned vectors bypass the cache
///      (AVX-512 builds): a gradient larger than the caches is not read before being written.
/// E is compute-bound and M and G memory-bound; interleaving them lets the core overlap the
/// two, where three separate passes per row would serialise them. Disabled stages' pointers
/// are ignored.
template <bool M, bool E, bool G, class Adjust>
inline double row_sweep(const Adjust& adj_in, index_t C, const float* z_next, float& max_next, const float* z, float mx,
                        float* e, const float* e_prev, const float* mult, float k, float* d, bool stream) noexcept {
  const Adjust adj = adj_in;  // a local copy: the stores below cannot alias its fields
  auto grad = [&](index_t c) { return mult ? load(e_prev + c) * load(mult + c) * k : load(e_prev + c) * k; };
  auto grad1 = [&](index_t c) { return e_prev[c] * (mult ? mult[c] : 1.0f) * k; };
  vf vmx = vf{} - INFINITY, block{};
  double8 a0{}, a1{};
  auto widen_add = [&](const vf& v) {
    a0 += __builtin_convertvector(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7), double8);
    a1 += __builtin_convertvector(__builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15), double8);
  };
  // Stage G runs `head` scalar entries first when streaming, so that its vectors are aligned.
  index_t head = 0;
#if defined(__AVX512F__)
  if (G && stream)
    while (head < C && reinterpret_cast<std::uintptr_t>(d + head) % 64 != 0) d[head] = grad1(head), ++head;
#else
  stream = false;
#endif
  const index_t nv = C / lanes, nv_grad = G ? (C - head) / lanes : 0;
  for (index_t j = 0; j < nv; ++j) {
    const index_t c = j * lanes;
    if constexpr (M) {
      vmx = max_v(vmx, adj(z_next, c, 0.0f));
    }
    if constexpr (E) {
      const vf v = exp_nonpositive(adj(z, c, mx));
      store(e + c, v);
      block = (j & 3) == 0 ? v : block + v;
      if ((j & 3) == 3) widen_add(block);
    }
    if constexpr (G) {
      if (j < nv_grad) {
        const vf v = grad(head + c);
#if defined(__AVX512F__)
        if (stream)
          _mm512_stream_ps(d + head + c, reinterpret_cast<const __m512&>(v));
        else
#endif
          store(d + head + c, v);
      }
    }
  }
  const index_t c = nv * lanes;
  if constexpr (M) {
    // Tree reduction of the lanes (a NaN lane may or may not survive: the exponentials
    // propagate NaN either way).
    vmx = max_v(vmx, __builtin_shufflevector(vmx, vmx, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7));
    vmx = max_v(vmx, __builtin_shufflevector(vmx, vmx, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11));
    vmx = max_v(vmx, __builtin_shufflevector(vmx, vmx, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13));
    vmx = max_v(vmx, __builtin_shufflevector(vmx, vmx, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14));
    float m = vmx[0];
    for (index_t cc = c; cc < C; ++cc) m = std::max(m, adj(z_next, cc));
    max_next = m;
  }
  if constexpr (E) {
    if ((nv & 3) != 0) widen_add(block);  // the last, partial block
    if (c < C) {  // the last partial vector, through a padded copy
      alignas(64) float tail[lanes];
      for (int l = 0; l < lanes; ++l) tail[l] = c + l < C ? adj(z, c + l) : -INFINITY;
      const vf v = exp_nonpositive(load(tail) - mx);
      store(e + c, v);
      widen_add(v);
    }
  }
  if constexpr (G)
    for (index_t cc = head + nv_grad * lanes; cc < C; ++cc) d[cc] = grad1(cc);
  return E ? hsum(a0 + a1) : 0.0;
}

/// row_sweep with the stages chosen at run time.
template <class Adjust>
inline double row_sweep(bool m, bool e, bool g, const Adjust& adj, index_t C, const float* z_next, float& max_next,
                        const float* z, float mx, float* ev, const float* e_prev, const float* mult, float k, float* d,
                        bool stream) noexcept {
  auto run = [&](auto M, auto E, auto G) {
    return row_sweep<decltype(M)::value, decltype(E)::value, decltype(G)::value>(adj, C, z_next, max_next, z, mx, ev,
                                                                                 e_prev, mult, k, d, stream);
  };
  using T = std::true_type;
  using F = std::false_type;
  if (m) {
    if (e) return g ? run(T{}, T{}, T{}) : run(T{}, T{}, F{});
    return g ? run(T{}, F{}, T{}) : run(T{}, F{}, F{});
  }
  if (e) return g ? run(F{}, T{}, T{}) : run(F{}, T{}, F{});
  return g ? run(F{}, F{}, T{}) : 0.0;
}

/// Gradient size (bytes) from which row_sweep's stores bypass the cache: 3/8 of the last-level
/// cache, where the C library's memcpy switches to non-temporal stores too (glibc 2.36 on a
/// 480 MiB L3: 190 MB); 8 MiB where the cache size is unknown. Streaming a gradient that the
/// cache could hold only sends it to memory early: at (512, 8142) on that machine (16.7 MB)
/// regular stores measured 6–12 % faster than streamed ones.
inline index_t& stream_threshold_setting() noexcept {
  static index_t bytes = [] {
#if defined(_SC_LEVEL3_CACHE_SIZE)
    const long l3 = ::sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (l3 > 0) return static_cast<index_t>(l3) / 8 * 3;
#endif
    return index_t{8} << 20;
  }();
  return bytes;
}
inline index_t stream_threshold() noexcept { return stream_threshold_setting(); }
/// Sets the threshold (e.g. so that tests reach the streamed path on machines with large
/// caches); returns the previous value. Not to be called while a loss is being computed.
inline index_t set_stream_threshold(index_t bytes) noexcept {
  return std::exchange(stream_threshold_setting(), bytes);
}

/// Orders streamed stores before what follows (a no-op without AVX-512).
inline void stream_fence() noexcept {
#if defined(__AVX512F__)
  _mm_sfence();
#endif
}

}  // namespace ltl::detail::loss_simd

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
