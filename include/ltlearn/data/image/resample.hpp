#pragma once
/// \file
/// Antialiased bilinear resampling of 8-bit RGB images into float CHW planes, with PIL's
/// coefficients (Pillow's Resample.c `precompute_coeffs` with the bilinear filter, which is what
/// torchvision's Resize and RandomResizedCrop run on PIL images; torch's antialiased tensor
/// interpolation uses the same filter).
///
/// For output pixel x of an axis mapping the source interval [in0, in1) onto `out` pixels:
/// scale = (in1 − in0)/out, support = max(scale, 1) (the triangle widens when shrinking, which is
/// the antialiasing), centre = in0 + (x + ½)·scale, taps j ∈ [int(centre − support + ½),
/// int(centre + support + ½)) ∩ [0, in), weight ∝ tri((j − centre + ½)/max(scale, 1)),
/// normalised to sum 1. The result is not rounded to 8 bits between the two passes or at the
/// end (PIL does both), so it differs from PIL by at most about one grey level.

#include "ltlearn/core/error.hpp"
#include "ltlearn/core/shape.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace ltl::data {

/// The taps of one resampling axis: for output pixel o, `count[o]` weights starting at source
/// index `first[o]`, stored at `weights[o·stride]`.
struct resample_axis {
  std::vector<int> first;
  std::vector<int> count;
  std::vector<float> weights;
  int stride = 0;
};

/// PIL's bilinear antialias coefficients for `out` pixels over source [in0, in1) of an axis of
/// `in` pixels.
inline resample_axis antialias_axis(index_t in, double in0, double in1, index_t out) {
  LTL_CHECK(in > 0 && out > 0 && in1 > in0, value_error, "antialias_axis: source [{}, {}) of {} to {} pixels", in0,
            in1, in, out);
  const double scale = (in1 - in0) / static_cast<double>(out);
  const double filter_scale = std::max(scale, 1.0);
  const double support = filter_scale;  // the bilinear filter's support is 1
  resample_axis a;
  a.stride = static_cast<int>(std::ceil(support)) * 2 + 1;
  a.first.resize(static_cast<std::size_t>(out));
  a.count.resize(static_cast<std::size_t>(out));
  a.weights.assign(static_cast<std::size_t>(out) * static_cast<std::size_t>(a.stride), 0.0f);
  std::vector<double> k(static_cast<std::size_t>(a.stride));
  for (index_t o = 0; o < out; ++o) {
    const double centre = in0 + (static_cast<double>(o) + 0.5) * scale;
    const double ss = 1.0 / filter_scale;
    int lo = static_cast<int>(centre - support + 0.5);
    lo = std::max(lo, 0);
    int hi = static_cast<int>(centre + support + 0.5);
    hi = std::min(hi, static_cast<int>(in));
    const int n = std::max(hi - lo, 0);
    double sum = 0;
    for (int x = 0; x < n; ++x) {
      const double t = std::abs((x + lo - centre + 0.5) * ss);
      sum += k[static_cast<std::size_t>(x)] = t < 1.0 ? 1.0 - t : 0.0;
    }
    float* w = a.weights.data() + static_cast<std::size_t>(o) * static_cast<std::size_t>(a.stride);
    for (int x = 0; x < n; ++x) w[x] = static_cast<float>(sum != 0.0 ? k[static_cast<std::size_t>(x)] / sum : 0.0);
    a.first[static_cast<std::size_t>(o)] = lo;
    a.count[static_cast<std::size_t>(o)] = n;
  }
  return a;
}

/// Where a resize reads and what part of its output is kept.
///
/// The source box [y0, y1) × [x0, x1) (in source pixels, fractional allowed) is resized to
/// out_h × out_w; the kept window is rows [top, top + win_h) and columns [left, left + win_w) of
/// that output. Window cells outside the output are 0 (CenterCrop's zero padding when the crop
/// is larger than the image).
struct resize_geometry {
  double y0 = 0, x0 = 0, y1 = 0, x1 = 0;
  index_t out_h = 0, out_w = 0;
  index_t top = 0, left = 0, win_h = 0, win_w = 0;
};

