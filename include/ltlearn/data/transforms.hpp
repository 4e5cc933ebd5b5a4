#pragma once
/// \file
/// Reproducible in-place transforms of image batches x [B, C, H, W] (host, contiguous):
/// per-channel normalisation, zero-pad + random crop, random horizontal flip.
///
/// Randomness comes only from an explicit `ltl::rng&`, drawn sequentially image by image before
/// the (OpenMP-parallel) pixel work, so a batch is the same for a given generator state whatever
/// the thread count. Order as in the reference recipes (torchvision RandomCrop → Flip → ToTensor
/// → Normalize): crop and flip act on [0, 1] pixels, so the padding is black, then normalise.
/// Normalisation is one xtensor expression per plane over an adaptor of the batch's own storage
/// (no copy; contiguous, so xtensor assigns it as a flat loop). Crop and flip stay row copies and
/// row reverses (see pad_crop_ and hflip_ for why).

#include "ltlearn/core/concepts.hpp"
#include "ltlearn/core/config.hpp"
#include "ltlearn/core/error.hpp"
#include "ltlearn/core/rng.hpp"
#include "ltlearn/core/shape.hpp"
#include "ltlearn/tensor/tensor.hpp"

#include <xtensor/xadapt.hpp>
#include <xtensor/xnoalias.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

namespace ltl::data {

namespace detail {
template <class T>
void check_batch(const tensor<T>& x, const char* op) {
  LTL_CHECK(x.defined() && x.dim() == 4, shape_error, "{}: expected an image batch [B, C, H, W], got {}", op,
            x.defined() ? x.sizes() : shape{});
  LTL_CHECK(x.is_contiguous(), shape_error, "{}: the batch {} must be contiguous (call .contiguous())", op, x.sizes());
}

/// A non-owning xtensor view of `n` contiguous elements at p with the given row-major shape.
template <class T, std::size_t N>
auto adapt_host(T* p, std::array<index_t, N> dims) {
  std::array<std::size_t, N> shp{};
  std::size_t n = 1;
  for (std::size_t i = 0; i < N; ++i) n *= shp[i] = static_cast<std::size_t>(dims[i]);
  return xt::adapt(p, n, xt::no_ownership(), shp);
}
}  // namespace detail

/// Per-channel normalisation x ← (x − mean[c]) / stddev[c], computed in T.
/// Example (SPEC §5): `normalize{.mean = {0.2860}, .stddev = {0.3530}}`.
struct normalize {
  std::vector<double> mean;    ///< [C]
  std::vector<double> stddev;  ///< [C], all > 0

  /// Normalises x [B, C, H, W] in place.
  template <real_scalar T>
  void operator()(tensor<T>& x) const {
    detail::check_batch(x, "normalize");
    const index_t B = x.size(0), C = x.size(1), hw = x.size(2) * x.size(3);
    LTL_CHECK(static_cast<index_t>(mean.size()) == C && static_cast<index_t>(stddev.size()) == C, shape_error,
              "normalize: {} means and {} standard deviations for a batch {} with {} channels", mean.size(),
              stddev.size(), x.sizes(), C);
    for (std::size_t c = 0; c < stddev.size(); ++c)
      LTL_CHECK(stddev[c] > 0 && std::isfinite(stddev[c]) && std::isfinite(mean[c]), value_error,
                "normalize: channel {} has mean {} and stddev {} (stddev must be positive and finite)", c, mean[c],
                stddev[c]);
    T* p = x.data();
    // One plane at a time with scalar mean/stddev: a contiguous expression xtensor assigns as a
    // flat (vectorisable) loop, where a broadcast [C, 1] operand would fall back to a stepper.
    LTL_OMP(omp parallel for schedule(static))
    for (index_t plane = 0; plane < B * C; ++plane) {
      const auto c = static_cast<std::size_t>(plane % C);
      const T m = static_cast<T>(mean[c]), s = static_cast<T>(stddev[c]);
      auto q = detail::adapt_host(p + plane * hw, std::array<index_t, 1>{hw});
      xt::noalias(q) = (q - m) / s;
    }
  }
};

/// Top-left corner of the H×W crop inside the zero-padded (H+2·pad)×(W+2·pad) image; each
/// coordinate is in [0, 2·pad], and (pad, pad) is the identity.
struct crop_offset {
  index_t top = 0;
  index_t left = 0;
};

/// Zero-pads every image of x [B, C, H, W] by `pad` on each side and crops H×W at offsets[b]
/// (all channels of an image share its offset), in place. Any element type: floats in [0, 1],
/// or the bytes of a batch whose scaling and normalisation wait for the upload (data::byte_images).
template <tensor_element T>
void pad_crop_(tensor<T>& x, index_t pad, std::span<const crop_offset> offsets) {
  detail::check_batch(x, "pad_crop_");
  const index_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  LTL_CHECK(pad >= 0, value_error, "pad_crop_: pad must be non-negative, got {}", pad);
  LTL_CHECK(static_cast<index_t>(offsets.size()) == B, shape_error, "pad_crop_: {} offsets for a batch {}",
            offsets.size(), x.sizes());
  for (std::size_t b = 0; b < offsets.size(); ++b)
    LTL_CHECK(offsets[b].top >= 0 && offsets[b].top <= 2 * pad && offsets[b].left >= 0 && offsets[b].left <= 2 * pad,
              value_error, "pad_crop_: offset ({}, {}) of image {} is outside [0, {}]", offsets[b].top,
              offsets[b].left, b, 2 * pad);
  T* p = x.data();
  LTL_OMP(omp parallel)
  {
    std::vector<T> src(static_cast<std::size_t>(C * H * W));
    LTL_OMP(omp for schedule(static))
    for (index_t b = 0; b < B; ++b) {
      const crop_offset o = offsets[static_cast<std::size_t>(b)];
      const index_t dy = o.top - pad, dx = o.left - pad;  // output (y, x) reads input (y + dy, x + dx)
      if (dy == 0 && dx == 0) continue;
      T* img = p + b * C * H * W;
      std::copy(img, img + C * H * W, src.begin());
      std::fill(img, img + C * H * W, T(0));
      // The output rows/columns whose source lies inside the image; the rest stays zero (padding).
      const index_t y0 = std::max<index_t>(0, -dy), y1 = std::min(H, H - dy);
      const index_t x0 = std::max<index_t>(0, -dx), x1 = std::min(W, W - dx);
      // Row copies rather than an xt::view window assignment: without xsimd, xtensor 0.24 assigns
      // strided views element by element through steppers, several times slower than this.
      for (index_t c = 0; c < C; ++c)
        for (index_t y = y0; y < y1; ++y)
          std::copy_n(src.data() + (c * H + y + dy) * W + x0 + dx, x1 - x0, img + (c * H + y) * W + x0);
    }
  }
}

/// Mirrors image b of x [B, C, H, W] left-right where flip[b] != 0, in place (any element type).
template <tensor_element T>
void hflip_(tensor<T>& x, std::span<const std::uint8_t> flip) {
  detail::check_batch(x, "hflip_");
  const index_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  LTL_CHECK(static_cast<index_t>(flip.size()) == B, shape_error, "hflip_: {} flags for a batch {}", flip.size(),
            x.sizes());
  T* p = x.data();
  // A mirror in place stays a per-row reverse: assigning an xt::flip view of the image to the
  // image itself aliases, and the alias-safe form would copy every flipped image once more.
  LTL_OMP(omp parallel for schedule(static))
  for (index_t plane = 0; plane < B * C; ++plane) {
    if (!flip[static_cast<std::size_t>(plane / C)]) continue;
    for (index_t y = 0; y < H; ++y) std::reverse(p + (plane * H + y) * W, p + (plane * H + y + 1) * W);
  }
}

/// Zero-pad by `pad` then random crop back to the original size (pad 4 in the CIFAR and
/// Fashion-MNIST recipes, SPEC §4–5).
struct random_pad_crop {
  index_t pad = 4;

