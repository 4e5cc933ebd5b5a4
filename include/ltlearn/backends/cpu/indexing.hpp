#pragma once
/// \file
/// CPU indexing kernels: index_select and its scatter-add backward, label gather/scatter,
/// one-hot encoding, per-sample permuted mixing (lerp_mix) and the CIFAR option-A shortcut.
///
/// Every kernel that reads integer labels or indices validates them first and throws
/// ltl::value_error naming the op, the bad value, its position and the valid range: an
/// out-of-range label is a data bug that must never turn into an out-of-bounds access.
/// Scatter-adds (where repeated indices accumulate) are parallelised over disjoint output
/// elements, each summed in a fixed order, so results do not depend on the thread count.

#include "ltlearn/backends/contract/indexing.hpp"
#include "ltlearn/backends/cpu/elementwise.hpp"

#include <algorithm>
#include <cstdint>
#include <utility>

namespace ltl::cpu {

/// Slices of x [..., n, ...] at `indices` [K] along `dim` → [..., K, ...], contiguous.
template <class T>
host_tensor<T> index_select_forward(const host_tensor<T>& x, int dim, const host_tensor<std::int64_t>& indices) {
  dim = normalize_dim(dim, x.dim(), "index_select");
  check_index_select(indices.sizes(), "index_select");
  const host_tensor<std::int64_t> ic = indices.contiguous();
  const std::int64_t* idx = ic.data();
  const index_t k_count = ic.numel();
  ltl::detail::check_index_range(idx, k_count, x.size(dim), "index_select", "index");
  const host_tensor<T> xc = x.contiguous();
  shape os = x.sizes();
  os[dim] = k_count;
  host_tensor<T> out(os);
  index_t outer = 1, inner = 1;
  for (int d = 0; d < dim; ++d) outer *= x.size(d);
  for (int d = dim + 1; d < x.dim(); ++d) inner *= x.size(d);
  const index_t n = x.size(dim);
  const T* px = xc.data();
  T* po = out.data();
  parallel_for(
      outer * k_count,
      [&](index_t b, index_t e) {
        for (index_t r = b; r < e; ++r) {
          const index_t o = r / k_count, k = r % k_count;
          const T* src = px + (o * n + idx[k]) * inner;
          std::copy(src, src + inner, po + r * inner);
        }
      },
      std::max<index_t>(1, parallel_grain / std::max<index_t>(1, inner)));
  return out;
}

/// Backward of index_select: zeros of `x_shape` with g's slices added at `indices` along `dim`
/// (repeated indices accumulate).
template <class T>
host_tensor<T> index_select_backward(const host_tensor<T>& g, int dim, const host_tensor<std::int64_t>& indices,
                                     const shape& x_shape) {
  dim = normalize_dim(dim, x_shape.size(), "index_select_backward");
  const host_tensor<std::int64_t> ic = indices.contiguous();
  const std::int64_t* idx = ic.data();
  const index_t k_count = ic.numel();
  check_index_select_backward(g.sizes(), dim, indices.sizes(), x_shape);
  ltl::detail::check_index_range(idx, k_count, x_shape[dim], "index_select_backward", "index");
  const host_tensor<T> gc = g.contiguous();
  auto dx = host_tensor<T>::zeros(x_shape);
  index_t outer = 1, inner = 1;
  for (int d = 0; d < dim; ++d) outer *= x_shape[d];
  for (int d = dim + 1; d < x_shape.size(); ++d) inner *= x_shape[d];
  const index_t n = x_shape[dim];
  const T* pg = gc.data();
  T* pd = dx.data();
  // Output elements (o, ·, i) are disjoint across o and across i: split whichever is longer.
  auto run = [&](index_t o0, index_t o1, index_t i0, index_t i1) {
    for (index_t o = o0; o < o1; ++o)
      for (index_t k = 0; k < k_count; ++k) {
        T* dst = pd + (o * n + idx[k]) * inner;
        const T* src = pg + (o * k_count + k) * inner;
        for (index_t i = i0; i < i1; ++i) dst[i] += src[i];
      }
  };
  const index_t work = std::max<index_t>(1, k_count * inner);
  if (outer >= inner) {
    parallel_for(outer, [&](index_t b, index_t e) { run(b, e, 0, inner); },
                 std::max<index_t>(1, parallel_grain / work));
  } else {
    parallel_for(inner, [&](index_t b, index_t e) { run(0, outer, b, e); },
                 std::max<index_t>(1, parallel_grain / std::max<index_t>(1, k_count * outer)));
  }
  return dx;
}

/// out[i] = x[i, labels[i]] for x [N, C] (any strides) and labels [N].
template <class T>
host_tensor<T> gather_forward(const host_tensor<T>& x, const host_tensor<std::int64_t>& labels) {
  check_gather(x.sizes(), labels.sizes());
  const host_tensor<std::int64_t> lc = labels.contiguous();
  const std::int64_t* y = lc.data();
  const index_t n = x.size(0);
  ltl::detail::check_index_range(y, n, x.size(1), "gather", "label");
  host_tensor<T> out(shape{n});
  const T* px = x.data();
  const index_t s0 = x.strides()[0], s1 = x.strides()[1];
  T* po = out.data();
  parallel_for(n, [&](index_t b, index_t e) {
    for (index_t i = b; i < e; ++i) po[i] = px[i * s0 + y[i] * s1];
  });
  return out;
}

/// Backward of gather: [N, C] zeros with g[i] at (i, labels[i]).
template <class T>
host_tensor<T> gather_backward(const host_tensor<T>& g, const host_tensor<std::int64_t>& labels, index_t classes) {
  check_gather_backward(g.sizes(), labels.sizes());
  const host_tensor<std::int64_t> lc = labels.contiguous();
  const std::int64_t* y = lc.data();
  const index_t n = g.size(0);
  ltl::detail::check_index_range(y, n, classes, "gather_backward", "label");
  auto dx = host_tensor<T>::zeros(shape{n, classes});
  const T* pg = g.data();
  const index_t gs = g.strides()[0];
  T* pd = dx.data();
  parallel_for(n, [&](index_t b, index_t e) {
    for (index_t i = b; i < e; ++i) pd[i * classes + y[i]] = pg[i * gs];
  });
  return dx;
}

/// Writes the one-hot encoding of `labels` [...] into the contiguous `out` [..., C]: 1 at each
/// label, 0 elsewhere.
template <class T>
void one_hot_into(host_tensor<T>& out, const host_tensor<std::int64_t>& labels) {
  check_one_hot(out.sizes(), out.is_contiguous(), labels.sizes());
  const index_t classes = out.size(-1);
  const host_tensor<std::int64_t> lc = labels.contiguous();
  const std::int64_t* y = lc.data();
  const index_t n = lc.numel();
  ltl::detail::check_index_range(y, n, classes, "one_hot", "label");
  T* po = out.data();
  parallel_for(
      n,
      [&](index_t b, index_t e) {
        std::fill(po + b * classes, po + e * classes, T(0));
        for (index_t i = b; i < e; ++i) po[i * classes + y[i]] = T(1);
      },
      std::max<index_t>(1, parallel_grain / std::max<index_t>(1, classes)));
}

/// Number of rows of logits [B, C] whose row_argmax equals the label [B] (any label value:
/// one outside [0, C) matches no row).
template <class T>
index_t argmax_matches(const host_tensor<T>& logits, const host_tensor<std::int64_t>& labels) {
  check_argmax_matches(logits.sizes(), labels.sizes());
  const host_tensor<T> z = logits.contiguous();
  const host_tensor<std::int64_t> y = labels.contiguous();
  const index_t C = z.size(1);
  index_t k = 0;
  for (index_t i = 0; i < z.size(0); ++i) k += row_argmax(z.data() + i * C, C) == y.data()[i];
  return k;
}

/// out_i = (1 − λ_i)·a_i + λ_i·b_{perm(i)} for a, b [N, ...], lambda [N], perm [N] with
/// entries in [0, N).
template <class T>
host_tensor<T> lerp_mix_forward(const host_tensor<T>& a, const host_tensor<T>& b, const host_tensor<T>& lambda,
                                const host_tensor<std::int64_t>& perm) {
  check_lerp_mix(a.sizes(), b.sizes(), lambda.sizes(), perm.sizes());
  const index_t n = a.size(0), m = n > 0 ? a.numel() / n : 0;
  const host_tensor<std::int64_t> pc = perm.contiguous();
  const std::int64_t* p = pc.data();
  ltl::detail::check_index_range(p, n, n, "lerp_mix", "perm entry");
  const host_tensor<T> ac = a.contiguous(), bc = b.contiguous(), lc = lambda.contiguous();
  const T* pa = ac.data();
  const T* pb = bc.data();
  const T* pl = lc.data();
  host_tensor<T> out(a.sizes());
  T* po = out.data();
  parallel_for(
      n,
      [&](index_t r0, index_t r1) {
        for (index_t i = r0; i < r1; ++i) {
          const T l = pl[i], k = T(1) - l;
          const T* ai = pa + i * m;
          const T* bj = pb + p[i] * m;
          T* oi = po + i * m;
          for (index_t c = 0; c < m; ++c) oi[c] = k * ai[c] + l * bj[c];
        }
      },
      std::max<index_t>(1, parallel_grain / std::max<index_t>(1, m)));
  return out;
}

/// Gradient of lerp_mix with respect to a: (1 − λ_i)·g_i.
template <class T>
host_tensor<T> lerp_mix_backward_a(const host_tensor<T>& g, const host_tensor<T>& lambda) {
  check_lerp_mix_backward_a(g.sizes(), lambda.sizes());
  shape ls = shape::filled(g.dim(), 1);  // λ as [N, 1, ...] broadcasts over each sample
  ls[0] = g.size(0);
  return zip(g, lambda.reshape(ls), [](T gi, T l) { return (T(1) - l) * gi; }, "lerp_mix_backward");
}

/// Gradient of lerp_mix with respect to b: row perm(i) receives λ_i·g_i (repeated perm entries
/// accumulate in order of i).
template <class T>
host_tensor<T> lerp_mix_backward_b(const host_tensor<T>& g, const host_tensor<T>& lambda,
                                   const host_tensor<std::int64_t>& perm) {
  check_lerp_mix_backward_b(g.sizes(), lambda.sizes(), perm.sizes());
  const index_t n = g.size(0), m = n > 0 ? g.numel() / n : 0;
  const host_tensor<std::int64_t> pc = perm.contiguous();
  const std::int64_t* p = pc.data();
  ltl::detail::check_index_range(p, n, n, "lerp_mix_backward", "perm entry");
  const host_tensor<T> gc = g.contiguous(), lc = lambda.contiguous();
  const T* pg = gc.data();
  const T* pl = lc.data();
  auto db = host_tensor<T>::zeros(g.sizes());
  T* pd = db.data();
  // Split the feature columns: each thread owns a column range of every row of db.
  parallel_for(
      m,
      [&](index_t c0, index_t c1) {
        for (index_t i = 0; i < n; ++i) {
          const T l = pl[i];
          const T* gi = pg + i * m;
          T* dj = pd + p[i] * m;
          for (index_t c = c0; c < c1; ++c) dj[c] += l * gi[c];
        }
      },
      std::max<index_t>(1, parallel_grain / std::max<index_t>(1, n)));
  return db;
}

/// CIFAR ResNet option-A shortcut: x [N, Cin, H, W] subsampled as x[:, :, ::stride, ::stride],
/// then zero-padded with (out_channels − Cin)/2 channels on each side → [N, Cout, ⌈H/s⌉, ⌈W/s⌉].
template <class T>
host_tensor<T> shortcut_a_forward(const host_tensor<T>& x, index_t out_channels, index_t stride) {
  check_shortcut_a(x.sizes(), out_channels, stride);
  const index_t n = x.size(0), cin = x.size(1), h = x.size(2), w = x.size(3);
  const index_t ho = (h + stride - 1) / stride, wo = (w + stride - 1) / stride, pad = (out_channels - cin) / 2;
  host_tensor<T> out(shape{n, out_channels, ho, wo});
  const T* px = x.data();
  const shape st = x.strides();
  T* po = out.data();
  const index_t plane = ho * wo;
  parallel_for(
      n * out_channels,
      [&](index_t b, index_t e) {
        for (index_t q = b; q < e; ++q) {
          const index_t i = q / out_channels, c = q % out_channels - pad;
          T* dst = po + q * plane;
          if (c < 0 || c >= cin) {
            std::fill(dst, dst + plane, T(0));
            continue;
          }
          const T* src = px + i * st[0] + c * st[1];
          for (index_t r = 0; r < ho; ++r)
            for (index_t s = 0; s < wo; ++s) dst[r * wo + s] = src[r * stride * st[2] + s * stride * st[3]];
        }
      },
      std::max<index_t>(1, parallel_grain / std::max<index_t>(1, plane)));
  return out;
}

/// Backward of shortcut_a: zeros of `x_shape` [N, Cin, H, W] with the gradient of the kept
/// channels written back at the subsampled positions.
template <class T>
host_tensor<T> shortcut_a_backward(const host_tensor<T>& g, const shape& x_shape, index_t stride) {
  check_shortcut_a_backward(g.sizes(), x_shape, stride);
  const index_t n = x_shape[0], cin = x_shape[1], h = x_shape[2], w = x_shape[3];
  const index_t ho = g.size(2), wo = g.size(3), pad = (g.size(1) - cin) / 2;
  const host_tensor<T> gc = g.contiguous();
  const T* pg = gc.data();
  auto dx = host_tensor<T>::zeros(x_shape);
  T* pd = dx.data();
  parallel_for(
      n * cin,
      [&](index_t b, index_t e) {
        for (index_t q = b; q < e; ++q) {
          const index_t i = q / cin, c = q % cin;
          const T* src = pg + ((i * g.size(1)) + c + pad) * ho * wo;
          T* dst = pd + q * h * w;
          for (index_t r = 0; r < ho; ++r)
            for (index_t s = 0; s < wo; ++s) dst[r * stride * w + s * stride] = src[r * wo + s];
        }
      },
      std::max<index_t>(1, parallel_grain / std::max<index_t>(1, ho * wo)));
  return dx;
}

}  // namespace ltl::cpu
