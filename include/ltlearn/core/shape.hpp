#pragma once
/// \file
/// ltl::shape: a small fixed-capacity list of extents (also used for strides).

#include "ltlearn/core/error.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <span>

namespace ltl {

/// Signed index type used for sizes, strides and offsets throughout the library.
using index_t = std::int64_t;

/// Extents of a tensor (or its strides), rank 0 to shape::max_rank, stored inline.
class shape {
 public:
  static constexpr int max_rank = 8;

  constexpr shape() = default;
  constexpr shape(std::initializer_list<index_t> dims) { assign(dims.begin(), dims.size()); }
  explicit shape(std::span<const index_t> dims) { assign(dims.data(), dims.size()); }

  /// A shape of `rank` extents all equal to `value`.
  static constexpr shape filled(int rank, index_t value) {
    shape s;
    s.check_rank(static_cast<std::size_t>(rank));
    s.rank_ = rank;
    for (int i = 0; i < rank; ++i) s.d_[static_cast<std::size_t>(i)] = value;
    return s;
  }

  [[nodiscard]] constexpr int size() const noexcept { return rank_; }
  [[nodiscard]] constexpr bool empty() const noexcept { return rank_ == 0; }
  constexpr index_t& operator[](int i) noexcept { return d_[static_cast<std::size_t>(i)]; }
  constexpr index_t operator[](int i) const noexcept { return d_[static_cast<std::size_t>(i)]; }
  /// Extent `i`, where negative `i` counts from the back.
  [[nodiscard]] index_t at(int i) const;
  [[nodiscard]] constexpr const index_t* begin() const noexcept { return d_.data(); }
  [[nodiscard]] constexpr const index_t* end() const noexcept { return d_.data() + rank_; }
  constexpr index_t* begin() noexcept { return d_.data(); }
  constexpr index_t* end() noexcept { return d_.data() + rank_; }
  [[nodiscard]] constexpr index_t back() const noexcept { return d_[static_cast<std::size_t>(rank_ - 1)]; }

  constexpr void push_back(index_t v) {
    check_rank(static_cast<std::size_t>(rank_) + 1);
    d_[static_cast<std::size_t>(rank_++)] = v;
  }
  /// Removes dimension `i`.
  constexpr void erase(int i) noexcept {
    for (int k = i; k + 1 < rank_; ++k) d_[static_cast<std::size_t>(k)] = d_[static_cast<std::size_t>(k + 1)];
    --rank_;
  }
  /// Inserts extent `v` before dimension `i`.
  constexpr void insert(int i, index_t v) {
    check_rank(static_cast<std::size_t>(rank_) + 1);
    for (int k = rank_; k > i; --k) d_[static_cast<std::size_t>(k)] = d_[static_cast<std::size_t>(k - 1)];
    d_[static_cast<std::size_t>(i)] = v;
    ++rank_;
  }

  /// Product of the extents (1 for rank 0).
  [[nodiscard]] constexpr index_t numel() const noexcept {
    index_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= d_[static_cast<std::size_t>(i)];
    return n;
  }

  friend constexpr bool operator==(const shape& a, const shape& b) noexcept {
    return a.rank_ == b.rank_ && std::equal(a.begin(), a.end(), b.begin());
  }

 private:
  static constexpr void check_rank(std::size_t n) {
    if (n > static_cast<std::size_t>(max_rank)) throw shape_error("shape: rank above 8 is not supported");
  }
  constexpr void assign(const index_t* p, std::size_t n) {
    check_rank(n);
    rank_ = static_cast<int>(n);
    for (std::size_t i = 0; i < n; ++i) d_[i] = p[i];
  }

  std::array<index_t, max_rank> d_{};
  int rank_ = 0;
};

/// Row-major (C-order) strides of a contiguous tensor of the given shape.
inline constexpr shape contiguous_strides(const shape& s) {
  shape st = shape::filled(s.size(), 1);
  for (int i = s.size() - 2; i >= 0; --i) st[i] = st[i + 1] * s[i + 1];
  return st;
}

/// Normalises a possibly negative dimension index against `rank`, naming `op` on failure.
inline int normalize_dim(int dim, int rank, const char* op) {
  const int d = dim < 0 ? dim + rank : dim;
  LTL_CHECK(d >= 0 && d < rank, shape_error, "{}: dimension {} out of range for rank {}", op, dim, rank);
  return d;
}

}  // namespace ltl

/// Formats a shape as `[2, 3, 4]`.
template <>
struct fmt::formatter<ltl::shape> {
  constexpr auto parse(fmt::format_parse_context& ctx) { return ctx.begin(); }
  template <class Ctx>
  auto format(const ltl::shape& s, Ctx& ctx) const {
    auto out = fmt::format_to(ctx.out(), "[");
    for (int i = 0; i < s.size(); ++i) {
      if (i) out = fmt::format_to(out, ", ");
      out = fmt::format_to(out, "{}", s[i]);
    }
    return fmt::format_to(out, "]");
  }
};

namespace ltl {
inline index_t shape::at(int i) const {
  const int j = i < 0 ? i + rank_ : i;
  LTL_CHECK(j >= 0 && j < rank_, shape_error, "shape {}: dimension {} out of range", *this, i);
  return d_[static_cast<std::size_t>(j)];
}
}  // namespace ltl
