#pragma once
/// \file
/// The device-neutral part of 2-D convolution that every backend shares: the options (PyTorch's
/// Conv2d arguments plus a forced kernel), the validated geometry, and the shape checks.
///
/// Shapes: x [N, Cin, H, W], weight [Cout, Cin/groups, KH, KW], bias [Cout] or undefined,
/// y [N, Cout, Ho, Wo] with Ho = (H + 2·ph − dh·(KH − 1) − 1) / sh + 1 (and likewise Wo).

#include "ltlearn/core/error.hpp"
#include "ltlearn/core/shape.hpp"

#include <string_view>

namespace ltl {

/// A (height, width) pair of integers. A single integer sets both: `.stride = 2`, `.padding = {1, 0}`.
struct pair2d {
  index_t h = 0;  ///< along the height
  index_t w = 0;  ///< along the width
  constexpr pair2d() = default;
  constexpr pair2d(index_t both) noexcept : h(both), w(both) {}  // NOLINT(google-explicit-constructor)
  constexpr pair2d(index_t h_, index_t w_) noexcept : h(h_), w(w_) {}
  friend constexpr bool operator==(const pair2d&, const pair2d&) = default;
};

/// The kernel that computes a convolution pass. `automatic` lets the backend choose by geometry
/// (the CPU backend: cpu::select_forward_algorithm and its siblings); any other value forces
/// that kernel, and a backend that does not have it, or cannot apply it to the geometry, throws
/// value_error instead of falling back. The forms are the CPU backend's (backends/cpu/conv/).
enum class conv2d_algorithm {
  automatic,                  ///< the backend's choice for the geometry and pass
  im2col_gemm,                ///< column matrix + GEMM: any geometry
  direct3x3,                  ///< row-vectorised direct 3×3, stride 1, padding 1
  channel_vectorised3x3,      ///< direct 3×3 with output channels as vector lanes, stride 1 or 2, padding 1
  winograd_f2_channels_last,  ///< Winograd F(2×2, 3×3), channels as lanes (channels in multiples of 16)
  winograd_f2_planar,         ///< Winograd F(2×2, 3×3), tiles as lanes
  winograd_f2_sample_lane,    ///< Winograd F(2×2, 3×3), 16 samples as lanes
  winograd_f4_sample_lane,    ///< Winograd F(4×4, 3×3), 16 samples as lanes
};

/// The algorithm's name as written in the enum (for messages and benchmark flags).
constexpr std::string_view to_string(conv2d_algorithm a) noexcept {
  switch (a) {
    case conv2d_algorithm::automatic: return "automatic";
    case conv2d_algorithm::im2col_gemm: return "im2col_gemm";
    case conv2d_algorithm::direct3x3: return "direct3x3";
    case conv2d_algorithm::channel_vectorised3x3: return "channel_vectorised3x3";
    case conv2d_algorithm::winograd_f2_channels_last: return "winograd_f2_channels_last";
    case conv2d_algorithm::winograd_f2_planar: return "winograd_f2_planar";
    case conv2d_algorithm::winograd_f2_sample_lane: return "winograd_f2_sample_lane";
    case conv2d_algorithm::winograd_f4_sample_lane: return "winograd_f4_sample_lane";
  }
  return "unknown";
}

/// Every value of conv2d_algorithm, `automatic` first.
inline constexpr conv2d_algorithm all_conv2d_algorithms[] = {
    conv2d_algorithm::automatic,
    conv2d_algorithm::im2col_gemm,
    conv2d_algorithm::direct3x3,
    conv2d_algorithm::channel_vectorised3x3,
    conv2d_algorithm::winograd_f2_channels_last,
    conv2d_algorithm::winograd_f2_planar,
    conv2d_algorithm::winograd_f2_sample_lane,
    conv2d_algorithm::winograd_f4_sample_lane,
};

/// The algorithm named `name` (as to_string writes it); throws value_error for an unknown name.
inline conv2d_algorithm parse_conv2d_algorithm(std::string_view name) {
  for (conv2d_algorithm a : all_conv2d_algorithms)
    if (to_string(a) == name) return a;
  LTL_CHECK(false, value_error, "conv2d: unknown algorithm '{}'", name);
  return conv2d_algorithm::automatic;
}

/// The three passes of a convolution, each with its own kernel choice.
enum class conv2d_pass { forward, backward_input, backward_weight };

/// The pass's name, for messages.
constexpr std::string_view to_string(conv2d_pass p) noexcept {
  switch (p) {
    case conv2d_pass::forward: return "forward pass";
    case conv2d_pass::backward_input: return "input gradient";
    case conv2d_pass::backward_weight: return "weight gradient";
  }
  return "unknown";
}

/// Hyper-parameters of conv2d (PyTorch's Conv2d arguments): `conv2d_options{.stride = 2, .padding = 1}`.
struct conv2d_options {
  pair2d stride = 1;    ///< step between receptive fields (≥ 1)
  pair2d padding = 0;   ///< implicit zeros on each side (≥ 0)
  pair2d dilation = 1;  ///< spacing between kernel taps (≥ 1)
  index_t groups = 1;   ///< channel groups; Cin and Cout must both be divisible by it
  /// The kernel for every pass: `automatic` (the backend's choice), or one forced — for tests
  /// and benchmarks that must reach a particular kernel; a forced kernel that cannot compute
  /// the geometry throws value_error.
  conv2d_algorithm algorithm = conv2d_algorithm::automatic;
};

/// Sizes of one convolution, validated: what every backend kernel needs.
struct conv2d_geometry {
  index_t n, cin, h, w;  ///< input [N, Cin, H, W]
  index_t cout, kh, kw;  ///< weight [Cout, Cin/groups, KH, KW]
  index_t ho, wo;        ///< output spatial size
  index_t groups;
  pair2d stride, padding, dilation;

