#pragma once
/// \file
/// Per-image transforms with torchvision's semantics (SPEC §12): RandomResizedCrop,
/// Resize (short side) + CenterCrop, horizontal flip, ColorJitter (brightness, contrast,
/// saturation in random order) and normalisation, applied to one decoded image straight into its
/// [3, H, W] slot of a batch.
///
/// Randomness: each image's draws come from its own generator (data::image_pipeline gives it
/// `rng(seed, sample_stream(epoch, position))`), drawn in a fixed order — crop, flip, jitter
/// order, jitter factors — so an image's augmentation depends on nothing else in its batch.
/// Geometry: torchvision's integer rounding (Python's round, half to even) is reproduced exactly.
/// Colour: torchvision's tensor definitions on [0, 1] floats (brightness blends with black,
/// contrast with the mean of the grayscale image, saturation with the grayscale image, each
/// clamped to [0, 1]; grayscale = 0.2989 R + 0.587 G + 0.114 B).

#include "ltlearn/core/error.hpp"
#include "ltlearn/core/rng.hpp"
#include "ltlearn/core/shape.hpp"
#include "ltlearn/data/image/resample.hpp"

#include <xtensor/xadapt.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

namespace ltl::data {

/// Python's round() on a double: nearest integer, ties to even.
inline index_t py_round(double v) noexcept { return static_cast<index_t>(std::nearbyint(v)); }

/// A crop rectangle in pixels: top-left corner and size.
struct crop_box {
  index_t top = 0, left = 0, height = 0, width = 0;
  friend bool operator==(const crop_box&, const crop_box&) = default;
};

/// torchvision.transforms.RandomResizedCrop's parameters and its `get_params`.
struct random_resized_crop {
  index_t size = 224;  ///< output is size × size
  double scale_min = 0.08, scale_max = 1.0;
  double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;
  int tries = 10;

