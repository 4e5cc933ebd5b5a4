#pragma once
/// \file
/// 2-D batch normalisation on the CPU (options, result types and checks: backends/contract/batchnorm.hpp).
///
/// Shapes: x [N, C, H, W]; weight, bias, running_mean, running_var, saved mean and invstd [C].
/// Semantics follow PyTorch exactly: training normalises with the batch mean and the biased
/// batch variance and updates the running estimates with the unbiased variance (M/(M−1),
/// M = N·H·W) and momentum; evaluation normalises with the running estimates.
/// Channels are independent, so the kernels parallelise over channels; each channel's sums
/// run in a fixed order in double (eight-lane vectors of widened values), which keeps results
/// identical for any thread count. Training statistics take one pass: sums of x − K and
/// (x − K)² with K the channel's first value, which avoids E[x²] − E[x]² cancellation as
/// long as K is within a few standard deviations of the mean.
///
/// Fusions (options `relu`, argument `residual`): y = max(0, bn(x) + r). Backward masks dy with
/// the saved output (y > 0) inside its two passes, so ResNet blocks need no separate add and
/// ReLU passes, nor their intermediate tensors.

#include "ltlearn/backends/contract/batchnorm.hpp"
#include "ltlearn/backends/cpu/elementwise.hpp"
#include "ltlearn/backends/cpu/simd.hpp"

#include <array>
#include <cmath>
#include <tuple>
#include <type_traits>
#include <utility>

namespace ltl {

namespace cpu {

namespace bn_detail {
/// Grain (in channels) so that a parallel chunk holds at least parallel_grain elements.
inline index_t channel_grain(index_t per_channel) {
  return std::max<index_t>(1, parallel_grain / std::max<index_t>(1, per_channel));
}

/// Samples ahead whose planes the per-channel loops prefetch: about 4 KiB of each stream (at
/// least four planes) in flight, so that small planes, whose per-sample work is short, cover
/// the memory latency too.
template <class T>
inline index_t prefetch_ahead(index_t plane) noexcept {
  return std::max<index_t>(4, 4096 / std::max<index_t>(1, plane * static_cast<index_t>(sizeof(T))));
}

/// Prefetches the cache lines of p[0, n) (a channel's plane of a later sample: the planes of
/// one channel lie C·H·W apart, a stride the hardware prefetchers do not follow, so on small
/// planes the loops otherwise wait on memory at every sample).
template <class T>
inline void prefetch_plane(const T* p, index_t n) noexcept {
  const char* b = reinterpret_cast<const char*>(p);
  const index_t bytes = n * static_cast<index_t>(sizeof(T));
  for (index_t o = 0; o < bytes; o += 64) __builtin_prefetch(b + o);
}

// nvcc's front end does not parse the vector extensions used here; .cu files see this header
// because <ltlearn/cuda.hpp> includes the whole library (the CPU is its default device).
#if !defined(__CUDACC__)
/// Two running sums of 16-lane float vectors, kept in double in a fixed order: blocks of four
/// vectors are added in float (three roundings relative to four terms), then widened.
struct float_block_sums {
  using vf = ltl::detail::simd<float>::type;
  ltl::detail::double8 a1{}, a2{};
  vf b1{}, b2{};
  index_t k = 0;
  void add(const vf& x1, const vf& x2) noexcept {
    b1 = (k & 3) == 0 ? x1 : b1 + x1;
    b2 = (k & 3) == 0 ? x2 : b2 + x2;
    if ((k++ & 3) == 3) flush();
  }
  /// The two totals (the last, partial block included).
  std::pair<double, double> totals() noexcept {
    if ((k & 3) != 0) flush(), k = 0;
    return {ltl::detail::hsum(a1), ltl::detail::hsum(a2)};
  }

