#pragma once
/// \file
/// Host-side iteration over strided N-d index spaces (private helper for CPU kernels).

#include "ltlearn/core/shape.hpp"

#include <algorithm>
#include <array>
#include <cstddef>

namespace ltl::detail {

/// Visits the linear positions [begin, end) of the row-major index space `sizes`, calling
/// `f(offsets)` with, for each of the K operands, the element offset given its strides.
/// The innermost dimension runs as a tight loop; outer indices advance like an odometer.
template <std::size_t K, class F>
void strided_for(const shape& sizes, const std::array<shape, K>& strides, index_t begin, index_t end, F&& f) {
  const int r = sizes.size();
  if (begin >= end) return;
  if (r == 0) {
    f(std::array<index_t, K>{});
    return;
  }
  std::array<index_t, shape::max_rank> idx{};
  index_t rem = begin;
  for (int d = r - 1; d >= 0; --d) {
    idx[static_cast<std::size_t>(d)] = rem % sizes[d];
    rem /= sizes[d];
  }
  std::array<index_t, K> base{};  // offset of the current row's first element
  for (std::size_t k = 0; k < K; ++k)
    for (int d = 0; d < r - 1; ++d) base[k] += idx[static_cast<std::size_t>(d)] * strides[k][d];

  const index_t inner = sizes[r - 1];
  std::array<index_t, K> step{};
  for (std::size_t k = 0; k < K; ++k) step[k] = strides[k][r - 1];

  index_t i0 = idx[static_cast<std::size_t>(r - 1)];
  index_t pos = begin;
  for (;;) {
    const index_t n = std::min(inner - i0, end - pos);
    std::array<index_t, K> o;
    for (std::size_t k = 0; k < K; ++k) o[k] = base[k] + i0 * step[k];
    for (index_t i = 0; i < n; ++i) {
      f(o);
      for (std::size_t k = 0; k < K; ++k) o[k] += step[k];
    }
    pos += n;
    if (pos >= end) return;
    i0 = 0;
    for (int d = r - 2; d >= 0; --d) {
      auto& id = idx[static_cast<std::size_t>(d)];
      ++id;
      for (std::size_t k = 0; k < K; ++k) base[k] += strides[k][d];
      if (id < sizes[d]) break;
      for (std::size_t k = 0; k < K; ++k) base[k] -= id * strides[k][d];
      id = 0;
    }
  }
}

}  // namespace ltl::detail