  /// torchvision's get_params for an h × w image: up to `tries` draws of area fraction
  /// U(scale_min, scale_max) and log-uniform aspect ratio w/h, sides rounded half-to-even,
  /// accepted when 0 < side ≤ image side, then a uniform position; otherwise the centre crop of
  /// the whole image clamped to the ratio range.
  [[nodiscard]] crop_box draw(index_t h, index_t w, rng& g) const {
    LTL_CHECK(h > 0 && w > 0, value_error, "random_resized_crop: image size {}x{} is empty", w, h);
    LTL_CHECK(scale_min > 0 && scale_min <= scale_max && ratio_min > 0 && ratio_min <= ratio_max, value_error,
              "random_resized_crop: scale [{}, {}] and ratio [{}, {}] must be positive, increasing ranges", scale_min,
              scale_max, ratio_min, ratio_max);
    const double area = static_cast<double>(h) * static_cast<double>(w);
    const double lr0 = std::log(ratio_min), lr1 = std::log(ratio_max);
    for (int t = 0; t < tries; ++t) {
      const double target = area * g.uniform(scale_min, scale_max);
      const double aspect = std::exp(g.uniform(lr0, lr1));
      const index_t cw = py_round(std::sqrt(target * aspect));
      const index_t ch = py_round(std::sqrt(target / aspect));
      if (cw > 0 && cw <= w && ch > 0 && ch <= h) {
        const auto top = static_cast<index_t>(g.below(static_cast<std::uint64_t>(h - ch + 1)));
        const auto left = static_cast<index_t>(g.below(static_cast<std::uint64_t>(w - cw + 1)));
        return {top, left, ch, cw};
      }
    }
    const double in_ratio = static_cast<double>(w) / static_cast<double>(h);
    index_t cw = w, ch = h;
    if (in_ratio < ratio_min) {
      ch = py_round(static_cast<double>(w) / ratio_min);
    } else if (in_ratio > ratio_max) {
      cw = py_round(static_cast<double>(h) * ratio_max);
    }
    return {(h - ch) / 2, (w - cw) / 2, ch, cw};
  }
};

/// torchvision Resize(size) with an int size: the short side becomes `size`, the long side
/// int(size · long / short) (truncated). Returns {new_h, new_w}.
inline std::array<index_t, 2> resize_short_side(index_t h, index_t w, index_t size) {
  LTL_CHECK(h > 0 && w > 0 && size > 0, value_error, "resize_short_side: image {}x{} to short side {}", w, h, size);
  const index_t s = std::min(h, w), l = std::max(h, w);
  const auto long_side = static_cast<index_t>(static_cast<double>(size * l) / static_cast<double>(s));
  return w <= h ? std::array<index_t, 2>{long_side, size} : std::array<index_t, 2>{size, long_side};
}

/// torchvision CenterCrop offsets: top = int(round((h − th)/2)), left likewise; a crop larger than
/// the image is zero-padded first ((th − h)//2 before), which gives the negative offset −(th − h)//2.
inline crop_box center_crop_box(index_t h, index_t w, index_t th, index_t tw) {
  LTL_CHECK(h > 0 && w > 0 && th > 0 && tw > 0, value_error, "center_crop_box: crop {}x{} of {}x{}", tw, th, w, h);
  const index_t top = th > h ? -((th - h) / 2) : py_round(static_cast<double>(h - th) / 2.0);
  const index_t left = tw > w ? -((tw - w) / 2) : py_round(static_cast<double>(w - tw) / 2.0);
  return {top, left, th, tw};
}

/// ColorJitter's brightness, contrast and saturation (hue is not provided). A value v > 0 draws
/// its factor from U(max(0, 1 − v), 1 + v); 0 leaves that adjustment out.
struct color_jitter {
  double brightness = 0, contrast = 0, saturation = 0;
  [[nodiscard]] bool active() const noexcept { return brightness > 0 || contrast > 0 || saturation > 0; }
};

/// One image's jitter: the order of the three adjustments (0 brightness, 1 contrast,
/// 2 saturation) and their factors (1 = identity, also for the ones left out).
struct jitter_params {
  std::array<int, 3> order{0, 1, 2};
  std::array<double, 3> factor{1.0, 1.0, 1.0};
};

/// Draws a random order of the three (a shuffle), then each active factor in the order
/// brightness, contrast, saturation (torchvision draws a permutation, then the factors).
inline jitter_params draw_jitter(const color_jitter& j, rng& g) {
  jitter_params p;
  g.shuffle(std::span<int>(p.order));
  const std::array<double, 3> v{j.brightness, j.contrast, j.saturation};
  for (std::size_t k = 0; k < 3; ++k) {
    LTL_CHECK(v[k] >= 0 && std::isfinite(v[k]), value_error, "color_jitter: strength {} must be finite and >= 0", v[k]);
    if (v[k] > 0) p.factor[k] = g.uniform(std::max(0.0, 1.0 - v[k]), 1.0 + v[k]);
  }
  return p;
}

/// Brightness: x ← clamp(f·x, 0, 1) on the n-pixel RGB planes at `img` ([3, n]).
template <class T>
void adjust_brightness(T* img, index_t n, double f) {
  auto a = xt::adapt(img, static_cast<std::size_t>(3 * n), xt::no_ownership(), std::array<std::size_t, 1>{static_cast<std::size_t>(3 * n)});
  // noalias: element-wise in place, no temporary image.
  xt::noalias(a) = xt::clip(static_cast<T>(f) * a, T(0), T(1));
}

/// Grayscale of RGB planes ([3, n] → [n]): 0.2989 R + 0.587 G + 0.114 B.
template <class T>
std::vector<T> grayscale(const T* img, index_t n) {
  const auto sz = static_cast<std::size_t>(n);
  const std::array<std::size_t, 1> shp{sz};
  auto r = xt::adapt(img, sz, xt::no_ownership(), shp);
  auto g = xt::adapt(img + n, sz, xt::no_ownership(), shp);
  auto b = xt::adapt(img + 2 * n, sz, xt::no_ownership(), shp);
  std::vector<T> out(sz);
  auto o = xt::adapt(out.data(), sz, xt::no_ownership(), shp);
  xt::noalias(o) = static_cast<T>(0.2989) * r + static_cast<T>(0.587) * g + static_cast<T>(0.114) * b;
  return out;
}

/// Contrast: x ← clamp(f·x + (1 − f)·m, 0, 1), m the mean of the grayscale image.
template <class T>
void adjust_contrast(T* img, index_t n, double f) {
  const auto gray = grayscale(img, n);
  double s = 0;
  for (T v : gray) s += static_cast<double>(v);
  const auto m = static_cast<T>(s / static_cast<double>(n));
  auto a = xt::adapt(img, static_cast<std::size_t>(3 * n), xt::no_ownership(), std::array<std::size_t, 1>{static_cast<std::size_t>(3 * n)});
  xt::noalias(a) = xt::clip(static_cast<T>(f) * a + static_cast<T>(1.0 - f) * m, T(0), T(1));
}

/// Saturation: x ← clamp(f·x + (1 − f)·gray, 0, 1) per channel.
template <class T>
void adjust_saturation(T* img, index_t n, double f) {
  const auto gray = grayscale(img, n);
  const auto sz = static_cast<std::size_t>(n);
  const std::array<std::size_t, 1> shp{sz};
  auto gv = xt::adapt(gray.data(), sz, xt::no_ownership(), shp);
  for (index_t c = 0; c < 3; ++c) {
    auto ch = xt::adapt(img + c * n, sz, xt::no_ownership(), shp);
    xt::noalias(ch) = xt::clip(static_cast<T>(f) * ch + static_cast<T>(1.0 - f) * gv, T(0), T(1));
  }
}

/// Applies a drawn jitter in its order (identity factors are skipped: f = 1 changes nothing).
template <class T>
void apply_jitter(T* img, index_t n, const jitter_params& p) {
  for (int k : p.order) {
    const double f = p.factor[static_cast<std::size_t>(k)];
    if (f == 1.0) continue;
    if (k == 0) adjust_brightness(img, n, f);
    else if (k == 1) adjust_contrast(img, n, f);
    else adjust_saturation(img, n, f);
  }
}

/// Per-channel (x − mean)/std on [3, n] planes, in T as data::normalize computes it.
template <class T>
void normalize_planes(T* img, index_t n, std::span<const double> mean, std::span<const double> stddev) {
  const auto sz = static_cast<std::size_t>(n);
  const std::array<std::size_t, 1> shp{sz};
  for (std::size_t c = 0; c < 3; ++c) {
    const T m = static_cast<T>(mean[c]), s = static_cast<T>(stddev[c]);
    auto q = xt::adapt(img + static_cast<index_t>(c) * n, sz, xt::no_ownership(), shp);
    xt::noalias(q) = (q - m) / s;
  }
}

}  // namespace ltl::data