  /// Draws one offset per image: top then left, each uniform in [0, 2·pad].
  [[nodiscard]] std::vector<crop_offset> draw(index_t batch, rng& g) const {
    LTL_CHECK(pad >= 0, value_error, "random_pad_crop: pad must be non-negative, got {}", pad);
    std::vector<crop_offset> o(static_cast<std::size_t>(batch));
    const auto n = static_cast<std::uint64_t>(2 * pad + 1);
    for (auto& c : o) {
      c.top = static_cast<index_t>(g.below(n));
      c.left = static_cast<index_t>(g.below(n));
    }
    return o;
  }
  /// Crops x [B, C, H, W] in place with offsets drawn from g.
  template <tensor_element T>
  void operator()(tensor<T>& x, rng& g) const {
    detail::check_batch(x, "random_pad_crop");
    const auto o = draw(x.size(0), g);
    pad_crop_(x, pad, std::span<const crop_offset>(o));
  }
};

/// Horizontal flip of each image with probability p (0.5 in the recipes).
struct random_hflip {
  double p = 0.5;

  /// Draws one flag per image: flip iff g.uniform() < p.
  [[nodiscard]] std::vector<std::uint8_t> draw(index_t batch, rng& g) const {
    LTL_CHECK(p >= 0.0 && p <= 1.0, value_error, "random_hflip: p must be in [0, 1], got {}", p);
    std::vector<std::uint8_t> f(static_cast<std::size_t>(batch));
    for (auto& v : f) v = g.uniform() < p ? 1 : 0;
    return f;
  }
  /// Flips images of x [B, C, H, W] in place with flags drawn from g.
  template <tensor_element T>
  void operator()(tensor<T>& x, rng& g) const {
    detail::check_batch(x, "random_hflip");
    const auto f = draw(x.size(0), g);
    hflip_(x, std::span<const std::uint8_t>(f));
  }
};

/// The standard training augmentation: pad + random crop, then flip (crop offsets for the whole
/// batch are drawn before the flip flags), then normalise.
///
/// Crop and flip only move pixels and pad with black, so they give the same images on the bytes
/// of a batch as on its [0, 1] floats: augment() on the bytes, then the scaling and `norm`
/// (data::to_floats), is operator() bit for bit. That is how a GPU trainer uploads a quarter of
/// the bytes and normalises on the device (train::trainer, data::image_delivery::bytes).
struct standard_augment {
  random_pad_crop crop{};
  random_hflip flip{};
  normalize norm{};

  /// Crop and flip of x [B, C, H, W] in place (bytes or [0, 1] floats), drawn from g.
  template <tensor_element T>
  void augment(tensor<T>& x, rng& g) const {
    crop(x, g);
    flip(x, g);
  }
  /// augment(), then normalisation by `norm`.
  template <real_scalar T>
  void operator()(tensor<T>& x, rng& g) const {
    augment(x, g);
    norm(x);
  }
};

}  // namespace ltl::data
