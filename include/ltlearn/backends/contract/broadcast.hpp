#pragma once
/// \file
/// NumPy-style broadcasting of two shapes: the rule every backend's binary kernels and the
/// ops layer's gradient reductions share.

#include "ltlearn/core/error.hpp"
#include "ltlearn/core/shape.hpp"

#include <algorithm>
#include <cstddef>
#include <vector>

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

/// The dimensions of `g` that sum_to(g, target) sums over (the backward of broadcasting
/// `target` to g's shape); shape_error naming sum_to unless target broadcasts to g.
inline std::vector<bool> sum_to_dims(const shape& g, const shape& target) {
  LTL_CHECK(broadcast_shapes(g, target, "sum_to") == g, shape_error, "sum_to: {} does not broadcast to {}", target, g);
  const int lead = g.size() - target.size();
  std::vector<bool> reduce(static_cast<std::size_t>(g.size()));
  for (int d = 0; d < g.size(); ++d)
    reduce[static_cast<std::size_t>(d)] = d < lead || (target[d - lead] == 1 && g[d] != 1);
  return reduce;
}

}  // namespace ltl
