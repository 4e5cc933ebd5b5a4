#pragma once
/// \file
/// CPU kernel of the fused logit-adjusted loss (SPEC §7), forward and backward in one pass.
///
///   z'_c = s·(z_c − m_c·[c = y]) / a_c + b_c,  p = softmax(z'),  ℓ = w_y·(1 − p_y)^φ·(−log p_y),
///   L = Σ_i ℓ_i / Σ_i w_{y_i}.
/// With q = p_y:  ∂ℓ/∂z'_c = w_y·F·(p_c − [c = y]),  F = (1 − q)^φ − φ·q·(1 − q)^(φ−1)·log q,
/// and ∂z'_c/∂z_c = s / a_c. Each row of z is read from memory once (the max, exponentials and
/// gradient passes over a row run in cache) and ∂z is written once; no one-hot matrix is formed.
///
/// float logits take a vectorised path: adjusted logits, max and exponentials in float with a
/// polynomial exp (≈ 1 ulp), Σ exp accumulated in double, the label's own terms (log p_y,
/// p_y − 1, margin) in double — so the loss and ∂z keep ~1e-6 relative accuracy. Rows longer
/// than one vector run as a pipeline of three rows per thread (loss_simd.hpp's row_sweep), so
/// that reading the next row and writing the previous row's gradient overlap the exponentials;
/// rows of at most 16 classes run sixteen at a time, one per lane. double logits run the
/// scalar path in double throughout.

// nvcc's front end (which parses host code in .cu files) cannot handle the vector extensions of
// the float path; such translation units use the scalar path for float too. A .cu file parses
// this kernel because <ltlearn/cuda.hpp> includes the whole library, whose default device is the
// CPU (the CUDA tests compare with it); the backend contract itself needs no CPU header.
#if !defined(__CUDACC__)
#define LTL_LOSS_SIMD 1
#include "ltlearn/backends/cpu/loss_simd.hpp"
#else
#define LTL_LOSS_SIMD 0
#endif
#include "ltlearn/backends/contract/loss.hpp"
#include "ltlearn/backends/cpu/reduce.hpp"

#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace ltl {

// The float path keeps 64-byte vectors in local variables (-Wpsabi: see loss_simd.hpp).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace cpu {