 private:
  static void widen_add(ltl::detail::double8& a, const vf& v) noexcept {
    using ltl::detail::double8;
    a += __builtin_convertvector(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7), double8) +
         __builtin_convertvector(__builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15), double8);
  }
  void flush() noexcept { widen_add(a1, b1), widen_add(a2, b2); }
};
#endif

/// s1 += Σ (p − k), s2 += Σ (p − k)² over n values, in double. float data with k a float
/// (the channel's first value): d = p − k and d² in 16-lane float vectors, blocks of four
/// vectors added in float, then widened and summed in double in a fixed order.
template <class T>
void shifted_sums(const T* p, index_t n, double k, double& s1, double& s2) {
  using ltl::detail::double8;
  index_t j = 0;
#if !defined(__CUDACC__)
  if constexpr (std::is_same_v<T, float>) {
    const auto kf = static_cast<float>(k);
    if (static_cast<double>(kf) == k) {
      constexpr int L = ltl::detail::simd<float>::lanes;
      float_block_sums acc;
      for (; j + L <= n; j += L) {
        const auto d = ltl::detail::load(p + j) - kf;
        acc.add(d, d * d);
      }
      auto [t1, t2] = acc.totals();
      for (; j < n; ++j) {
        const float d = p[j] - kf;
        t1 += static_cast<double>(d);
        t2 += static_cast<double>(d * d);
      }
      s1 += t1;
      s2 += t2;
      return;
    }
  }
#endif
  double8 a1{}, a2{};
  for (; j + 8 <= n; j += 8) {
    const double8 d = ltl::detail::widen8<T>::load(p + j) - k;
    a1 += d;
    a2 += d * d;
  }
  double t1 = ltl::detail::hsum(a1), t2 = ltl::detail::hsum(a2);
  for (; j < n; ++j) {
    const double d = static_cast<double>(p[j]) - k;
    t1 += d;
    t2 += d * d;
  }
  s1 += t1;
  s2 += t2;
}

/// sg += Σ g', sgx += Σ g'·(x − mu) over n values, with g' = g·[y > 0] when y is given; writes
/// g' to `masked` when non-null (the fused residual's gradient, in the same pass).
/// float data: 16-lane float arithmetic with x − mu taken against mu rounded to float (the
/// difference, mu − float(mu), is applied to the double sums: Σ g'·(x − mu) =
/// Σ g'·(x − mu_f) − (mu − mu_f)·Σ g'); blocks of four vectors are added in float, then
/// widened and summed in double in a fixed order. Other types: eight-lane double vectors.
template <class T>
void grad_sums(const T* g, const T* x, const T* y, index_t n, double mu, double& sg, double& sgx, T* masked) {
  using ltl::detail::double8;
  index_t j = 0;
  double t1 = 0, t2 = 0;
#if !defined(__CUDACC__)
  if constexpr (std::is_same_v<T, float>) {
    using vf = ltl::detail::simd<float>::type;
    constexpr int L = ltl::detail::simd<float>::lanes;
    const auto mu_f = static_cast<float>(mu);
    float_block_sums acc;
    for (; j + L <= n; j += L) {
      vf gv = ltl::detail::load(g + j);
      if (y) gv = ltl::detail::load(y + j) > 0.0f ? gv : vf{};
      if (masked) ltl::detail::store(masked + j, gv);
      acc.add(gv, gv * (ltl::detail::load(x + j) - mu_f));
    }
    std::tie(t1, t2) = acc.totals();
    for (; j < n; ++j) {
      const float gv = (!y || y[j] > 0.0f) ? g[j] : 0.0f;
      if (masked) masked[j] = gv;
      t1 += static_cast<double>(gv);
      t2 += static_cast<double>(gv * (x[j] - mu_f));
    }
    sg += t1;
    sgx += t2 - (mu - static_cast<double>(mu_f)) * t1;
    return;
  }
#endif
  using W = ltl::detail::widen8<T>;
  double8 a1{}, a2{};
  for (; j + 8 <= n; j += 8) {
    double8 gv = W::load(g + j);
    if (y) {  // lane-wise select, written so that nvcc's front end (no vector ?:) parses it too
      const double8 yv = W::load(y + j);
      for (int l = 0; l < 8; ++l) gv[l] = yv[l] > 0.0 ? gv[l] : 0.0;
    }
    if (masked)
      for (int l = 0; l < 8; ++l) masked[j + l] = static_cast<T>(gv[l]);
    a1 += gv;
    a2 += gv * (W::load(x + j) - mu);
  }
  t1 = ltl::detail::hsum(a1), t2 = ltl::detail::hsum(a2);
  for (; j < n; ++j) {
    const double gv = (!y || y[j] > T(0)) ? static_cast<double>(g[j]) : 0.0;
    if (masked) masked[j] = static_cast<T>(gv);
    t1 += gv;
    t2 += gv * (static_cast<double>(x[j]) - mu);
  }
  sg += t1;
  sgx += t2;
}
}  // namespace bn_detail

