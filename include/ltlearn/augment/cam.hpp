#pragma once
/// \file
/// Class activation maps and their decomposition into class-specific and class-generic
/// locations (Chu, Bian, Liu, Ye, "Feature Space Augmentation for Long-Tailed Data", ECCV 2020,
/// §3.2, Eq. 1–3; SPEC §10).
///
///   M_c(x, y) = Σ_k w_k^c f_k(x, y)                                   (Eq. 1)
///
/// with f [K, H, W] the last feature map (global average pooling and a linear classifier with
/// weights W [C, K] follow). The classifier's bias is left out: it adds a constant to the map,
/// which the per-map min-max normalisation to [0, 1] removes anyway. For the same reason the
/// CAM of a cosine classifier (normalised rows of W, normalised pooled feature) is obtained
/// from the raw weights: both normalisations are positive per-row / per-sample scales.
///
/// Masks (Alg. 1, lines 7 and 12): class-specific locations M ≥ τ_s (Eq. 2 counts sgn(0) = 1),
/// class-generic locations M < τ_g (Alg. 1; Eq. 3 would also count M = τ_g). They are binary
/// and applied to the feature vectors (F^s = M^s ⊙ F), as in Alg. 1.
///
/// Maps and masks are host tensors (the feature bank's data); loops over them run in parallel
/// on the host with OpenMP, each output element written by one thread, so results do not
/// depend on the thread count.

#include "ltlearn/core/config.hpp"
#include "ltlearn/core/error.hpp"
#include "ltlearn/ops/elementwise.hpp"
#include "ltlearn/tensor/tensor.hpp"

#include <algorithm>
#include <cstdint>
#include <span>