/// Loss value of logits z [B, C] with labels y [B]; writes ∂L/∂z into dz [B, C] when dz is
/// non-null, and each ℓ_i into row_loss [B] when non-null. Optional per-sample factors
/// sample_w [B] multiply ℓ_i without entering the denominator Σ w_{y_i}, so that
/// λ·L(z, y_a) + (1 − λ)·L(z, y_b) (mixup, Remix) is two calls. Throws value_error on bad labels.
template <class T>
double fused_loss(const host_tensor<T>& z, const tensor<std::int64_t, device>& y, const loss_terms& t,
                  host_tensor<T>* dz, host_tensor<T>* row_loss = nullptr, const host_tensor<T>* sample_w = nullptr) {
  check_fused_loss_args(z.sizes(), y.sizes(), t);
  const index_t B = z.size(0), C = z.size(1);
  const auto zc = z.contiguous();
  const auto yc = y.contiguous();
  const T* pz = zc.data();
  host_tensor<T> swc;
  if (sample_w && sample_w->defined()) {
    check_fused_loss_sample_weights(sample_w->sizes(), z.sizes());
    swc = sample_w->contiguous();
  }
  const T* psw = swc.defined() ? swc.data() : nullptr;
  const std::int64_t* py = yc.data();
  for (index_t i = 0; i < B; ++i) check_fused_loss_label(py[i], i, C);

  // Per-class multipliers s/a_c, precomputed once.
  std::vector<double> mult(static_cast<std::size_t>(C), t.scale);
  if (!t.temperatures.empty())
    for (index_t c = 0; c < C; ++c) mult[static_cast<std::size_t>(c)] = t.scale / t.temperatures[static_cast<std::size_t>(c)];
  const bool has_off = !t.offsets.empty(), has_w = !t.weights.empty(), has_m = !t.margins.empty();
  const double phi = t.focal;

  double wsum = t.normalizer;
  if (wsum == 0)
    for (index_t i = 0; i < B; ++i) wsum += has_w ? t.weights[static_cast<std::size_t>(py[i])] : 1.0;
  check_fused_loss_normalizer(wsum);
  const double inv_wsum = 1.0 / wsum;

  T* pd = dz ? dz->data() : nullptr;
  T* pr = row_loss ? row_loss->data() : nullptr;
  const int nt = num_threads();
  std::vector<double> partial(static_cast<std::size_t>(nt), 0.0);
  // float path: per-class multipliers and offsets as float vectors.
  std::vector<float> mult_f, off_f;
  if constexpr (std::is_same_v<T, float>) {
    mult_f.assign(mult.begin(), mult.end());
    if (has_off) off_f.assign(t.offsets.begin(), t.offsets.end());
  }
  // Without temperatures every class has the multiplier s: the float SIMD path then multiplies by
  // one broadcast value instead of loading a per-class vector.
  [[maybe_unused]] const bool uniform_mult = t.temperatures.empty();
  // Row i's loss from q = p_y and log p_y (added to the thread's acc and stored per row if
  // asked); returns the gradient's scale k: ∂ℓ/∂z'_c = k·(p_c − [c = y])·mult_c.
  auto loss_of_row = [&](index_t i, std::size_t yi, double q, double logq, double& acc) {
    const double w = (has_w ? t.weights[yi] : 1.0) * (psw ? static_cast<double>(psw[i]) : 1.0);
    double focal_w = 1.0, F = 1.0;
    if (phi != 0.0) {
      const double one_q = std::max(0.0, 1.0 - q);
      focal_w = std::pow(one_q, phi);
      F = one_q > 0 ? focal_w - phi * q * std::pow(one_q, phi - 1.0) * logq : 0.0;
    }
    const double li = -w * focal_w * logq;
    acc += li;
    if (pr) pr[i] = static_cast<T>(li);
    return w * F * inv_wsum;
  };
#if LTL_LOSS_SIMD
  // log p_y from the label's adjusted logit zy (double), the row's max mx and lg = log Σ e,
  // where the label's own exponential was taken at float(zy): the first-order correction
  // −q·(zy − float(zy)) makes the sum consistent with zy (a one-class row gives exactly 0).
  auto label_log_p = [](double zy, float mx, double lg, double q) {
    return zy - static_cast<double>(mx) - lg - q * (zy - static_cast<double>(static_cast<float>(zy)));
  };
  auto rows_float = [&](index_t r0, index_t r1, int tid) {
    namespace ls = ltl::detail::loss_simd;
    const index_t cpad = (C + ls::lanes - 1) / ls::lanes * ls::lanes;
    // Gradients that would not stay in the last-level cache are streamed past it.
    const bool stream = B * C * static_cast<index_t>(sizeof(float)) > ls::stream_threshold();
    double acc = 0;
    const float* offp = has_off ? off_f.data() : nullptr;
    const float* mult_grad = uniform_mult ? nullptr : mult_f.data();
    auto sweep = [&](bool m, bool e, bool g, const float* z_next, float& max_next, const float* z, float mx, float* ev,
                     const float* e_prev, float k, float* d) {
      auto with = [&](auto adj) {
        return ls::row_sweep(m, e, g, adj, C, z_next, max_next, z, mx, ev, e_prev, mult_grad, k, d, stream);
      };
      const auto su = static_cast<float>(t.scale);
      if (uniform_mult)
        return has_off ? with(ls::adjust<true, true>{nullptr, su, offp}) : with(ls::adjust<true, false>{nullptr, su, nullptr});
      return has_off ? with(ls::adjust<false, true>{mult_f.data(), 0.0f, offp})
                     : with(ls::adjust<false, false>{mult_f.data(), 0.0f, nullptr});
    };
    // Loss of row i from log p_y, Σ e and e_y; returns the gradient's factor k with
    // ∂z_c = k·e_c·mult_c off the label, and sets d_y, the label's own entry.
    auto finish = [&](index_t i, double logq, double s, double e_y, float& d_y) {
      const auto yi = static_cast<std::size_t>(py[i]);
      const double q = e_y / s;
      const double k = loss_of_row(i, yi, q, logq, acc);
      d_y = static_cast<float>(k * (q - 1.0) * mult[yi]);
      return static_cast<float>(uniform_mult ? k / s * t.scale : k / s);
    };
    if (C <= ls::lanes) {
      // Rows no longer than one vector: sixteen rows at a time, one row per lane. The block is
      // loaded row by row and transposed in registers (class c of row i0 + l in zt[c][l]), so
      // that the adjustment, max, exponentials and logarithms of sixteen rows are a handful of
      // vector operations; the gradient is formed in the same layout and transposed back.
      constexpr int L = ls::lanes;
      using ltl::detail::load;
      using ltl::detail::store;
      const float* zbase = reinterpret_cast<const float*>(pz);
      const index_t total = B * C;
      alignas(64) float kf[L], dyv[L], zyf[L], tail[L];
      alignas(64) int ycls[L];
      double zy[L];
      for (index_t i0 = r0; i0 < r1; i0 += L) {
        const index_t n = std::min<index_t>(L, r1 - i0);
        const float* rows0 = zbase + i0 * C;
        ls::vf zt[L];
        for (index_t l = 0; l < L; ++l) {
          if (l >= n) {
            zt[l] = ls::vf{};
          } else if ((i0 + l) * C + L <= total) {
            zt[l] = load(rows0 + l * C);  // lanes past C belong to the next rows: ignored
          } else {  // a whole vector would read past the logits
            std::fill_n(tail, L, 0.0f);
            std::copy_n(rows0 + l * C, C, tail);
            zt[l] = load(tail);
          }
        }
        ltl::detail::transpose16(zt);
        for (index_t l = 0; l < L; ++l) {
          if (l >= n) {
            ycls[l] = -1;
            zyf[l] = 0.0f;
            continue;
          }
          const auto yi = static_cast<std::size_t>(py[i0 + l]);
          ycls[l] = static_cast<int>(yi);
          zy[l] = (static_cast<double>(rows0[l * C + static_cast<index_t>(yi)]) - (has_m ? t.margins[yi] : 0.0)) *
                      mult[yi] + (has_off ? t.offsets[yi] : 0.0);
          zyf[l] = static_cast<float>(zy[l]);
        }
        const ls::vi yv = load(ycls);
        const ls::vf zyv = load(zyf);
        // Adjusted logits (the label's with its margin, computed in double above), their max.
        ls::vf mx{};
        for (index_t c = 0; c < C; ++c) {
          const auto cu = static_cast<std::size_t>(c);
          ls::vf v = zt[c] * mult_f[cu] + (has_off ? off_f[cu] : 0.0f);
          v = yv == static_cast<int>(c) ? zyv : v;
          zt[c] = v;
          mx = c == 0 ? v : (mx > v ? mx : v);
        }
        ltl::detail::double8 s_lo{}, s_hi{};
        ls::vf ey{};
        for (index_t c = 0; c < C; ++c) {
          const ls::vf e = ls::exp_nonpositive(zt[c] - mx);
          zt[c] = e;
          ey = yv == static_cast<int>(c) ? e : ey;
          s_lo += __builtin_convertvector(__builtin_shufflevector(e, e, 0, 1, 2, 3, 4, 5, 6, 7), ltl::detail::double8);
          s_hi += __builtin_convertvector(__builtin_shufflevector(e, e, 8, 9, 10, 11, 12, 13, 14, 15),
                                          ltl::detail::double8);
        }
        const ltl::detail::double8 lg_lo = ls::log_positive(s_lo), lg_hi = ls::log_positive(s_hi);
        for (index_t l = 0; l < n; ++l) {
          const index_t i = i0 + l;
          const auto yi = static_cast<std::size_t>(ycls[l]);
          const double se_l = l < 8 ? s_lo[l] : s_hi[l - 8], lg = l < 8 ? lg_lo[l] : lg_hi[l - 8];
          const double q = static_cast<double>(ey[l]) / se_l;
          const double logq = label_log_p(zy[l], mx[l], lg, q);
          const double k = loss_of_row(i, yi, q, logq, acc);
          kf[l] = static_cast<float>(k / se_l);
          dyv[l] = static_cast<float>(k * (q - 1.0) * mult[yi]);
        }
        if (!pd) continue;
        // ∂z_c = k·p_c·mult_c, the label's entry k·(q − 1)·mult_y; back to rows.
        const ls::vf kv = load(kf), dv = load(dyv);
        for (index_t c = 0; c < C; ++c) {
          const ls::vf g = zt[c] * kv * mult_f[static_cast<std::size_t>(c)];
          zt[c] = yv == static_cast<int>(c) ? dv : g;
        }
        ltl::detail::transpose16(zt);
        // Whole vectors in row order where the vector stays inside the block's rows (it spills
        // into the following rows, whose own stores then overwrite it); the rest exactly, so
        // that no store reaches past the block.
        float* d0 = reinterpret_cast<float*>(pd) + i0 * C;
        for (index_t l = 0; l < n; ++l) {
          if (l * C + L <= n * C) {
            store(d0 + l * C, zt[l]);
          } else {
            store(tail, zt[l]);
            std::copy_n(tail, C, d0 + l * C);
          }
        }
      }
      partial[static_cast<std::size_t>(tid)] += acc;
      return;
    }
    // Rows r0..r1 as a pipeline (ls::row_sweep): the sweep for row i computes its exponentials
    // while reading row i+1 for its max and writing row i−1's gradient. Two exponential buffers
    // alternate between rows i and i−1.
    std::vector<float> e0(static_cast<std::size_t>(cpad)), e1(static_cast<std::size_t>(cpad));
    float* ebuf[2] = {e0.data(), e1.data()};
    float max_next = 0, k_prev = 0, dy_prev = 0;
    float* d_prev = nullptr;
    std::size_t y_prev = 0;
    sweep(true, false, false, reinterpret_cast<const float*>(pz) + r0 * C, max_next, nullptr, 0, nullptr, nullptr, 0,
          nullptr);
    for (index_t i = r0; i < r1; ++i) {
      const float* row = reinterpret_cast<const float*>(pz) + i * C;
      const auto yi = static_cast<std::size_t>(py[i]);
      // The label's adjusted logit in double, with its margin; a negative margin may raise it
      // above the other classes' max.
      const double zy = (static_cast<double>(row[yi]) - (has_m ? t.margins[yi] : 0.0)) * mult[yi] +
                        (has_off ? t.offsets[yi] : 0.0);
      const float mx = std::max(max_next, static_cast<float>(zy));
      float* e = ebuf[(i - r0) & 1];
      const bool prev = pd && i > r0;
      double s = sweep(i + 1 < r1, true, prev, row + C, max_next, row, mx, e, ebuf[(i - r0 + 1) & 1], k_prev, d_prev);
      if (prev) d_prev[y_prev] = dy_prev;
      // The sweep took the label's logit without its margin: replace its exponential.
      if (has_m) {
        const auto e_m = static_cast<float>(std::exp(static_cast<double>(static_cast<float>(zy)) - mx));
        s += static_cast<double>(e_m) - static_cast<double>(e[yi]);
        e[yi] = e_m;
      }
      k_prev = finish(i, label_log_p(zy, mx, std::log(s), static_cast<double>(e[yi]) / s), s,
                      static_cast<double>(e[yi]), dy_prev);
      d_prev = pd ? reinterpret_cast<float*>(pd) + i * C : nullptr;
      y_prev = yi;
    }
    if (d_prev) {  // drain: the last row's gradient
      sweep(false, false, true, nullptr, max_next, nullptr, 0, nullptr, ebuf[(r1 - 1 - r0) & 1], k_prev, d_prev);
      d_prev[y_prev] = dy_prev;
    }
    if (stream) ls::stream_fence();
    partial[static_cast<std::size_t>(tid)] += acc;
  };
#endif
  auto rows_double = [&](index_t r0, index_t r1, int tid) {
    std::vector<double> zp(static_cast<std::size_t>(C));
    double acc = 0;
    for (index_t i = r0; i < r1; ++i) {
      const T* row = pz + i * C;
      const auto yi = static_cast<std::size_t>(py[i]);
      // pass 1: adjusted logits and their max
      double mx = -INFINITY;
      for (index_t c = 0; c < C; ++c) {
        const auto cu = static_cast<std::size_t>(c);
        double v = static_cast<double>(row[c]);
        if (has_m && cu == yi) v -= t.margins[cu];
        v *= mult[cu];
        if (has_off) v += t.offsets[cu];
        zp[cu] = v;
        mx = std::max(mx, v);
      }
      // pass 2: exponentials (kept for the gradient) and log-sum-exp
      const double zy = zp[yi];
      double se = 0;
      for (index_t c = 0; c < C; ++c) {
        auto& e = zp[static_cast<std::size_t>(c)];
        e = std::exp(e - mx);
        se += e;
      }
      const double logq = zy - mx - std::log(se);
      const double q = std::exp(logq);
      const double k = loss_of_row(i, yi, q, logq, acc);
      // pass 3: gradient
      if (pd) {
        T* drow = pd + i * C;
        const double inv_se = 1.0 / se;
        for (index_t c = 0; c < C; ++c) {
          const auto cu = static_cast<std::size_t>(c);
          const double p = zp[cu] * inv_se;
          drow[c] = static_cast<T>(k * (p - (cu == yi ? 1.0 : 0.0)) * mult[cu]);
        }
      }
    }
    partial[static_cast<std::size_t>(tid)] += acc;
  };
  auto rows = [&](index_t r0, index_t r1, int tid) {
#if LTL_LOSS_SIMD
    if constexpr (std::is_same_v<T, float>) {
      rows_float(r0, r1, tid);
    } else {
      rows_double(r0, r1, tid);
    }
#else
    rows_double(r0, r1, tid);
#endif
  };
#if LTL_HAS_OPENMP
  // Each logit costs an exponential (~20 operations), so the loss splits over threads from a
  // quarter of the elementwise kernels' grain: (128, 100) runs on two threads, (128, 10) on one.
  if (B * C >= parallel_grain / 4 && B >= 2 && nt > 1) {
#pragma omp parallel num_threads(nt)
    {
      const index_t n = omp_get_num_threads(), tid = omp_get_thread_num();
      const index_t chunk = (B + n - 1) / n;
      const index_t r0 = std::min(B, tid * chunk), r1 = std::min(B, r0 + chunk);
      if (r0 < r1) rows(r0, r1, static_cast<int>(tid));
    }
  } else {
    rows(0, B, 0);
  }
#else
  rows(0, B, 0);
#endif
  double total = 0;
  for (double v : partial) total += v;
  return total * inv_wsum;
}

}  // namespace cpu

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
}  // namespace ltl
