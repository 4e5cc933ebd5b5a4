#pragma once
/// \file
/// The argument checks of the softmax-family kernels (softmax, log-softmax, L2 normalisation
/// along one dimension), written once for every backend so that a bad call gets the same
/// error, with the same message, on every device.

#include "ltlearn/core/error.hpp"
#include "ltlearn/core/shape.hpp"

namespace ltl {

/// A backward's gradient g must have the shape of the forward output y it pairs with; `op`
/// names the backward in the message.
inline void check_softmax_grad(const shape& g, const shape& y, const char* op) {
  LTL_CHECK(g == y, shape_error, "{}: gradient {} does not match output {}", op, g, y);
}

/// l2_normalize_backward: one saved norm per line of y along `dim` (`lines` of them).
inline void check_l2_normalize_norms(index_t norms, index_t lines, const shape& y, int dim) {
  LTL_CHECK(norms == lines, shape_error, "l2_normalize_backward: {} norms for output {} along dim {}", norms, y, dim);
}

}  // namespace ltl
