#pragma once
/// \file
/// The CPU convolution's algorithm table: which kernel of conv/ computes each pass of a
/// geometry. One selection function per pass (select_forward_algorithm,
/// select_backward_input_algorithm, select_backward_weight_algorithm) whose thresholds are the
/// named constants of conv_thresholds, and supports(), which says whether a kernel can compute
/// a geometry at all — what a forced conv2d_options::algorithm is checked against.
/// The thresholds are measurements on ResNet layers at batch 128; benchmarks/README.md ("Conv
/// algorithm selection") lists them. Only float has the Winograd forms.

#include "ltlearn/backends/contract/conv.hpp"
#include "ltlearn/backends/cpu/conv/channel_vectorised.hpp"
#include "ltlearn/backends/cpu/conv/winograd_planar.hpp"

#include <algorithm>
#include <optional>
#include <type_traits>

namespace ltl::cpu {

/// Where each 3×3 kernel takes over (benchmarks/README.md, "Conv algorithm selection", has
/// the measurements behind every value).
namespace conv_thresholds {
/// The channel-vectorised kernel computes stride-1 forward passes and input gradients on output
/// planes up to this size: the row kernel's padded grid wastes 22–25 % of each vector on 7×7
/// and 8×8 planes.
inline constexpr index_t channel_vectorised_max_plane = 100;
/// ... and stride-1 weight gradients up to this size (it needs no horizontal sums), from two
/// vectors of output channels (detail::channel_vectorised3x3::wide_rows).
inline constexpr index_t channel_vectorised_weight_grad_max_plane = 1024;
/// Channels-last F(2×2): from this many channels in and out, on planes up to the next value.
inline constexpr index_t winograd_channels_last_min_channels = 64;
inline constexpr index_t winograd_channels_last_max_plane = 1024;
/// The planar and sample-lane forms: from this many channels in and out (below the
/// channels-last form's minimum).
inline constexpr index_t winograd_narrow_min_channels = 16;
/// The planar form: where its lane groups are at least this full (16×16, 32×32, …).
inline constexpr double winograd_planar_min_lane_use = 0.95;
/// The sample-lane forms need two blocks of 16 samples, so that both threads have one.
inline constexpr index_t winograd_sample_lane_min_samples = 32;
/// Sample-lane F(2×2) forward: from this many channels in and out on any plane, or with fewer
/// on planes up to winograd_sample_lane_narrow_max_plane.
inline constexpr index_t winograd_sample_lane_wide_channels = 32;
inline constexpr index_t winograd_sample_lane_narrow_max_plane = 256;
/// Sample-lane F(4×4): up to this many channels in and out (at this many only on planes its
/// 4×4 tiles cover as tightly as 2×2 tiles), on planes of 16 values up to the next value.
inline constexpr index_t winograd_f4_max_channels = 64;
inline constexpr index_t winograd_f4_max_plane = 784;
/// Sample-lane F(4×4) weight gradient: planes up to this size; on loose-tiled planes only
/// below winograd_f4_weight_grad_loose_max_channels channels.
inline constexpr index_t winograd_f4_weight_grad_max_plane = 1024;
inline constexpr index_t winograd_f4_weight_grad_loose_max_channels = 32;
/// Sample-lane F(2×2) weight gradient: from this many channels in and out (below the
/// channels-last minimum), on planes above channel_vectorised_max_plane.
inline constexpr index_t winograd_f2_weight_grad_min_channels = 32;
}  // namespace conv_thresholds

namespace conv_geometry_traits {

/// A 3×3, padding-1, undilated, ungrouped convolution (any stride).
inline bool padded3x3(const conv2d_geometry& g) noexcept {
  return g.kh == 3 && g.kw == 3 && g.padding == pair2d(1) && g.dilation == pair2d(1) && g.groups == 1;
}
/// The "same" 3×3 convolution (padded3x3 at stride 1) of the direct and Winograd kernels.
inline bool same3x3(const conv2d_geometry& g) noexcept { return padded3x3(g) && g.stride == pair2d(1); }
/// True when 4×4 tiles cover the output plane as tightly as 2×2 tiles (no extra rows or
/// columns computed for F(4×4) beyond F(2×2)'s).
inline bool f4_tiles_tight(const conv2d_geometry& g) noexcept {
  const auto tight = [](index_t e) { return (e + 3) / 4 * 4 == (e + 1) / 2 * 2; };
  return tight(g.ho) && tight(g.wo);
}

}  // namespace conv_geometry_traits

/// The Winograd form for a float "same" 3×3 layer's forward pass and input gradient (the
/// adjoint is the same convolution), or none where none is faster than the direct kernels.
inline std::optional<conv2d_algorithm> select_winograd_form(const conv2d_geometry& g) {
  namespace th = conv_thresholds;
  if (!conv_geometry_traits::same3x3(g)) return std::nullopt;
  const index_t plane = g.out_plane(), lo = std::min(g.cin, g.cout), hi = std::max(g.cin, g.cout);
  const bool sample_blocks = g.n >= th::winograd_sample_lane_min_samples;
  if (lo >= th::winograd_narrow_min_channels && hi <= th::winograd_f4_max_channels && plane >= 16 &&
      plane <= th::winograd_f4_max_plane && sample_blocks &&
      (hi < th::winograd_f4_max_channels || conv_geometry_traits::f4_tiles_tight(g)))
    return conv2d_algorithm::winograd_f4_sample_lane;
  if (lo >= th::winograd_channels_last_min_channels && plane <= th::winograd_channels_last_max_plane &&
      g.cin % 16 == 0 && g.cout % 16 == 0)
    return conv2d_algorithm::winograd_f2_channels_last;
  if (lo < th::winograd_narrow_min_channels || hi >= th::winograd_channels_last_min_channels ||
      plane <= th::channel_vectorised_max_plane)
    return std::nullopt;
  if (ltl::detail::winograd::planar::lane_use(g.ho, g.wo) >= th::winograd_planar_min_lane_use)
    return conv2d_algorithm::winograd_f2_planar;
  if ((lo >= th::winograd_sample_lane_wide_channels || plane <= th::winograd_sample_lane_narrow_max_plane) &&
      sample_blocks)
    return conv2d_algorithm::winograd_f2_sample_lane;
  return std::nullopt;
}

/// The kernel that computes the forward pass of g in element type T.
template <class T>
conv2d_algorithm select_forward_algorithm(const conv2d_geometry& g) {
  using namespace conv_geometry_traits;
  if constexpr (std::is_same_v<T, float>) {
    if (const auto form = select_winograd_form(g)) return *form;
  }
  if (padded3x3(g) && (g.stride == pair2d(2) || (g.stride == pair2d(1) &&
                                                  g.out_plane() <= conv_thresholds::channel_vectorised_max_plane)))
    return conv2d_algorithm::channel_vectorised3x3;
  if (same3x3(g)) return conv2d_algorithm::direct3x3;
  return conv2d_algorithm::im2col_gemm;
}

/// The kernel that computes the input gradient of g in element type T.
template <class T>
conv2d_algorithm select_backward_input_algorithm(const conv2d_geometry& g) {
  using namespace conv_geometry_traits;
  // At stride 2 the channel-vectorised kernel pays from two vectors of input channels; below,
  // im2col + GEMM + col2im stays (the row kernel serves stride 1 only).
  if (padded3x3(g) && g.stride == pair2d(2) && ltl::detail::channel_vectorised3x3::wide_rows<T>(g.cin))
    return conv2d_algorithm::channel_vectorised3x3;
  if constexpr (std::is_same_v<T, float>) {
    if (const auto form = select_winograd_form(g)) return *form;
  }
  if (same3x3(g) && g.out_plane() <= conv_thresholds::channel_vectorised_max_plane)
    return conv2d_algorithm::channel_vectorised3x3;
  if (same3x3(g)) return conv2d_algorithm::direct3x3;
  return conv2d_algorithm::im2col_gemm;
}

/// The kernel that computes the weight gradient of g in element type T.
template <class T>
conv2d_algorithm select_backward_weight_algorithm(const conv2d_geometry& g) {
  using namespace conv_geometry_traits;
  namespace th = conv_thresholds;
  if constexpr (std::is_same_v<T, float>) {
    const index_t plane = g.out_plane(), lo = std::min(g.cin, g.cout), hi = std::max(g.cin, g.cout);
    if (same3x3(g) && g.n >= th::winograd_sample_lane_min_samples && g.cout % 16 == 0 &&
        lo >= th::winograd_narrow_min_channels && hi <= th::winograd_f4_max_channels) {
      if (plane >= 16 && plane <= th::winograd_f4_weight_grad_max_plane &&
          (f4_tiles_tight(g) || hi < th::winograd_f4_weight_grad_loose_max_channels))
        return conv2d_algorithm::winograd_f4_sample_lane;
      if (plane > th::channel_vectorised_max_plane && lo >= th::winograd_f2_weight_grad_min_channels &&
          hi < th::winograd_channels_last_min_channels)
        return conv2d_algorithm::winograd_f2_sample_lane;
    }
  }
  if (padded3x3(g) &&
      (g.stride == pair2d(2) ||
       (g.stride == pair2d(1) && g.out_plane() <= th::channel_vectorised_weight_grad_max_plane &&
        ltl::detail::channel_vectorised3x3::wide_rows<T>(g.cout))))
    return conv2d_algorithm::channel_vectorised3x3;
  if (same3x3(g)) return conv2d_algorithm::direct3x3;
  return conv2d_algorithm::im2col_gemm;
}

/// The kernel the automatic choice gives for `pass`.
template <class T>
conv2d_algorithm select_algorithm(conv2d_pass pass, const conv2d_geometry& g) {
  switch (pass) {
    case conv2d_pass::forward: return select_forward_algorithm<T>(g);
    case conv2d_pass::backward_input: return select_backward_input_algorithm<T>(g);
    case conv2d_pass::backward_weight: return select_backward_weight_algorithm<T>(g);
  }
  return conv2d_algorithm::im2col_gemm;
}

/// Whether kernel `a` can compute `pass` of g in element type T (whatever its speed), and if
/// not, why (for the error message); `automatic` always can.
template <class T>
const char* unsupported_reason(conv2d_algorithm a, conv2d_pass pass, const conv2d_geometry& g) {
  using namespace conv_geometry_traits;
  constexpr bool is_float = std::is_same_v<T, float>;
  const bool winograd = a == conv2d_algorithm::winograd_f2_channels_last || a == conv2d_algorithm::winograd_f2_planar ||
                        a == conv2d_algorithm::winograd_f2_sample_lane || a == conv2d_algorithm::winograd_f4_sample_lane;
  if (winograd && !is_float) return "the Winograd kernels are float only";
  switch (a) {
    case conv2d_algorithm::automatic:
    case conv2d_algorithm::im2col_gemm: return nullptr;
    case conv2d_algorithm::direct3x3:
      return same3x3(g) ? nullptr : "it needs a 3x3 kernel, stride 1, padding 1, no dilation and no groups";
    case conv2d_algorithm::channel_vectorised3x3:
      return padded3x3(g) && (g.stride == pair2d(1) || g.stride == pair2d(2))
                 ? nullptr
                 : "it needs a 3x3 kernel, stride 1 or 2, padding 1, no dilation and no groups";
    default: break;
  }
  if (!same3x3(g)) return "Winograd needs a 3x3 kernel, stride 1, padding 1, no dilation and no groups";
  if (a == conv2d_algorithm::winograd_f2_channels_last || a == conv2d_algorithm::winograd_f2_planar) {
    if (pass == conv2d_pass::backward_weight) return "it has no weight-gradient kernel";
    if (a == conv2d_algorithm::winograd_f2_channels_last && (g.cin % 16 != 0 || g.cout % 16 != 0))
      return "it needs input and output channels in multiples of 16";
    return nullptr;
  }
  if (g.h * g.w < 16) return "the sample-lane form needs planes of at least 16 values";
  if (pass == conv2d_pass::backward_weight && g.cout % 16 != 0)
    return "its weight gradient needs output channels in multiples of 16";
  return nullptr;
}

/// The kernel that computes `pass` of g: the automatic choice, or `requested` if it can;
/// throws value_error naming the kernel, the pass and the geometry if a forced kernel cannot.
template <class T>
conv2d_algorithm resolve_algorithm(conv2d_algorithm requested, conv2d_pass pass, const conv2d_geometry& g) {
  if (requested == conv2d_algorithm::automatic) return select_algorithm<T>(pass, g);
  const char* why = unsupported_reason<T>(requested, pass, g);
  constexpr const char* element = std::is_same_v<T, float>    ? "float"
                                  : std::is_same_v<T, double> ? "double"
                                                              : "this element type";
  LTL_CHECK(why == nullptr, value_error, "conv2d: algorithm {} cannot compute the {} of {} in {}: {}",
            to_string(requested), to_string(pass), g, element, why ? why : "");
  return requested;
}

}  // namespace ltl::cpu
