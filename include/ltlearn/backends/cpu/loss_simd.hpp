#pragma once
/// \file
/// Vectorised pieces of the fused loss's float path (backends/cpu/loss.hpp): a polynomial
/// e^x for x ≤ 0, a double-precision log of eight positive values, and the three passes over
/// one row of logits. Rows are processed in whole 64-byte vectors: the row buffer is padded to
/// a multiple of the lane count with −∞, whose exponential is 0.

#include "ltlearn/backends/cpu/simd.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
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
inline vf exp_nonpositive(vf x0) noexcept {
  const vf x = x0 < -80.0f ? vf{} - 80.0f : x0;
  const vf shifter = vf{} + 12582912.0f;  // 1.5·2^23: adding it rounds to an integer in the low bits
  const vf t = x * 1.44269504088896341f + shifter;
  const vf n = t - shifter;
  vi k;
  std::memcpy(&k, &t, sizeof(k));
  k -= 0x4B400000;  // the shifter's bits: k = n as an integer
  const vf r = (x - n * 0.693359375f) - n * -2.12194440e-4f;  // x − n·ln 2 in two parts
  vf p = vf{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const vi bits = (k + 127) << 23;
  vf scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return x0 < -80.0f ? vf{} : p * scale;
}

/// log x of eight positive normal doubles, to ~1e−16 relative: x = 2^e·m with m in
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
  return __builtin_convertvector(e, double8) * 0.6931471805599453094 + 2.0 * s * p;
}

/// Pass 1 of a row: zp[c] = z[c]·mult[c] + off[c] (off may be null) for c < C, −∞ up to cpad
/// (a multiple of lanes); returns max_c zp[c].
inline float adjust_max(const float* z, const float* mult, const float* off, float* zp, index_t C,
                        index_t cpad) noexcept {
  vf mx = vf{} - INFINITY;
  index_t c = 0;
  for (; c + lanes <= C; c += lanes) {
    vf v = load(z + c) * load(mult + c);
    if (off) v += load(off + c);
    store(zp + c, v);
    mx = mx > v ? mx : v;
  }
  float m = -INFINITY;
  for (int l = 0; l < lanes; ++l) m = std::max(m, mx[l]);
  for (; c < C; ++c) {
    zp[c] = z[c] * mult[c] + (off ? off[c] : 0.0f);
    m = std::max(m, zp[c]);
  }
  for (; c < cpad; ++c) zp[c] = -INFINITY;
  return m;
}

/// Pass 2: zp[c] ← e^(zp[c] − mx) over cpad entries; returns Σ zp. Pairs of vectors are added
/// in float (an error of one rounding relative to two terms), then widened and accumulated in
/// double in a fixed order. Prefetches the next row of logits, if any, so that its memory read
/// overlaps this compute-bound pass.
inline double exp_sum(float* zp, float mx, index_t cpad, const float* next) noexcept {
  double8 a0{}, a1{};
  auto widen_add = [&](const vf& v) {
    a0 += __builtin_convertvector(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7), double8);
    a1 += __builtin_convertvector(__builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15), double8);
  };
  index_t c = 0;
  for (; c + 2 * lanes <= cpad; c += 2 * lanes) {
    const vf e0 = exp_nonpositive(load(zp + c) - mx), e1 = exp_nonpositive(load(zp + c + lanes) - mx);
    store(zp + c, e0);
    store(zp + c + lanes, e1);
    widen_add(e0 + e1);
    if (next) {
      __builtin_prefetch(next + c);
      __builtin_prefetch(next + c + lanes);
    }
  }
  if (c < cpad) {
    const vf e = exp_nonpositive(load(zp + c) - mx);
    store(zp + c, e);
    widen_add(e);
  }
  return hsum(a0 + a1);
}

/// Pass 3: d[c] = k·e[c]·mult[c] (the label's entry is fixed by the caller). e may alias d.
/// With `stream`, whole aligned vectors bypass the cache (AVX-512 builds): a gradient larger
/// than the caches is not read before being written, a third less memory traffic.
inline void write_grad(const float* e, const float* mult, float k, float* d, index_t C, bool stream) noexcept {
  index_t c = 0;
#if defined(__AVX512F__)
  if (stream) {
    for (; c < C && reinterpret_cast<std::uintptr_t>(d + c) % 64 != 0; ++c) d[c] = e[c] * mult[c] * k;
    for (; c + lanes <= C; c += lanes) {
      const vf v = load(e + c) * load(mult + c) * k;
      _mm512_stream_ps(d + c, reinterpret_cast<const __m512&>(v));
    }
  }
#else
  (void)stream;
#endif
  for (; c + lanes <= C; c += lanes) store(d + c, load(e + c) * load(mult + c) * k);
  for (; c < C; ++c) d[c] = e[c] * mult[c] * k;
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
