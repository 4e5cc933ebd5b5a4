#pragma once
/// \file
/// 2-D convolution on the CPU by im2col + GEMM, and the device-neutral convolution parameters.
///
/// Shapes: x [N, Cin, H, W], weight [Cout, Cin/groups, KH, KW], bias [Cout] or undefined,
/// y [N, Cout, Ho, Wo] with Ho = (H + 2·ph − dh·(KH − 1) − 1) / sh + 1 (and likewise Wo).
///
/// Per sample and group, the receptive fields are unrolled into a column matrix
/// col [Cin/groups · KH · KW, Ho · Wo] and the group's output is W_g [Cout/groups, K] · col.
/// Samples are spread over the OpenMP team with one column buffer per thread (taken from the
/// caching allocator, so steady-state training allocates nothing); with a single sample the
/// loop stays serial and Eigen parallelises the GEMM itself. 1×1 stride-1 unpadded
/// convolutions use the input plane as the column matrix directly, and 3×3 stride-1 padding-1
/// ungrouped ones (most of a ResNet) run the direct kernels of conv3x3.hpp instead; those with
/// small output planes, and 3×3 stride-2 padding-1 ones, the channel-vectorised kernels of
/// conv3x3_cv.hpp (forward, input and weight gradients).

#include "ltlearn/backends/cpu/conv3x3.hpp"
#include "ltlearn/backends/cpu/conv3x3_cv.hpp"
#include "ltlearn/backends/cpu/gemm.hpp"
#include "ltlearn/backends/cpu/reduce.hpp"
#include "ltlearn/backends/cpu/winograd.hpp"

#include <type_traits>
#include <vector>

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