namespace ltl::augment {

/// CAMs of every class: features [N, K, H, W], weight [C, K] → [N, C, H, W] with
/// out[n, c] = Σ_k weight[c, k]·features[n, k] (a 1×1 convolution by the classifier's rows).
template <real_scalar T>
tensor<T> class_activation_maps(const tensor<T>& features, const tensor<T>& weight) {
  LTL_CHECK(features.dim() == 4 && weight.dim() == 2 && weight.size(1) == features.size(1), shape_error,
            "class_activation_maps: features {} must be [N, K, H, W] and weight {} [C, K]", features.sizes(),
            weight.sizes());
  const index_t N = features.size(0), K = features.size(1), L = features.size(2) * features.size(3);
  const index_t C = weight.size(0);
  const auto f = features.contiguous();
  const auto w = weight.contiguous();
  tensor<T> out(shape{N, C, features.size(2), features.size(3)});
  LTL_OMP(omp parallel for schedule(static) if (N * C >= 8))
  for (index_t nc = 0; nc < N * C; ++nc) {
    const index_t n = nc / C, c = nc % C;
    const T* fn = f.data() + n * K * L;
    const T* wc = w.data() + c * K;
    T* o = out.data() + nc * L;
    for (index_t p = 0; p < L; ++p) {
      double s = 0;
      for (index_t k = 0; k < K; ++k) s += static_cast<double>(wc[k]) * static_cast<double>(fn[k * L + p]);
      o[p] = static_cast<T>(s);
    }
  }
  return out;
}

/// CAM of each sample's own class: features [N, K, H, W], weight [C, K], labels [N] → [N, H, W].
template <real_scalar T>
tensor<T> true_class_cam(const tensor<T>& features, const tensor<T>& weight, std::span<const std::int64_t> labels) {
  LTL_CHECK(features.dim() == 4 && weight.dim() == 2 && weight.size(1) == features.size(1) &&
                static_cast<index_t>(labels.size()) == features.size(0),
            shape_error, "true_class_cam: features {} [N, K, H, W], weight {} [C, K] and {} labels do not match",
            features.sizes(), weight.sizes(), labels.size());
  const index_t N = features.size(0), C = weight.size(0);
  tensor<T> rows(shape{N, weight.size(1)});
  const auto w = weight.contiguous();
  for (index_t n = 0; n < N; ++n) {
    const std::int64_t y = labels[static_cast<std::size_t>(n)];
    LTL_CHECK(y >= 0 && y < C, value_error, "true_class_cam: label {} of sample {} is outside [0, {})", y, n, C);
    std::copy_n(w.data() + y * w.size(1), w.size(1), rows.data() + n * w.size(1));
  }
  // One class per sample: the "classes" of class_activation_maps are taken one at a time.
  tensor<T> out(shape{N, features.size(2), features.size(3)});
  for (index_t n = 0; n < N; ++n) {
    auto m = class_activation_maps(features.narrow(0, n, 1), rows.narrow(0, n, 1));
    std::copy_n(m.data(), m.numel(), out.data() + n * m.numel());
  }
  return out;
}

/// Min-max normalisation of each map to [0, 1]: maps [N, ...] → same shape, each of the N maps
/// rescaled to (M − min)/(max − min). A constant map carries no location preference and becomes
/// all zeros (every location generic, only zero-threshold ones specific).
template <real_scalar T>
tensor<T> normalize_cam(const tensor<T>& maps) {
  LTL_CHECK(maps.dim() >= 2, shape_error, "normalize_cam: maps {} must be [N, ...]", maps.sizes());
  const index_t N = maps.size(0), L = maps.numel() / std::max<index_t>(N, 1);
  auto out = maps.contiguous().clone();
  for (index_t n = 0; n < N; ++n) {
    T* m = out.data() + n * L;
    const auto [lo, hi] = std::minmax_element(m, m + L);
    const T mn = *lo, range = *hi - *lo;
    for (index_t p = 0; p < L; ++p) m[p] = range > T(0) ? (m[p] - mn) / range : T(0);
  }
  return out;
}

namespace detail {
/// 1 where `keep(M)`, else 0, for every value of `cam` (same shape, contiguous).
template <real_scalar T, class Keep>
tensor<T> binary_mask(const tensor<T>& cam, Keep keep) {
  const auto m = cam.contiguous();
  tensor<T> out(cam.sizes());
  for (index_t i = 0; i < m.numel(); ++i) out.data()[i] = keep(m.data()[i]) ? T(1) : T(0);
  return out;
}
}  // namespace detail

/// Checks 0 ≤ τ ≤ 1 for a threshold on normalised CAMs.
inline void check_cam_threshold(double tau, const char* name) {
  LTL_CHECK(tau >= 0 && tau <= 1, value_error, "cam masks: {} = {} must lie in [0, 1] (CAMs are normalised)", name,
            tau);
}

/// Class-specific mask of normalised CAMs: 1 where M ≥ τ_s, else 0 (same shape as `cam`).
template <real_scalar T>
tensor<T> specific_mask(const tensor<T>& cam, double tau_s) {
  check_cam_threshold(tau_s, "tau_s");
  return detail::binary_mask(cam, [t = static_cast<T>(tau_s)](T m) { return m >= t; });
}

/// Class-generic mask of normalised CAMs: 1 where M < τ_g, else 0 (same shape as `cam`).
template <real_scalar T>
tensor<T> generic_mask(const tensor<T>& cam, double tau_g) {
  check_cam_threshold(tau_g, "tau_g");
  return detail::binary_mask(cam, [t = static_cast<T>(tau_g)](T m) { return m < t; });
}

/// F ⊙ mask: features [N, K, H, W] times a binary mask [N, H, W] broadcast over channels.
template <real_scalar T>
tensor<T> apply_mask(const tensor<T>& features, const tensor<T>& mask) {
  LTL_CHECK(features.dim() == 4 && mask.dim() == 3 && mask.size(0) == features.size(0) &&
                mask.size(1) == features.size(2) && mask.size(2) == features.size(3),
            shape_error, "apply_mask: features {} must be [N, K, H, W] and mask {} [N, H, W]", features.sizes(),
            mask.sizes());
  return ltl::mul(variable<T>(features), variable<T>(mask.unsqueeze(1))).value();
}

/// Nearest-neighbour resize of maps [N, H, W] → [N, H2, W2]: source row ⌊y·H/H2⌋, column
/// ⌊x·W/W2⌋. Used to carry a last-map CAM to an earlier, finer augmentation point (each coarse
/// location covers a block of fine ones when H2 is a multiple of H).
template <real_scalar T>
tensor<T> resize_nearest(const tensor<T>& maps, index_t H2, index_t W2) {
  LTL_CHECK(maps.dim() == 3 && H2 > 0 && W2 > 0, shape_error, "resize_nearest: maps {} must be [N, H, W], target {}x{}",
            maps.sizes(), H2, W2);
  const index_t N = maps.size(0), H = maps.size(1), W = maps.size(2);
  const auto m = maps.contiguous();
  tensor<T> out(shape{N, H2, W2});
  for (index_t n = 0; n < N; ++n)
    for (index_t y = 0; y < H2; ++y)
      for (index_t x = 0; x < W2; ++x)
        out.data()[(n * H2 + y) * W2 + x] = m.data()[(n * H + y * H / H2) * W + x * W / W2];
  return out;
}

}  // namespace ltl::augment
