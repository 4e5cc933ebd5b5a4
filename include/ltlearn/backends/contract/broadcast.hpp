#pragma once
/// \file
/// NumPy-style broadcasting of two shapes: the rule every backend's binary kernels and the
/// ops layer's gradient reductions share.

#include "ltlearn/core/error.hpp"
#include "ltlearn/core/shape.hpp"

#include <algorithm>

namespace ltl {

/// NumPy-style broadcast of two shapes (trailing dimensions aligned; extents equal or 1).
/// `op` names the caller in the shape_error thrown when they do not broadcast.
inline shape broadcast_shapes(const shape& a, const shape& b, const char* op) {
  const int r = std::max(a.size(), b.size());
  shape out = shape::filled(r, 1);
  for (int i = 0; i < r; ++i) {
    const int ia = a.size() - r + i, ib = b.size() - r + i;
    const index_t ea = ia >= 0 ? a[ia] : 1, eb = ib >= 0 ? b[ib] : 1;
    LTL_CHECK(ea == eb || ea == 1 || eb == 1, shape_error, "{}: shapes {} and {} do not broadcast", op, a, b);
    out[i] = ea == 1 ? eb : ea;
  }
  return out;
}

}  // namespace ltl
