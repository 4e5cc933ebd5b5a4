#pragma once
/// \file
/// ltl::rng: a small, fast, portable and serialisable random generator.
///
/// std distributions are implementation-defined, so a seeded run would give different numbers
/// with another standard library. ltl::rng is xoshiro256** seeded through splitmix64, with its
/// own uniform, normal, gamma and beta transforms: same seed → same numbers everywhere.

#include "ltlearn/core/error.hpp"

#include <array>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <span>
#include <utility>

namespace ltl {

/// splitmix64 step: used for seeding and for hashing (seed, stream) pairs.
inline constexpr std::uint64_t splitmix64(std::uint64_t& x) noexcept {
  std::uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// Seeded generator with portable distributions. Cheap to copy; copies continue identically.
class rng {
 public:
  using result_type = std::uint64_t;
  using state_type = std::array<std::uint64_t, 4>;

  explicit rng(std::uint64_t seed = 0) noexcept { reseed(seed); }
  /// A generator for stream `stream` of `seed`: independent of other streams of the same seed.
  rng(std::uint64_t seed, std::uint64_t stream) noexcept {
    std::uint64_t x = seed;
    const std::uint64_t a = splitmix64(x);
    std::uint64_t y = stream ^ 0xD1B54A32D192ED03ull;
    reseed(a ^ splitmix64(y));
  }

  void reseed(std::uint64_t seed) noexcept {
    std::uint64_t x = seed;
    for (auto& w : s_) w = splitmix64(x);
  }

  static constexpr result_type min() noexcept { return 0; }
  static constexpr result_type max() noexcept { return ~result_type{0}; }

  /// Next raw 64-bit output.
  result_type operator()() noexcept {
    const std::uint64_t r = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return r;
  }

  /// Uniform double in [0, 1) with 53 random bits.
  double uniform() noexcept { return static_cast<double>((*this)() >> 11) * 0x1.0p-53; }
  /// Uniform double in [lo, hi).
  double uniform(double lo, double hi) noexcept { return lo + (hi - lo) * uniform(); }

  /// Uniform integer in [0, n), unbiased (Lemire's multiply-and-reject). Requires n > 0.
  std::uint64_t below(std::uint64_t n) {
    LTL_CHECK(n > 0, value_error, "rng::below: the range must not be empty");
    unsigned __int128 m = static_cast<unsigned __int128>((*this)()) * n;
    auto lo = static_cast<std::uint64_t>(m);
    if (lo < n) {
      const std::uint64_t threshold = (0 - n) % n;
      while (lo < threshold) {
        m = static_cast<unsigned __int128>((*this)()) * n;
        lo = static_cast<std::uint64_t>(m);
      }
    }
    return static_cast<std::uint64_t>(m >> 64);
  }

  /// Standard normal by the Box–Muller transform (one value per call; no hidden cache, so the
  /// state is exactly `state()`).
  double normal() noexcept {
    double u1 = uniform();
    while (u1 <= 0.0) u1 = uniform();
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }
  double normal(double mean, double stddev) noexcept { return mean + stddev * normal(); }

  /// Gamma(shape k, scale 1) by Marsaglia–Tsang, with the k < 1 boost.
  double gamma(double k) {
    LTL_CHECK(k > 0 && std::isfinite(k), value_error, "rng::gamma: shape must be positive, got {}", k);
    if (k < 1.0) {
      double u = uniform();
      while (u <= 0.0) u = uniform();
      return gamma(k + 1.0) * std::pow(u, 1.0 / k);
    }
    const double d = k - 1.0 / 3.0;
    const double c = 1.0 / std::sqrt(9.0 * d);
    for (;;) {
      double x, v;
      do {
        x = normal();
        v = 1.0 + c * x;
      } while (v <= 0.0);
      v = v * v * v;
      const double u = uniform();
      if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
      if (u > 0.0 && std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) return d * v;
    }
  }

  /// Beta(a, b) as X/(X+Y) with X ~ Gamma(a), Y ~ Gamma(b).
  double beta(double a, double b) {
    const double x = gamma(a);
    const double y = gamma(b);
    const double s = x + y;
    return s > 0.0 ? x / s : 0.5;
  }

  /// Fisher–Yates shuffle of `v` in place.
  template <class U>
  void shuffle(std::span<U> v) {
    for (std::size_t i = v.size(); i > 1; --i) {
      const auto j = static_cast<std::size_t>(below(i));
      std::swap(v[i - 1], v[j]);
    }
  }

  [[nodiscard]] const state_type& state() const noexcept { return s_; }
  void set_state(const state_type& s) noexcept { s_ = s; }
  friend bool operator==(const rng&, const rng&) = default;

 private:
  static constexpr std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
  state_type s_{};
};

}  // namespace ltl