  [[nodiscard]] index_t cin_per_group() const noexcept { return cin / groups; }
  [[nodiscard]] index_t cout_per_group() const noexcept { return cout / groups; }
  /// Rows of the column matrix: Cin/groups · KH · KW.
  [[nodiscard]] index_t col_rows() const noexcept { return cin_per_group() * kh * kw; }
  [[nodiscard]] index_t out_plane() const noexcept { return ho * wo; }
  [[nodiscard]] shape output_shape() const { return shape{n, cout, ho, wo}; }
  /// True when the column matrix is the input itself (1×1 kernel, stride 1, no padding).
  [[nodiscard]] bool pointwise() const noexcept {
    return kh == 1 && kw == 1 && stride == pair2d(1) && padding == pair2d(0);
  }
};

/// Validates conv2d's input and weight shapes and options; throws shape_error naming conv2d.
inline conv2d_geometry make_conv2d_geometry(const shape& x, const shape& w, const conv2d_options& opt) {
  LTL_CHECK(x.size() == 4, shape_error, "conv2d: input must be [N, C, H, W], got {} (weight {})", x, w);
  LTL_CHECK(w.size() == 4, shape_error, "conv2d: weight must be [Cout, Cin/groups, KH, KW], got {} (input {})", w, x);
  LTL_CHECK(opt.stride.h >= 1 && opt.stride.w >= 1 && opt.padding.h >= 0 && opt.padding.w >= 0 && opt.dilation.h >= 1 &&
                opt.dilation.w >= 1,
            shape_error, "conv2d: invalid stride ({}, {}), padding ({}, {}) or dilation ({}, {}) for input {}",
            opt.stride.h, opt.stride.w, opt.padding.h, opt.padding.w, opt.dilation.h, opt.dilation.w, x);
  LTL_CHECK(opt.groups >= 1, shape_error, "conv2d: groups must be >= 1, got {} (input {}, weight {})", opt.groups, x,
            w);
  LTL_CHECK(x[1] % opt.groups == 0, shape_error, "conv2d: input channels of {} are not divisible by groups = {}", x,
            opt.groups);
  LTL_CHECK(w[0] % opt.groups == 0, shape_error,
            "conv2d: output channels of weight {} are not divisible by groups = {}", w, opt.groups);
  LTL_CHECK(w[1] * opt.groups == x[1], shape_error,
            "conv2d: weight {} expects {} input channels per group, but input {} has {} channels in {} group(s)", w,
            w[1], x, x[1], opt.groups);
  LTL_CHECK(w[2] >= 1 && w[3] >= 1, shape_error, "conv2d: empty kernel in weight {}", w);
  conv2d_geometry g{};
  g.n = x[0], g.cin = x[1], g.h = x[2], g.w = x[3];
  g.cout = w[0], g.kh = w[2], g.kw = w[3];
  g.groups = opt.groups;
  g.stride = opt.stride, g.padding = opt.padding, g.dilation = opt.dilation;
  const index_t eff_h = opt.dilation.h * (g.kh - 1) + 1, eff_w = opt.dilation.w * (g.kw - 1) + 1;
  const index_t span_h = g.h + 2 * opt.padding.h - eff_h, span_w = g.w + 2 * opt.padding.w - eff_w;
  LTL_CHECK(span_h >= 0 && span_w >= 0, shape_error,
            "conv2d: kernel {}x{} (dilation ({}, {})) does not fit input {} padded by ({}, {}): output would be empty",
            g.kh, g.kw, opt.dilation.h, opt.dilation.w, x, opt.padding.h, opt.padding.w);
  g.ho = span_h / opt.stride.h + 1;
  g.wo = span_w / opt.stride.w + 1;
  return g;
}

/// Validates conv2d's bias shape ([Cout]) against the weight.
inline void check_conv2d_bias(const shape& bias, const shape& w) {
  LTL_CHECK(bias.size() == 1 && w.size() >= 1 && bias[0] == w[0], shape_error,
            "conv2d: bias {} does not match weight {} (expects [Cout])", bias, w);
}

/// Validates the optional operands of conv2d's fused epilogue (null: not given): shift as a
/// bias, scale [Cout], residual of the output's shape.
inline void check_conv2d_epilogue(const conv2d_geometry& g, const shape& w, const shape* scale, const shape* shift,
                                  const shape* residual) {
  if (shift) check_conv2d_bias(*shift, w);
  LTL_CHECK(!scale || (scale->size() == 1 && (*scale)[0] == w[0]), shape_error,
            "conv2d: epilogue scale {} does not match weight {} (expects [Cout])", scale ? *scale : shape{}, w);
  LTL_CHECK(!residual || *residual == g.output_shape(), shape_error, "conv2d: residual {} does not match the output {}",
            residual ? *residual : shape{}, g.output_shape());
}

/// The output gradient of conv2d's backward passes must have the output's shape.
inline void check_conv2d_output_grad(const shape& dy, const conv2d_geometry& g) {
  LTL_CHECK(dy == g.output_shape(), shape_error, "conv2d_backward: output gradient {} does not match the output shape {}",
            dy, g.output_shape());
}

/// conv2d_backward_bias's output gradient must be [N, Cout, Ho, Wo].
inline void check_conv2d_bias_grad(const shape& dy) {
  LTL_CHECK(dy.size() == 4, shape_error, "conv2d_backward: output gradient must be [N, Cout, Ho, Wo], got {}", dy);
}

}  // namespace ltl

/// Formats a geometry for messages: "input [N, Cin, H, W], weight [Cout, Cin/groups, KH, KW],
/// stride (sh, sw), padding (ph, pw), dilation (dh, dw), groups g".
template <>
struct fmt::formatter<ltl::conv2d_geometry> {
  constexpr auto parse(fmt::format_parse_context& ctx) { return ctx.begin(); }
  template <class Ctx>
  auto format(const ltl::conv2d_geometry& g, Ctx& ctx) const {
    return fmt::format_to(ctx.out(),
                          "input [{}, {}, {}, {}], weight [{}, {}, {}, {}], stride ({}, {}), padding ({}, {}), "
                          "dilation ({}, {}), groups {}",
                          g.n, g.cin, g.h, g.w, g.cout, g.cin / g.groups, g.kh, g.kw, g.stride.h, g.stride.w,
                          g.padding.h, g.padding.w, g.dilation.h, g.dilation.w, g.groups);
  }
};