/// Hyper-parameters of conv2d (PyTorch's Conv2d arguments): `conv2d_options{.stride = 2, .padding = 1}`.
struct conv2d_options {
  pair2d stride = 1;    ///< step between receptive fields (≥ 1)
  pair2d padding = 0;   ///< implicit zeros on each side (≥ 0)
  pair2d dilation = 1;  ///< spacing between kernel taps (≥ 1)
  index_t groups = 1;   ///< channel groups; Cin and Cout must both be divisible by it
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
  /// True for the "same" 3×3 convolution the direct kernels handle (stride 1, padding 1).
  [[nodiscard]] bool direct3x3() const noexcept { return padded3x3() && stride == pair2d(1); }
  /// A 3×3, padding-1, undilated, ungrouped convolution (any stride).
  [[nodiscard]] bool padded3x3() const noexcept {
    return kh == 3 && kw == 3 && padding == pair2d(1) && dilation == pair2d(1) && groups == 1;
  }
  /// Output planes up to this size run the channel-vectorised kernel even at stride 1: the row
  /// kernel's padded grid wastes 22–25 % of each vector on 7×7 and 8×8 planes (benchmarks/).
  static constexpr index_t cv_max_plane = 100;
  /// The channel-vectorised weight gradient needs no horizontal sums and wins on larger planes
  /// (from two vectors of output channels at stride 1: see conv3x3_cv::wide_rows).
  static constexpr index_t cv_wgrad_max_plane = 1024;
  /// True when the channel-vectorised kernel computes the forward pass: a 3×3, padding-1,
  /// ungrouped convolution at stride 2, or at stride 1 with a small output plane.
  [[nodiscard]] bool direct3x3_cv() const noexcept {
    return padded3x3() && (stride == pair2d(2) || (stride == pair2d(1) && ho * wo <= cv_max_plane));
  }
  /// Winograd F(2×2, 3×3) (backends/cpu/winograd.hpp, float) serves stride-1 layers from this
  /// many channels in and out on planes up to winograd_max_plane (measured: 64→64 at 8×8
  /// 1.4× the channel-vectorised kernel, at 16×16 and 32×32 1.33× and 1.19× the row kernel,
  /// 128→128 at 16×16 1.4×); the 16- and 32-channel layers measured no faster (their products
  /// are too short to hide the transforms), larger planes were not measured.
  static constexpr index_t winograd_min_channels = 64;
  static constexpr index_t winograd_max_plane = 1024;
  [[nodiscard]] bool winograd3x3() const noexcept {
    return direct3x3() && !winograd3x3_f4() && ho * wo <= winograd_max_plane && cin >= winograd_min_channels &&
           cout >= winograd_min_channels && cin % 16 == 0 && cout % 16 == 0;
  }
  /// Winograd F(4×4, 3×3) in sample-lane form (winograd::run_batched<4>: 36 products per 16
  /// outputs instead of F(2×2)'s 64) serves the stride-1 layers with 16 to 64 channels in and
  /// out on planes from 4×4 to 28×28 with two blocks of 16 samples, ahead of every other kernel:
  /// batch 128, forward, measured 1.18× (16→16 at 28×28, row kernel), 1.44× (24→24 at 28×28),
  /// 1.07× (32→32 at 14×14, F(2×2) sample-lane), 1.17× (32→32 at 16×16, planar), 1.08–1.10×
  /// (64→64 at 7×7, 8×8, channels-last F(2×2)), 2.5× (16→16 at 7×7, channel-vectorised). At
  /// 64 channels it needs planes its 4×4 tiles cover as tightly as 2×2 tiles (64→64 at 14×14,
  /// 16×16 computed for 14×14: 0.94×); at 32×32 it ties with the planar form (0.96×). Its
  /// round-off is ~10× F(2×2)'s (about 4·10⁻⁶ of the largest output at 16–64 channels).
  /// True when 4×4 tiles cover the output plane as tightly as 2×2 tiles (no extra rows or
  /// columns computed for F(4×4) beyond F(2×2)'s).
  [[nodiscard]] bool f4_tiles_tight() const noexcept {
    const auto tight = [](index_t e) { return (e + 3) / 4 * 4 == (e + 1) / 2 * 2; };
    return tight(ho) && tight(wo);
  }
  static constexpr index_t winograd_f4_max_channels = 64;
  static constexpr index_t winograd_f4_max_plane = 784;
  [[nodiscard]] bool winograd3x3_f4() const noexcept {
    return direct3x3() && cin >= 16 && cout >= 16 && cin <= winograd_f4_max_channels &&
           cout <= winograd_f4_max_channels && ho * wo >= 16 && ho * wo <= winograd_f4_max_plane &&
           n >= winograd_batched_min_samples &&
           (std::max(cin, cout) < winograd_f4_max_channels || f4_tiles_tight());
  }
  /// Winograd's planar form (tiles as vector lanes, any channel count) serves the stride-1
  /// layers with 16 to 63 channels in and out on planes whose tiles fill its lane groups
  /// (16×16, 32×32, …): measured 1.2× (16→16 at 32×32) and 1.23–1.26× (32→32 at 16×16) the row
  /// kernel; 28×28 and 14×14 planes, which leave 1/8 and 1/4 of the lanes empty, measured
  /// 1.0× and 0.95×, and the channels-last form stays faster from 64 channels.
  static constexpr index_t winograd_planar_min_channels = 16;
  [[nodiscard]] bool winograd3x3_planar() const {
    return direct3x3() && !direct3x3_cv() && !winograd3x3_f4() && cin >= winograd_planar_min_channels &&
           cout >= winograd_planar_min_channels && cin < winograd_min_channels && cout < winograd_min_channels &&
           ltl::detail::winograd::planar::lane_use(ho, wo) >= 0.95;
  }
  /// Winograd's sample-lane form (16 samples as the vector lanes) serves the stride-1 layers
  /// with 16 to 63 channels that the planar form leaves, where it measured faster than the row
  /// kernel: from 32 channels in and out (32→32 at 14×14 1.2×, 48→48 1.5×, 32→32 at 28×28
  /// 1.1×) or on planes up to 16×16 (16→16 at 14×14 1.17×); 16→16 and 24→24 at 28×28 stay on
  /// the row kernel (0.95×). Needs two blocks of 16 samples, so that both threads have one.
  static constexpr index_t winograd_batched_min_samples = 32;
  [[nodiscard]] bool winograd3x3_batched() const {
    return direct3x3() && !direct3x3_cv() && !winograd3x3_f4() && !winograd3x3_planar() &&
           cin >= winograd_planar_min_channels &&
           cout >= winograd_planar_min_channels && cin < winograd_min_channels && cout < winograd_min_channels &&
           (std::min(cin, cout) >= 32 || ho * wo <= 256) && n >= winograd_batched_min_samples;
  }
  /// Winograd's sample-lane weight gradient (winograd::weight_grad_batched) serves stride-1
  /// layers with 32 to 63 channels in and out (output channels in whole vectors) on planes
  /// above the channel-vectorised kernel's 7×7/8×8: measured 1.07× (32→32 at 14×14) and 1.12×
  /// (at 16×16) the channel-vectorised kernel; with 16 channels (0.94–1.07×) and from 64
  /// (0.9–1.0×) the direct kernels stay.
  [[nodiscard]] bool winograd3x3_wgrad() const noexcept {
    return direct3x3() && !winograd3x3_wgrad_f4() && ho * wo > cv_max_plane && cin >= 32 && cout >= 32 &&
           cin < winograd_min_channels && cout < winograd_min_channels && cout % 16 == 0 &&
           n >= winograd_batched_min_samples;
  }
  /// The weight gradient by F(4×4, 3×3) (winograd::weight_grad_batched<4>) serves stride-1
  /// layers with 16 to 64 channels in and out (output channels in whole vectors) on planes
  /// from 4×4 to 32×32 that its 4×4 tiles cover as tightly as 2×2 tiles, and with fewer than 32
  /// channels on any such plane: batch 128, measured 1.30× (16→16 at 28×28), 1.31× (32×32),
  /// 1.42× (14×14) the direct kernels, 1.32× (64→64 at 8×8), 1.06× (7×7), 1.08× (32→32 at
  /// 16×16, F(2×2)); 32→32 at 14×14, 16×16 computed for 14×14, stays on F(2×2) (0.95×).
  static constexpr index_t winograd_wgrad_f4_max_plane = 1024;
  [[nodiscard]] bool winograd3x3_wgrad_f4() const noexcept {
    return direct3x3() && cin >= 16 && cout >= 16 && cin <= winograd_f4_max_channels &&
           cout <= winograd_f4_max_channels && cout % 16 == 0 && ho * wo >= 16 &&
           ho * wo <= winograd_wgrad_f4_max_plane && n >= winograd_batched_min_samples &&
           (f4_tiles_tight() || std::max(cin, cout) < 32);
  }
  /// True when the channel-vectorised kernel computes the weight gradient.
  [[nodiscard]] bool direct3x3_cv_wgrad() const noexcept {
    return padded3x3() && (stride == pair2d(2) || (stride == pair2d(1) && ho * wo <= cv_wgrad_max_plane));
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

namespace detail {

/// Runs f(thread, begin, end) over [0, n) samples: split across the OpenMP team when there
/// are at least two samples, else called once so that the GEMM inside can parallelise.
template <class F>
void for_each_sample_chunk(index_t n, F&& f) {
#if LTL_HAS_OPENMP
  if (n >= 2 && omp_get_max_threads() > 1 && !omp_in_parallel()) {
#pragma omp parallel
    {
      const index_t nt = omp_get_num_threads(), t = omp_get_thread_num();
      const index_t chunk = (n + nt - 1) / nt;
      const index_t b = std::min(n, t * chunk), e = std::min(n, b + chunk);
      if (b < e) f(static_cast<int>(t), b, e);
    }
    return;
  }
#endif
  if (n > 0) f(0, index_t{0}, n);
}

/// Output columns [lo, hi) whose input column ow·s + off lies inside [0, extent).
inline void valid_range(index_t extent, index_t out, index_t s, index_t off, index_t& lo, index_t& hi) {
  lo = off >= 0 ? 0 : (-off + s - 1) / s;
  hi = extent - 1 - off < 0 ? 0 : (extent - 1 - off) / s + 1;
  lo = std::min(lo, out);
  hi = std::clamp(hi, lo, out);
}

/// Unrolls one group of one sample, x [Cin/groups, H, W], into col [Cin/groups·KH·KW, Ho·Wo].
template <class T>
void im2col(const T* x, T* col, const conv2d_geometry& g) {
  const index_t cg = g.cin_per_group(), plane = g.out_plane();
  for (index_t c = 0; c < cg; ++c) {
    const T* xc = x + c * g.h * g.w;
    for (index_t ki = 0; ki < g.kh; ++ki) {
      for (index_t kj = 0; kj < g.kw; ++kj) {
        T* row = col + ((c * g.kh + ki) * g.kw + kj) * plane;
        const index_t off_w = kj * g.dilation.w - g.padding.w;
        index_t lo, hi;
        valid_range(g.w, g.wo, g.stride.w, off_w, lo, hi);
        for (index_t oh = 0; oh < g.ho; ++oh) {
          T* r = row + oh * g.wo;
          const index_t ih = oh * g.stride.h - g.padding.h + ki * g.dilation.h;
          if (ih < 0 || ih >= g.h) {
            std::fill(r, r + g.wo, T(0));
            continue;
          }
          std::fill(r, r + lo, T(0));
          if (lo < hi) {
            const T* src = xc + ih * g.w + lo * g.stride.w + off_w;  // input column of ow = lo
            if (g.stride.w == 1) {
              std::copy(src, src + (hi - lo), r + lo);
            } else {
              for (index_t ow = lo; ow < hi; ++ow) r[ow] = src[(ow - lo) * g.stride.w];
            }
          }
          std::fill(r + hi, r + g.wo, T(0));
        }
      }
    }
  }
}

/// Adjoint of im2col: adds col [Cin/groups·KH·KW, Ho·Wo] into dx [Cin/groups, H, W].
template <class T>
void col2im(const T* col, T* dx, const conv2d_geometry& g) {
  const index_t cg = g.cin_per_group(), plane = g.out_plane();
  for (index_t c = 0; c < cg; ++c) {
    T* dc = dx + c * g.h * g.w;
    for (index_t ki = 0; ki < g.kh; ++ki) {
      for (index_t kj = 0; kj < g.kw; ++kj) {
        const T* row = col + ((c * g.kh + ki) * g.kw + kj) * plane;
        const index_t off_w = kj * g.dilation.w - g.padding.w;
        index_t lo, hi;
        valid_range(g.w, g.wo, g.stride.w, off_w, lo, hi);
        for (index_t oh = 0; oh < g.ho; ++oh) {
          const index_t ih = oh * g.stride.h - g.padding.h + ki * g.dilation.h;
          if (ih < 0 || ih >= g.h) continue;
          if (lo >= hi) continue;
          const T* r = row + oh * g.wo;
          T* dst = dc + ih * g.w + lo * g.stride.w + off_w;  // input column of ow = lo
          for (index_t ow = lo; ow < hi; ++ow) dst[(ow - lo) * g.stride.w] += r[ow];
        }
      }
    }
  }
}

}  // namespace detail

namespace cpu {

/// y [N, Cout, Ho, Wo] = act(conv2d(x [N, Cin, H, W], weight [Cout, Cin/groups, KH, KW])·scale
/// + shift + residual), per output channel (detail::conv_epilogue): scale and shift [Cout],
/// residual [N, Cout, Ho, Wo] and ReLU are each optional (undefined tensors, relu false). The
/// direct 3×3 kernels apply the epilogue as they store their sums; the im2col path after each
/// sample's GEMM, while the sample's output is in cache.
template <class T>
host_tensor<T> conv2d_forward_epilogue(const host_tensor<T>& x_in, const host_tensor<T>& w_in,
                                       const conv2d_options& opt, const host_tensor<T>& scale,
                                       const host_tensor<T>& shift, const host_tensor<T>& residual, bool relu) {
  const conv2d_geometry g = make_conv2d_geometry(x_in.sizes(), w_in.sizes(), opt);
  if (shift.defined()) check_conv2d_bias(shift.sizes(), w_in.sizes());
  LTL_CHECK(!scale.defined() || (scale.dim() == 1 && scale.size(0) == w_in.size(0)), shape_error,
            "conv2d: epilogue scale {} does not match weight {} (expects [Cout])",
            scale.defined() ? scale.sizes() : shape{}, w_in.sizes());
  LTL_CHECK(!residual.defined() || residual.sizes() == g.output_shape(), shape_error,
            "conv2d: residual {} does not match the output {}", residual.defined() ? residual.sizes() : shape{},
            g.output_shape());
  const host_tensor<T> x = x_in.contiguous(), w = w_in.contiguous();
  const host_tensor<T> sc = scale.defined() ? scale.contiguous() : host_tensor<T>();
  const host_tensor<T> sh = shift.defined() ? shift.contiguous() : host_tensor<T>();
  const host_tensor<T> res = residual.defined() ? residual.contiguous() : host_tensor<T>();
  const ltl::detail::conv_epilogue<T> ep{sc.defined() ? sc.data() : nullptr, sh.defined() ? sh.data() : nullptr,
                                         res.defined() ? res.data() : nullptr, relu};
  host_tensor<T> y(g.output_shape());
  if constexpr (std::is_same_v<T, float>) {
    if (g.winograd3x3_f4()) {
      winograd::run_batched<4>(x.data(), g.n, g.cin, g.h, g.w, w.data(), g.cout, g.cin, false, g.cout, ep, y.data(),
                               [](index_t n, auto&& f) { ltl::detail::for_each_sample_chunk(n, f); });
      return y;
    }
    if (g.winograd3x3()) {
      winograd::run(x.data(), g.n, g.cin, g.h, g.w, w.data(), g.cout, g.cin, false, g.cout, ep, y.data(),
                    [](index_t n, auto&& f) { ltl::detail::for_each_sample_chunk(n, f); });
      return y;
    }
    if (g.winograd3x3_planar()) {
      winograd::run_planar(x.data(), g.n, g.cin, g.h, g.w, w.data(), g.cout, g.cin, false, g.cout, ep, y.data(),
                           [](index_t n, auto&& f) { ltl::detail::for_each_sample_chunk(n, f); });
      return y;
    }
    if (g.winograd3x3_batched()) {
      winograd::run_batched(x.data(), g.n, g.cin, g.h, g.w, w.data(), g.cout, g.cin, false, g.cout, ep, y.data(),
                            [](index_t n, auto&& f) { ltl::detail::for_each_sample_chunk(n, f); });
      return y;
    }
  }
  if (g.direct3x3_cv()) {
    conv3x3_cv::run(x.data(), g.n, g.cin, g.h, g.w, g.stride.h, w.data(), g.cout, g.cin, false, g.cout, ep, y.data(),
                    [](index_t n, auto&& f) { ltl::detail::for_each_sample_chunk(n, f); });
    return y;
  }
  if (g.direct3x3()) {
    const auto wpk = ltl::detail::direct3x3::pack_weights(w.data(), g.cout, g.cin, false);
    direct3x3::run(x.data(), g.n, g.cin, g.h, g.w, wpk, g.cout, ep, y.data(),
                   [](index_t n, auto&& f) { ltl::detail::for_each_sample_chunk(n, f); });
    return y;
  }
  const index_t cg = g.cin_per_group(), og = g.cout_per_group(), k = g.col_rows(), p = g.out_plane();
  const host_tensor<T> wmat = w.reshape(shape{g.groups, og, k});
  const bool any = ep.scale || ep.shift || ep.residual || ep.relu;
  ltl::detail::for_each_sample_chunk(g.n, [&](int, index_t n0, index_t n1) {
    host_tensor<T> col = g.pointwise() ? host_tensor<T>() : host_tensor<T>(shape{k, p});
    for (index_t n = n0; n < n1; ++n) {
      for (index_t gi = 0; gi < g.groups; ++gi) {
        const host_tensor<T> xg = x.select(0, n).narrow(0, gi * cg, cg);
        host_tensor<T> yg = y.select(0, n).narrow(0, gi * og, og).reshape(shape{og, p});
        if (g.pointwise()) {
          gemm(wmat.select(0, gi), xg.reshape(shape{cg, p}), yg, T(1), T(0));
        } else {
          ltl::detail::im2col(xg.data(), col.data(), g);
          gemm(wmat.select(0, gi), col, yg, T(1), T(0));
        }
        if (!any) continue;
        T* py = yg.data();
        for (index_t o = 0; o < og; ++o) {
          const index_t at = (n * g.cout + gi * og + o) * p;
          ep.store(py + o * p, py + o * p, 1, p, gi * og + o, ep.residual ? ep.residual + at : nullptr);
        }
      }
    }
  });
  return y;
}

/// y [N, Cout, Ho, Wo] = conv2d(x [N, Cin, H, W], weight [Cout, Cin/groups, KH, KW]) + bias [Cout]
/// (bias may be undefined).
template <class T>
host_tensor<T> conv2d_forward(const host_tensor<T>& x_in, const host_tensor<T>& w_in, const host_tensor<T>& bias,
                              const conv2d_options& opt) {
  return conv2d_forward_epilogue(x_in, w_in, opt, host_tensor<T>(), bias, host_tensor<T>(), false);
}

/// Gradient of conv2d with respect to its input: dx [N, Cin, H, W] from dy [N, Cout, Ho, Wo].
template <class T>
host_tensor<T> conv2d_backward_input(const host_tensor<T>& dy_in, const host_tensor<T>& w_in, const shape& x_shape,
                                     const conv2d_options& opt) {
  const conv2d_geometry g = make_conv2d_geometry(x_shape, w_in.sizes(), opt);
  LTL_CHECK(dy_in.sizes() == g.output_shape(), shape_error,
            "conv2d_backward: output gradient {} does not match the output shape {}", dy_in.sizes(), g.output_shape());
  const host_tensor<T> dy = dy_in.contiguous(), w = w_in.contiguous();
  if (g.direct3x3_cv() && g.stride == pair2d(2) && ltl::detail::conv3x3_cv::wide_rows<T>(g.cin)) {
    host_tensor<T> dx(x_shape);
    conv3x3_cv::input_grad_stride2(dy.data(), g.n, g.cout, w.data(), g.cin, g.h, g.w, dx.data(),
                                   [](index_t n, auto&& f) { ltl::detail::for_each_sample_chunk(n, f); });
    return dx;
  }
  if constexpr (std::is_same_v<T, float>) {
    if (g.winograd3x3_f4()) {  // stride 1: the adjoint is the same convolution
      host_tensor<T> dx(x_shape);
      winograd::run_batched<4>(dy.data(), g.n, g.cout, g.h, g.w, w.data(), g.cout, g.cin, true, g.cin,
                               ltl::detail::conv_epilogue<T>{}, dx.data(),
                               [](index_t n, auto&& f) { ltl::detail::for_each_sample_chunk(n, f); });
      return dx;
    }
    if (g.winograd3x3()) {
      host_tensor<T> dx(x_shape);
      winograd::run(dy.data(), g.n, g.cout, g.h, g.w, w.data(), g.cout, g.cin, true, g.cin,
                    ltl::detail::conv_epilogue<T>{}, dx.data(),
                    [](index_t n, auto&& f) { ltl::detail::for_each_sample_chunk(n, f); });
      return dx;
    }
    if (g.winograd3x3_planar()) {
      host_tensor<T> dx(x_shape);
      winograd::run_planar(dy.data(), g.n, g.cout, g.h, g.w, w.data(), g.cout, g.cin, true, g.cin,
                           ltl::detail::conv_epilogue<T>{}, dx.data(),
                           [](index_t n, auto&& f) { ltl::detail::for_each_sample_chunk(n, f); });
      return dx;
    }
    if (g.winograd3x3_batched()) {
      host_tensor<T> dx(x_shape);
      winograd::run_batched(dy.data(), g.n, g.cout, g.h, g.w, w.data(), g.cout, g.cin, true, g.cin,
                            ltl::detail::conv_epilogue<T>{}, dx.data(),
                            [](index_t n, auto&& f) { ltl::detail::for_each_sample_chunk(n, f); });
      return dx;
    }
  }
  if (g.direct3x3() && g.direct3x3_cv()) {  // stride 1: the adjoint is the same convolution
    host_tensor<T> dx(x_shape);
    conv3x3_cv::run(dy.data(), g.n, g.cout, g.h, g.w, index_t{1}, w.data(), g.cout, g.cin, true, g.cin,
                    ltl::detail::conv_epilogue<T>{}, dx.data(),
                    [](index_t n, auto&& f) { ltl::detail::for_each_sample_chunk(n, f); });
    return dx;
  }
  if (g.direct3x3()) {
    host_tensor<T> dx(x_shape);
    const auto wpk = ltl::detail::direct3x3::pack_weights(w.data(), g.cout, g.cin, true);
    direct3x3::run(dy.data(), g.n, g.cout, g.h, g.w, wpk, g.cin, ltl::detail::conv_epilogue<T>{}, dx.data(),
                   [](index_t n, auto&& f) { ltl::detail::for_each_sample_chunk(n, f); });
    return dx;
  }
  const index_t cg = g.cin_per_group(), og = g.cout_per_group(), k = g.col_rows(), p = g.out_plane();
  const host_tensor<T> wmat = w.reshape(shape{g.groups, og, k});
  // col2im accumulates, so dx starts at zero; the pointwise path overwrites (beta = 0).
  host_tensor<T> dx = g.pointwise() ? host_tensor<T>(x_shape) : host_tensor<T>::zeros(x_shape);
  ltl::detail::for_each_sample_chunk(g.n, [&](int, index_t n0, index_t n1) {
    host_tensor<T> col = g.pointwise() ? host_tensor<T>() : host_tensor<T>(shape{k, p});
    for (index_t n = n0; n < n1; ++n) {
      for (index_t gi = 0; gi < g.groups; ++gi) {
        const host_tensor<T> dyg = dy.select(0, n).narrow(0, gi * og, og).reshape(shape{og, p});
        host_tensor<T> dxg = dx.select(0, n).narrow(0, gi * cg, cg);
        if (g.pointwise()) {
          host_tensor<T> dxm = dxg.reshape(shape{cg, p});
          gemm(wmat.select(0, gi).t(), dyg, dxm, T(1), T(0));
        } else {
          gemm(wmat.select(0, gi).t(), dyg, col, T(1), T(0));
          ltl::detail::col2im(col.data(), dxg.data(), g);
        }
      }
    }
  });
  return dx;
}

/// Gradient of conv2d with respect to its weight: dW [Cout, Cin/groups, KH, KW]. Each thread
/// sums its samples into a private buffer; the buffers are then added in thread order, so the
/// result is deterministic for a given thread count.
template <class T>
host_tensor<T> conv2d_backward_weight(const host_tensor<T>& dy_in, const host_tensor<T>& x_in, const shape& w_shape,
                                      const conv2d_options& opt) {
  const conv2d_geometry g = make_conv2d_geometry(x_in.sizes(), w_shape, opt);
  LTL_CHECK(dy_in.sizes() == g.output_shape(), shape_error,
            "conv2d_backward: output gradient {} does not match the output shape {}", dy_in.sizes(), g.output_shape());
  const host_tensor<T> dy = dy_in.contiguous(), x = x_in.contiguous();
  if constexpr (std::is_same_v<T, float>) {
    if (g.winograd3x3_wgrad_f4())
      return winograd::weight_grad_batched<4>(dy.data(), x.data(), g.n, g.cin, g.cout, g.h, g.w, num_threads(),
                                              [](index_t n, auto&& f) { ltl::detail::for_each_sample_chunk(n, f); })
          .reshape(w_shape);
    if (g.winograd3x3_wgrad())
      return winograd::weight_grad_batched(dy.data(), x.data(), g.n, g.cin, g.cout, g.h, g.w, num_threads(),
                                           [](index_t n, auto&& f) { ltl::detail::for_each_sample_chunk(n, f); })
          .reshape(w_shape);
  }
  if (g.direct3x3_cv_wgrad() && (g.stride == pair2d(2) || ltl::detail::conv3x3_cv::wide_rows<T>(g.cout)))
    return conv3x3_cv::weight_grad(dy.data(), x.data(), g.n, g.cin, g.cout, g.h, g.w, g.stride.h, num_threads(),
                                   [](index_t n, auto&& f) { ltl::detail::for_each_sample_chunk(n, f); })
        .reshape(w_shape);
  if (g.direct3x3())
    return direct3x3::weight_grad(dy.data(), x.data(), g.n, g.cin, g.cout, g.h, g.w, num_threads(),
                                  [](index_t n, auto&& f) { ltl::detail::for_each_sample_chunk(n, f); })
        .reshape(w_shape);
  const index_t cg = g.cin_per_group(), og = g.cout_per_group(), k = g.col_rows(), p = g.out_plane();
  std::vector<host_tensor<T>> partial(static_cast<std::size_t>(num_threads()));
  ltl::detail::for_each_sample_chunk(g.n, [&](int t, index_t n0, index_t n1) {
    host_tensor<T> dw = host_tensor<T>::zeros(shape{g.groups, og, k});
    host_tensor<T> col = g.pointwise() ? host_tensor<T>() : host_tensor<T>(shape{k, p});
    for (index_t n = n0; n < n1; ++n) {
      for (index_t gi = 0; gi < g.groups; ++gi) {
        const host_tensor<T> dyg = dy.select(0, n).narrow(0, gi * og, og).reshape(shape{og, p});
        const host_tensor<T> xg = x.select(0, n).narrow(0, gi * cg, cg);
        host_tensor<T> dwg = dw.select(0, gi);
        if (g.pointwise()) {
          gemm(dyg, xg.reshape(shape{cg, p}).t(), dwg, T(1), T(1));
        } else {
          ltl::detail::im2col(xg.data(), col.data(), g);
          gemm(dyg, col.t(), dwg, T(1), T(1));
        }
      }
    }
    partial[static_cast<std::size_t>(t)] = std::move(dw);
  });
  return ltl::detail::direct3x3::sum_in_thread_order(partial, shape{g.groups, og, k}).reshape(w_shape);
}

/// Gradient of conv2d with respect to its bias: db [Cout] = Σ over N, Ho, Wo of dy (in double).
template <class T>
host_tensor<T> conv2d_backward_bias(const host_tensor<T>& dy) {
  LTL_CHECK(dy.dim() == 4, shape_error, "conv2d_backward: output gradient must be [N, Cout, Ho, Wo], got {}",
            dy.sizes());
  return sum_dims_keep(dy, {true, false, true, true}).reshape(shape{dy.size(1)});
}

}  // namespace cpu
}  // namespace ltl
