#pragma once
/// \file
/// Stable 64-bit content hashes for datasets and the subsets built from them (SPEC §3: every
/// constructed subset has a content hash printed in logs).
///
/// FNV-1a over bytes, with integers fed in little-endian order, so a hash is the same on every
/// platform and standard library — unlike std::hash, which may change between releases.

#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace ltl::data {

/// Incremental 64-bit FNV-1a hasher.
class fnv1a64 {
 public:
  static constexpr std::uint64_t offset_basis = 0xCBF29CE484222325ull;
  static constexpr std::uint64_t prime = 0x100000001B3ull;

  /// Feeds raw bytes.
  constexpr fnv1a64& bytes(std::span<const std::uint8_t> b) noexcept {
    std::uint64_t h = h_;
    for (std::uint8_t c : b) h = (h ^ c) * prime;
    h_ = h;
    return *this;
  }
  /// Feeds the characters of `s` (no terminator, no length).
  constexpr fnv1a64& text(std::string_view s) noexcept {
    for (char c : s) h_ = (h_ ^ static_cast<std::uint8_t>(c)) * prime;
    return *this;
  }
  /// Feeds the 8 bytes of `v`, least significant first (platform-independent).
  constexpr fnv1a64& u64(std::uint64_t v) noexcept {
    for (int i = 0; i < 8; ++i) h_ = (h_ ^ ((v >> (8 * i)) & 0xFFu)) * prime;
    return *this;
  }
  /// Feeds a signed 64-bit integer as its two's-complement bit pattern.
  constexpr fnv1a64& i64(std::int64_t v) noexcept { return u64(static_cast<std::uint64_t>(v)); }

  [[nodiscard]] constexpr std::uint64_t value() const noexcept { return h_; }

 private:
  std::uint64_t h_ = offset_basis;
};

/// The hash as 16 lower-case hex digits, e.g. `"00c0ffee12345678"` (the form printed in logs).
inline std::string hash_hex(std::uint64_t h) { return fmt::format("{:016x}", h); }

}  // namespace ltl::data
