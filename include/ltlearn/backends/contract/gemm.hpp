#pragma once
/// \file
/// The argument check of matrix products, written once for every backend's matmul.

#include "ltlearn/core/error.hpp"
#include "ltlearn/core/shape.hpp"

namespace ltl {

/// matmul: a [M, K] and b [K, N].
inline void check_matmul(const shape& a, const shape& b) {
  LTL_CHECK(a.size() == 2 && b.size() == 2 && a[1] == b[0], shape_error, "matmul: shapes {} and {} are not compatible",
            a, b);
}

}  // namespace ltl
