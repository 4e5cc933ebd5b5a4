#pragma once
/// \file
/// The argument checks of the indexing kernels (index_select, gather, one_hot, lerp_mix,
/// shortcut_a, argmax_matches), written once for every backend: each backend calls these before it touches
/// data, so a bad call gets the same error, with the same message, on every device. Shapes are
/// passed as `shape`s; index values as a host array (a device backend checks its host copy).

#include "ltlearn/core/error.hpp"
#include "ltlearn/core/shape.hpp"

#include <cstdint>

namespace ltl {

namespace detail {
/// Throws value_error unless every element of the host array p[0, n) lies in [0, limit).
/// `what` names the values ("label", "index", "perm entry") in the message.
inline void check_index_range(const std::int64_t* p, index_t n, index_t limit, const char* op, const char* what) {
  for (index_t i = 0; i < n; ++i) {
    LTL_CHECK(p[i] >= 0 && p[i] < limit, value_error, "{}: {} {} at position {} is out of range [0, {})", op, what,
              p[i], i, limit);
  }
}
}  // namespace detail

/// The predicted class of one logit row of `n` scores: the index of the largest, the first one
/// on ties (std::max_element's rule, so a NaN is never chosen unless it is the first score, and
/// then it is). Every top-1 decision of the library, on every device, follows this rule.
template <class T>
[[nodiscard]] index_t row_argmax(const T* row, index_t n) {
  index_t best = 0;
  for (index_t c = 1; c < n; ++c)
    if (row[best] < row[c]) best = c;
  return best;
}

/// argmax_matches: logits [B, C] and labels [B].
inline void check_argmax_matches(const shape& logits, const shape& labels) {
  LTL_CHECK(logits.size() == 2 && labels.size() == 1 && labels[0] == logits[0], shape_error,
            "argmax_matches: logits {} and labels {} must be [B, C] and [B]", logits, labels);
}

/// index_select's indices must be 1-D.
inline void check_index_select(const shape& indices, const char* op) {
  LTL_CHECK(indices.size() == 1, shape_error, "{}: indices must be 1-D, got shape {}", op, indices);
}

/// index_select_backward: 1-D indices [K] and a gradient of x's shape with K along `dim`
/// (`dim` already normalised).
inline void check_index_select_backward(const shape& g, int dim, const shape& indices, const shape& x) {
  check_index_select(indices, "index_select_backward");
  shape gs = x;
  gs[dim] = indices.numel();
  LTL_CHECK(g == gs, shape_error, "index_select_backward: gradient {} does not match {}", g, gs);
}

/// gather: x [N, C] and labels [N].
inline void check_gather(const shape& x, const shape& labels) {
  LTL_CHECK(x.size() == 2 && labels.size() == 1 && labels[0] == x[0], shape_error,
            "gather: expects x [N, C] and labels [N], got {} and {}", x, labels);
}

/// gather_backward: a gradient [N] and labels [N].
inline void check_gather_backward(const shape& g, const shape& labels) {
  LTL_CHECK(g.size() == 1 && labels.size() == 1 && labels[0] == g[0], shape_error,
            "gather_backward: gradient {} does not match labels {}", g, labels);
}

/// one_hot: a contiguous output [labels..., C].
inline void check_one_hot(const shape& out, bool out_contiguous, const shape& labels) {
  LTL_CHECK(out_contiguous && out.size() == labels.size() + 1, shape_error, "one_hot: output {} does not fit labels {}",
            out, labels);
  LTL_CHECK(out.numel() == labels.numel() * out[out.size() - 1], shape_error,
            "one_hot: output {} does not fit labels {}", out, labels);
}

/// lerp_mix: a, b [N, ...] of one shape, lambda [N] and perm [N].
inline void check_lerp_mix(const shape& a, const shape& b, const shape& lambda, const shape& perm) {
  LTL_CHECK(a.size() >= 1 && a == b && lambda.size() == 1 && perm.size() == 1 && lambda[0] == a[0] && perm[0] == a[0],
            shape_error, "lerp_mix: expects a, b [N, ...] of one shape, lambda [N] and perm [N], got {}, {}, {}, {}", a,
            b, lambda, perm);
}

/// lerp_mix_backward (the a side): a gradient [N, ...] and lambda [N].
inline void check_lerp_mix_backward_a(const shape& g, const shape& lambda) {
  LTL_CHECK(g.size() >= 1 && lambda.size() == 1 && lambda[0] == g[0], shape_error,
            "lerp_mix_backward: gradient {} does not match lambda {}", g, lambda);
}

/// lerp_mix_backward (the b side): a gradient [N, ...], lambda [N] and perm [N].
inline void check_lerp_mix_backward_b(const shape& g, const shape& lambda, const shape& perm) {
  LTL_CHECK(g.size() >= 1 && lambda.size() == 1 && perm.size() == 1 && lambda[0] == g[0] && perm[0] == g[0],
            shape_error, "lerp_mix_backward: gradient {} does not match lambda {} and perm {}", g, lambda, perm);
}

/// shortcut_a: x [N, C, H, W] to out_channels ≥ C (an even difference) with stride ≥ 1.
inline void check_shortcut_a(const shape& x, index_t out_channels, index_t stride) {
  LTL_CHECK(x.size() == 4, shape_error, "shortcut_a: expects x [N, C, H, W], got {}", x);
  const index_t cin = x[1];
  LTL_CHECK(stride >= 1 && out_channels >= cin && (out_channels - cin) % 2 == 0, shape_error,
            "shortcut_a: cannot map input {} to {} channels with stride {} (needs stride >= 1 and an even, "
            "non-negative channel difference)",
            x, out_channels, stride);
}

/// shortcut_a_backward: a gradient of shortcut_a's output shape for input x and `stride`.
inline void check_shortcut_a_backward(const shape& g, const shape& x, index_t stride) {
  LTL_CHECK(x.size() == 4 && g.size() == 4 && g[0] == x[0] && stride >= 1 && g[2] == (x[2] + stride - 1) / stride &&
                g[3] == (x[3] + stride - 1) / stride && g[1] >= x[1] && (g[1] - x[1]) % 2 == 0,
            shape_error, "shortcut_a_backward: gradient {} does not match input {} with stride {}", g, x, stride);
}

}  // namespace ltl