/// Batch-norm forward over x [N, C, H, W]. In training, updates `running_mean`/`running_var`
/// ([C], may be undefined) in place. `weight`/`bias` [C] may be undefined (no affine).
/// `residual` [N, C, H, W] (may be undefined) is added to the normalised output, then ReLU is
/// applied if `opt.relu`.
template <class T>
batch_norm_forward_result<T, device> batch_norm2d_forward(const host_tensor<T>& x_in, const host_tensor<T>& weight,
                                                          const host_tensor<T>& bias, host_tensor<T>& running_mean,
                                                          host_tensor<T>& running_var, const batch_norm_options& opt,
                                                          const host_tensor<T>& residual = {}) {
  check_batch_norm2d_forward(x_in, weight, bias, running_mean, running_var, opt, residual);
  const host_tensor<T> x = x_in.contiguous();
  const host_tensor<T> res = residual.defined() ? residual.contiguous() : host_tensor<T>();
  const index_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3), m = n * hw;
  batch_norm_forward_result<T, device> r{host_tensor<T>(x.sizes()), host_tensor<T>(shape{c}), host_tensor<T>(shape{c})};
  const T* px = x.data();
  const T* pr = res.defined() ? res.data() : nullptr;
  T* py = r.y.data();
  T* pmean = r.mean.data();
  T* pinv = r.invstd.data();
  const bool has_running = running_mean.defined();
  T* rm = has_running ? running_mean.data() : nullptr;
  T* rv = has_running ? running_var.data() : nullptr;
  const index_t rms = has_running ? running_mean.strides()[0] : 0, rvs = has_running ? running_var.strides()[0] : 0;
  const T* pw = weight.defined() ? weight.data() : nullptr;
  const T* pb = bias.defined() ? bias.data() : nullptr;
  const index_t ws = weight.defined() ? weight.strides()[0] : 0, bs = bias.defined() ? bias.strides()[0] : 0;
  const bool relu = opt.relu;
  const index_t ahead_n = bn_detail::prefetch_ahead<T>(hw);
  parallel_for(
      c,
      [&](index_t c0, index_t c1) {
        for (index_t ch = c0; ch < c1; ++ch) {
          double mean, var;
          if (opt.training) {
            const double k = static_cast<double>(px[ch * hw]);
            double s1 = 0, s2 = 0;
            for (index_t i = 0; i < n; ++i) {
              if (i + ahead_n < n)
                bn_detail::prefetch_plane(px + ((i + ahead_n) * c + ch) * hw, hw);
              bn_detail::shifted_sums(px + (i * c + ch) * hw, hw, k, s1, s2);
            }
            const double d = s1 / static_cast<double>(m);
            const double ss = std::max(0.0, s2 - s1 * d);  // Σ (x − mean)²
            mean = k + d;
            var = ss / static_cast<double>(m);
            if (has_running) {
              const double unbiased = ss / static_cast<double>(m - 1);
              T& a = rm[ch * rms];
              T& b = rv[ch * rvs];
              a = static_cast<T>((1.0 - opt.momentum) * static_cast<double>(a) + opt.momentum * mean);
              b = static_cast<T>((1.0 - opt.momentum) * static_cast<double>(b) + opt.momentum * unbiased);
            }
          } else {
            mean = static_cast<double>(rm[ch * rms]);
            var = static_cast<double>(rv[ch * rvs]);
          }
          const double inv = 1.0 / std::sqrt(var + opt.eps);
          pmean[ch] = static_cast<T>(mean);
          pinv[ch] = static_cast<T>(inv);
          const T scale = static_cast<T>(inv * (pw ? static_cast<double>(pw[ch * ws]) : 1.0));
          const T shift = pb ? pb[ch * bs] : T(0);
          const T mu = static_cast<T>(mean);
          for (index_t i = 0; i < n; ++i) {
            const index_t base = (i * c + ch) * hw;
            if (i + ahead_n < n) {
              const index_t ahead = base + ahead_n * c * hw;
              bn_detail::prefetch_plane(px + ahead, hw);
              if (pr) bn_detail::prefetch_plane(pr + ahead, hw);
            }
            const T* p = px + base;
            T* q = py + base;
            if (pr) {
              const T* e = pr + base;
              if (relu) {
                for (index_t j = 0; j < hw; ++j) q[j] = std::max(T(0), (p[j] - mu) * scale + shift + e[j]);
              } else {
                for (index_t j = 0; j < hw; ++j) q[j] = (p[j] - mu) * scale + shift + e[j];
              }
            } else if (relu) {
              for (index_t j = 0; j < hw; ++j) q[j] = std::max(T(0), (p[j] - mu) * scale + shift);
            } else {
              for (index_t j = 0; j < hw; ++j) q[j] = (p[j] - mu) * scale + shift;
            }
          }
        }
      },
      bn_detail::channel_grain(2 * m));
  return r;
}

