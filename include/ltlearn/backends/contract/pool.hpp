#pragma once
/// \file
/// The device-neutral part of 2-D pooling: options, validated geometry and the result type of
/// max pooling's forward kernel, which every backend shares. Shapes: x [N, C, H, W] →
/// [N, C, Ho, Wo] with Ho = (H + 2·ph − KH) / sh + 1 (floor mode).

// pair2d: from backends/contract/conv.hpp once the conv branch has moved the conv types there
// (until then they live in the CPU conv header).
#include "ltlearn/backends/contract/conv.hpp"
#include "ltlearn/core/error.hpp"
#include "ltlearn/core/shape.hpp"
#include "ltlearn/tensor/tensor.hpp"

#include <cstdint>

namespace ltl {

/// Options of max_pool2d / avg_pool2d: `pool2d_options{.kernel = 3, .stride = 2, .padding = 1}`.
struct pool2d_options {
  pair2d kernel = 1;   ///< window size (≥ 1)
  pair2d stride = 0;   ///< step between windows; 0 (the default) means the kernel size
  pair2d padding = 0;  ///< implicit padding on each side, at most half the kernel
};

/// Sizes of one pooling, validated.
struct pool2d_geometry {
  index_t n, c, h, w;  ///< input [N, C, H, W]
  index_t ho, wo;      ///< output spatial size
  pair2d kernel, stride, padding;
  [[nodiscard]] shape output_shape() const { return shape{n, c, ho, wo}; }
};

/// Validates a pooling of input `x` with `opt`; `op` names the caller in errors.
inline pool2d_geometry make_pool2d_geometry(const shape& x, const pool2d_options& opt, const char* op) {
  LTL_CHECK(x.size() == 4, shape_error, "{}: input must be [N, C, H, W], got {}", op, x);
  const pair2d k = opt.kernel, p = opt.padding;
  const pair2d s{opt.stride.h == 0 ? k.h : opt.stride.h, opt.stride.w == 0 ? k.w : opt.stride.w};
  LTL_CHECK(k.h >= 1 && k.w >= 1 && s.h >= 1 && s.w >= 1, shape_error,
            "{}: kernel ({}, {}) and stride ({}, {}) must be >= 1 (input {})", op, k.h, k.w, s.h, s.w, x);
  // Larger padding would create windows that see only padding.
  LTL_CHECK(p.h >= 0 && p.w >= 0 && 2 * p.h <= k.h && 2 * p.w <= k.w, shape_error,
            "{}: padding ({}, {}) must be between 0 and half the kernel ({}, {}) (input {})", op, p.h, p.w, k.h, k.w,
            x);
  const index_t span_h = x[2] + 2 * p.h - k.h, span_w = x[3] + 2 * p.w - k.w;
  LTL_CHECK(span_h >= 0 && span_w >= 0, shape_error,
            "{}: kernel ({}, {}) does not fit input {} padded by ({}, {}): output would be empty", op, k.h, k.w, x, p.h,
            p.w);
  return pool2d_geometry{x[0], x[1], x[2], x[3], span_h / s.h + 1, span_w / s.w + 1, k, s, p};
}

/// Forward result of max_pool2d: output and, per output element, the argmax within its plane.
template <class T, class D>
struct max_pool2d_result {
  tensor<T, D> y;                   ///< [N, C, Ho, Wo]
  tensor<std::int64_t, D> indices;  ///< [N, C, Ho, Wo], index ih·W + iw into the input plane
};

// ---- the argument checks every backend's pooling kernels make (one text for all of them) -------

/// max_pool2d_backward: dy [N, C, Ho, Wo] and the saved indices of one shape, N and C of x.
inline void check_max_pool2d_backward(const shape& dy, const shape& indices, const shape& x) {
  LTL_CHECK(x.size() == 4 && dy.size() == 4 && dy == indices && dy[0] == x[0] && dy[1] == x[1], shape_error,
            "max_pool2d_backward: gradient {} and indices {} do not match input {}", dy, indices, x);
}

/// avg_pool2d_backward: dy must have the output's shape.
inline void check_avg_pool2d_backward(const shape& dy, const pool2d_geometry& g) {
  LTL_CHECK(dy == g.output_shape(), shape_error,
            "avg_pool2d_backward: output gradient {} does not match the output shape {}", dy, g.output_shape());
}

/// global_avg_pool: a non-empty x [N, C, H, W] (H·W > 0).
inline void check_global_avg_pool(const shape& x) {
  LTL_CHECK(x.size() == 4 && x[2] * x[3] > 0, shape_error, "global_avg_pool: input must be a non-empty [N, C, H, W], got {}",
            x);
}

/// global_avg_pool_backward: dy [N, C] for x [N, C, H, W].
inline void check_global_avg_pool_backward(const shape& dy, const shape& x) {
  LTL_CHECK(x.size() == 4 && dy == (shape{x[0], x[1]}), shape_error,
            "global_avg_pool_backward: output gradient {} does not match input {}", dy, x);
}

}  // namespace ltl