/// Resamples `src` ([h, w, 3] RGB bytes) as `g` says into three planes of win_h × win_w values
/// in [0, 1] (value/255) at `dst` (plane c at dst + c·win_h·win_w), mirrored left-right when
/// `mirror`.
template <class T>
void resize_window(const std::uint8_t* src, index_t h, index_t w, const resize_geometry& g, bool mirror, T* dst) {
  LTL_CHECK(h > 0 && w > 0 && g.out_h > 0 && g.out_w > 0 && g.win_h > 0 && g.win_w > 0, value_error,
            "resize_window: source {}x{}, output {}x{}, window {}x{}", w, h, g.out_w, g.out_h, g.win_w, g.win_h);
  LTL_CHECK(g.y0 >= 0 && g.x0 >= 0 && g.y1 <= static_cast<double>(h) + 1e-9 && g.x1 <= static_cast<double>(w) + 1e-9,
            value_error, "resize_window: box [{}, {}) x [{}, {}) is outside the {}x{} image", g.y0, g.y1, g.x0, g.x1, w,
            h);
  const index_t plane = g.win_h * g.win_w;
  const index_t oy0 = std::max<index_t>(g.top, 0), oy1 = std::min(g.out_h, g.top + g.win_h);
  const index_t ox0 = std::max<index_t>(g.left, 0), ox1 = std::min(g.out_w, g.left + g.win_w);
  if (oy0 > g.top || ox0 > g.left || oy1 < g.top + g.win_h || ox1 < g.left + g.win_w)
    std::fill(dst, dst + 3 * plane, T(0));
  if (oy1 <= oy0 || ox1 <= ox0) return;
  const resample_axis ay = antialias_axis(h, g.y0, g.y1, g.out_h);
  const resample_axis ax = antialias_axis(w, g.x0, g.x1, g.out_w);
  // Source rows the kept output rows read.
  int sy0 = static_cast<int>(h), sy1 = 0;
  for (index_t oy = oy0; oy < oy1; ++oy) {
    const auto o = static_cast<std::size_t>(oy);
    sy0 = std::min(sy0, ay.first[o]);
    sy1 = std::max(sy1, ay.first[o] + ay.count[o]);
  }
  const index_t cols = ox1 - ox0;
  // Horizontal pass over the needed rows only: tmp[row][col][c].
  std::vector<float> tmp(static_cast<std::size_t>(std::max(sy1 - sy0, 0)) * static_cast<std::size_t>(cols) * 3);
  for (int sy = sy0; sy < sy1; ++sy) {
    const std::uint8_t* row = src + static_cast<std::size_t>(sy) * static_cast<std::size_t>(w) * 3;
    float* t = tmp.data() + static_cast<std::size_t>(sy - sy0) * static_cast<std::size_t>(cols) * 3;
    for (index_t ox = ox0; ox < ox1; ++ox) {
      const auto o = static_cast<std::size_t>(ox);
      const float* k = ax.weights.data() + o * static_cast<std::size_t>(ax.stride);
      const std::uint8_t* p = row + static_cast<std::size_t>(ax.first[o]) * 3;
      float r = 0, gg = 0, b = 0;
      for (int j = 0; j < ax.count[o]; ++j) {
        r += k[j] * static_cast<float>(p[3 * j]);
        gg += k[j] * static_cast<float>(p[3 * j + 1]);
        b += k[j] * static_cast<float>(p[3 * j + 2]);
      }
      float* q = t + static_cast<std::size_t>(ox - ox0) * 3;
      q[0] = r, q[1] = gg, q[2] = b;
    }
  }
  // Vertical pass into the window planes.
  constexpr float inv255 = 1.0f / 255.0f;
  for (index_t oy = oy0; oy < oy1; ++oy) {
    const auto o = static_cast<std::size_t>(oy);
    const float* k = ay.weights.data() + o * static_cast<std::size_t>(ay.stride);
    const index_t wy = oy - g.top;
    T* d0 = dst + wy * g.win_w;
    for (index_t ox = ox0; ox < ox1; ++ox) {
      const float* t = tmp.data() + (static_cast<std::size_t>(ay.first[o] - sy0) * static_cast<std::size_t>(cols) +
                                     static_cast<std::size_t>(ox - ox0)) * 3;
      float r = 0, gg = 0, b = 0;
      for (int j = 0; j < ay.count[o]; ++j) {
        const float* q = t + static_cast<std::size_t>(j) * static_cast<std::size_t>(cols) * 3;
        r += k[j] * q[0];
        gg += k[j] * q[1];
        b += k[j] * q[2];
      }
      const index_t wx = ox - g.left;
      const index_t col = mirror ? g.win_w - 1 - wx : wx;
      d0[col] = static_cast<T>(r * inv255);
      d0[plane + col] = static_cast<T>(gg * inv255);
      d0[2 * plane + col] = static_cast<T>(b * inv255);
    }
  }
}

}  // namespace ltl::data