/// Batch-norm backward from dy [N, C, H, W], the input x, weight [C] (may be undefined) and the
/// saved mean/invstd [C]. `need` = {dx, dweight, dbias}. Training mode differentiates through
/// the batch statistics; evaluation mode is a per-channel affine map. With a fused ReLU, pass
/// its output `relu_out`: dy is masked by relu_out > 0, and `need_masked` also returns that
/// masked gradient (the gradient of a fused residual).
template <class T>
batch_norm_backward_result<T, device> batch_norm2d_backward(const host_tensor<T>& dy_in, const host_tensor<T>& x_in,
                                                            const host_tensor<T>& weight, const host_tensor<T>& mean,
                                                            const host_tensor<T>& invstd, bool training,
                                                            std::array<bool, 3> need,
                                                            const host_tensor<T>& relu_out = {},
                                                            bool need_masked = false) {
  check_batch_norm2d_backward(dy_in, x_in, weight, mean, invstd, relu_out);
  const host_tensor<T> x = x_in.contiguous(), dy = dy_in.contiguous();
  const host_tensor<T> yr = relu_out.defined() ? relu_out.contiguous() : host_tensor<T>();
  const host_tensor<T> mu_t = mean.contiguous(), inv_t = invstd.contiguous();
  const index_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3), m = n * hw;
  batch_norm_backward_result<T, device> r;
  if (need[0]) r.dx = host_tensor<T>(x.sizes());
  if (need[1]) r.dweight = host_tensor<T>(shape{c});
  if (need[2]) r.dbias = host_tensor<T>(shape{c});
  if (need_masked) r.dmasked = yr.defined() ? host_tensor<T>(x.sizes()) : dy;
  const T* px = x.data();
  const T* pg = dy.data();
  const T* py = yr.defined() ? yr.data() : nullptr;
  T* pm = need_masked && py ? r.dmasked.data() : nullptr;
  const T* pw = weight.defined() ? weight.data() : nullptr;
  const index_t ws = weight.defined() ? weight.strides()[0] : 0;
  const bool need_sums = need[1] || need[2] || (need[0] && training);
  const index_t ahead_n = bn_detail::prefetch_ahead<T>(hw);
  parallel_for(
      c,
      [&](index_t c0, index_t c1) {
        for (index_t ch = c0; ch < c1; ++ch) {
          const double mu = static_cast<double>(mu_t.data()[ch]), inv = static_cast<double>(inv_t.data()[ch]);
          double sum_g = 0, sum_gx = 0;  // Σ dy' and Σ dy'·(x − mean), dy' the masked gradient
          // The masked gradient dy' is written in the sums' pass, and then read in dx's pass in
          // place of dy and the ReLU output.
          if (need_sums)
            for (index_t i = 0; i < n; ++i) {
              const index_t base = (i * c + ch) * hw;
              if (i + ahead_n < n) {
                const index_t ahead = base + ahead_n * c * hw;
                bn_detail::prefetch_plane(pg + ahead, hw);
                bn_detail::prefetch_plane(px + ahead, hw);
                if (py) bn_detail::prefetch_plane(py + ahead, hw);
              }
              bn_detail::grad_sums(pg + base, px + base, py ? py + base : nullptr, hw, mu, sum_g, sum_gx,
                                   pm ? pm + base : nullptr);
            }
          else if (pm)
            for (index_t i = 0; i < n; ++i) {
              const index_t base = (i * c + ch) * hw;
              for (index_t j = 0; j < hw; ++j) pm[base + j] = py[base + j] > T(0) ? pg[base + j] : T(0);
            }
          if (need[1]) r.dweight.data()[ch] = static_cast<T>(sum_gx * inv);
          if (need[2]) r.dbias.data()[ch] = static_cast<T>(sum_g);
          if (!need[0]) continue;
          const double w = pw ? static_cast<double>(pw[ch * ws]) : 1.0;
          const T scale = static_cast<T>(w * inv);
          T* q = r.dx.data();
          // dx = w·inv·(dy' − mean(dy') − x̂·mean(dy'·x̂)), with x̂ = (x − mean)·inv (training);
          // w·inv·dy' in evaluation, where the statistics are constants.
          const T g_mean = training ? static_cast<T>(sum_g / static_cast<double>(m)) : T(0);
          const T x_coef = training ? static_cast<T>(sum_gx * inv * inv / static_cast<double>(m)) : T(0);
          const T mu1 = static_cast<T>(mu);
          for (index_t i = 0; i < n; ++i) {
            const index_t base = (i * c + ch) * hw;
            if (i + ahead_n < n) {
              const index_t ahead = base + ahead_n * c * hw;
              bn_detail::prefetch_plane(px + ahead, hw);
              bn_detail::prefetch_plane(pm ? pm + ahead : pg + ahead, hw);
              if (!pm && py) bn_detail::prefetch_plane(py + ahead, hw);
            }
            const T* g = pg + base;
            const T* p = px + base;
            T* d = q + base;
            if (pm) {
              const T* gm = pm + base;
              for (index_t j = 0; j < hw; ++j) d[j] = scale * (gm[j] - g_mean - (p[j] - mu1) * x_coef);
            } else if (py) {
              const T* yy = py + base;
              for (index_t j = 0; j < hw; ++j)
                d[j] = scale * ((yy[j] > T(0) ? g[j] : T(0)) - g_mean - (p[j] - mu1) * x_coef);
            } else {
              for (index_t j = 0; j < hw; ++j) d[j] = scale * (g[j] - g_mean - (p[j] - mu1) * x_coef);
            }
          }
        }
      },
      bn_detail::channel_grain(2 * m));
  return r;
}

}  // namespace cpu
}  // namespace ltl
