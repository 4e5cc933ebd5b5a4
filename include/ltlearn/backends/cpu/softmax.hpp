#pragma once
/// \file
/// CPU kernels that normalise along one dimension: softmax, log-softmax and L2 normalisation,
/// with their backward passes.
///
/// A contiguous tensor reduced along dimension d is a set of `outer × inner` lines of `n`
/// elements spaced `inner` apart ([outer, n, inner]). Each line is handled by one thread, so
/// results do not depend on the thread count. The last dimension (inner = 1) takes a unit-stride
/// instantiation the compiler vectorises. Line sums are accumulated in double (SPEC §1).

#include "ltlearn/backends/contract/softmax.hpp"
#include "ltlearn/backends/cpu/elementwise.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

namespace ltl::detail {

/// [outer, n, inner] view of dimension `d` of a contiguous tensor of shape `s`.
struct dim_lines {
  index_t outer = 1, n = 1, inner = 1;
  [[nodiscard]] index_t lines() const noexcept { return outer * inner; }
  /// Offset of the first element of line l (lines are numbered o·inner + i).
  [[nodiscard]] index_t base(index_t l) const noexcept { return (l / inner) * n * inner + l % inner; }
};

inline dim_lines dim_lines_of(const shape& s, int d) {
  dim_lines L;
  for (int k = 0; k < d; ++k) L.outer *= s[k];
  L.n = s[d];
  for (int k = d + 1; k < s.size(); ++k) L.inner *= s[k];
  return L;
}

/// Runs f(base_offset, line_index, stride) for every line, in parallel over lines. The stride is
/// passed as a compile-time 1 on the last dimension so that the inner loops vectorise.
template <class F>
void for_each_dim_line(const dim_lines& L, F&& f) {
  const index_t grain = std::max<index_t>(1, cpu::parallel_grain / std::max<index_t>(1, L.n));
  if (L.inner == 1) {
    cpu::parallel_for(
        L.lines(),
        [&](index_t b, index_t e) {
          for (index_t l = b; l < e; ++l) f(l * L.n, l, std::integral_constant<index_t, 1>{});
        },
        grain);
  } else {
    cpu::parallel_for(
        L.lines(),
        [&](index_t b, index_t e) {
          for (index_t l = b; l < e; ++l) f(L.base(l), l, L.inner);
        },
        grain);
  }
}

/// Largest element of a line (−inf for an empty line).
template <class T, class S>
T dim_line_max(const T* x, index_t n, S s) {
  T m = -std::numeric_limits<T>::infinity();
  for (index_t j = 0; j < n; ++j) m = std::max(m, x[j * s]);
  return m;
}

}  // namespace ltl::detail

namespace ltl::cpu {

/// Softmax of x along `dim`: exp(x − max) / Σ exp(x − max). Result contiguous, shape of x.
template <class T>
host_tensor<T> softmax_forward(const host_tensor<T>& x, int dim) {
  dim = normalize_dim(dim, x.dim(), "softmax");
  const host_tensor<T> xc = x.contiguous();
  host_tensor<T> y(x.sizes());
  const T* px = xc.data();
  T* py = y.data();
  const auto L = ltl::detail::dim_lines_of(x.sizes(), dim);
  ltl::detail::for_each_dim_line(L, [&](index_t base, index_t, auto s) {
    const T* xl = px + base;
    T* yl = py + base;
    const T m = ltl::detail::dim_line_max(xl, L.n, s);
    double sum = 0;
    for (index_t j = 0; j < L.n; ++j) {
      const T e = std::exp(xl[j * s] - m);
      yl[j * s] = e;
      sum += static_cast<double>(e);
    }
    const double inv = 1.0 / sum;
    for (index_t j = 0; j < L.n; ++j) yl[j * s] = static_cast<T>(static_cast<double>(yl[j * s]) * inv);
  });
  return y;
}

/// Log-softmax of x along `dim`: (x − max) − log Σ exp(x − max). Finite for finite logits of
/// any magnitude.
template <class T>
host_tensor<T> log_softmax_forward(const host_tensor<T>& x, int dim) {
  dim = normalize_dim(dim, x.dim(), "log_softmax");
  const host_tensor<T> xc = x.contiguous();
  host_tensor<T> y(x.sizes());
  const T* px = xc.data();
  T* py = y.data();
  const auto L = ltl::detail::dim_lines_of(x.sizes(), dim);
  ltl::detail::for_each_dim_line(L, [&](index_t base, index_t, auto s) {
    const T* xl = px + base;
    T* yl = py + base;
    const T m = ltl::detail::dim_line_max(xl, L.n, s);
    double sum = 0;
    for (index_t j = 0; j < L.n; ++j) sum += static_cast<double>(std::exp(xl[j * s] - m));
    const double log_sum = std::log(sum);
    for (index_t j = 0; j < L.n; ++j)
      yl[j * s] = static_cast<T>(static_cast<double>(xl[j * s] - m) - log_sum);
  });
  return y;
}

/// Gradient of softmax: dx = y ⊙ (g − Σ g ⊙ y), with y the forward output.
template <class T>
host_tensor<T> softmax_backward(const host_tensor<T>& g, const host_tensor<T>& y, int dim) {
  dim = normalize_dim(dim, y.dim(), "softmax_backward");
  check_softmax_grad(g.sizes(), y.sizes(), "softmax_backward");
  const host_tensor<T> gc = g.contiguous(), yc = y.contiguous();
  host_tensor<T> dx(y.sizes());
  const T* pg = gc.data();
  const T* py = yc.data();
  T* pd = dx.data();
  const auto L = ltl::detail::dim_lines_of(y.sizes(), dim);
  ltl::detail::for_each_dim_line(L, [&](index_t base, index_t, auto s) {
    double dot = 0;
    for (index_t j = 0; j < L.n; ++j)
      dot += static_cast<double>(pg[base + j * s]) * static_cast<double>(py[base + j * s]);
    const T d = static_cast<T>(dot);
    for (index_t j = 0; j < L.n; ++j) pd[base + j * s] = py[base + j * s] * (pg[base + j * s] - d);
  });
  return dx;
}

/// Gradient of log-softmax: dx = g − exp(y) · Σ g, with y the forward output.
template <class T>
host_tensor<T> log_softmax_backward(const host_tensor<T>& g, const host_tensor<T>& y, int dim) {
  dim = normalize_dim(dim, y.dim(), "log_softmax_backward");
  check_softmax_grad(g.sizes(), y.sizes(), "log_softmax_backward");
  const host_tensor<T> gc = g.contiguous(), yc = y.contiguous();
  host_tensor<T> dx(y.sizes());
  const T* pg = gc.data();
  const T* py = yc.data();
  T* pd = dx.data();
  const auto L = ltl::detail::dim_lines_of(y.sizes(), dim);
  ltl::detail::for_each_dim_line(L, [&](index_t base, index_t, auto s) {
    double gs = 0;
    for (index_t j = 0; j < L.n; ++j) gs += static_cast<double>(pg[base + j * s]);
    const T t = static_cast<T>(gs);
    for (index_t j = 0; j < L.n; ++j) pd[base + j * s] = pg[base + j * s] - std::exp(py[base + j * s]) * t;
  });
  return dx;
}

/// L2 normalisation along `dim` as PyTorch's F.normalize: y = x / max(‖x‖, eps).
/// Returns {y, norms}; norms holds the unclamped ‖x‖ of every line, with extent 1 along `dim`,
/// and is what the backward needs.
template <class T>
std::pair<host_tensor<T>, host_tensor<T>> l2_normalize_forward(const host_tensor<T>& x, int dim, T eps) {
  dim = normalize_dim(dim, x.dim(), "l2_normalize");
  const host_tensor<T> xc = x.contiguous();
  host_tensor<T> y(x.sizes());
  shape ns = x.sizes();
  ns[dim] = 1;
  host_tensor<T> norms(ns);
  const T* px = xc.data();
  T* py = y.data();
  T* pn = norms.data();
  const auto L = ltl::detail::dim_lines_of(x.sizes(), dim);
  ltl::detail::for_each_dim_line(L, [&](index_t base, index_t l, auto s) {
    double ss = 0;
    for (index_t j = 0; j < L.n; ++j) {
      const double v = static_cast<double>(px[base + j * s]);
      ss += v * v;
    }
    const double norm = std::sqrt(ss);
    pn[l] = static_cast<T>(norm);
    const double inv = 1.0 / std::max(norm, static_cast<double>(eps));
    for (index_t j = 0; j < L.n; ++j) py[base + j * s] = static_cast<T>(static_cast<double>(px[base + j * s]) * inv);
  });
  return {std::move(y), std::move(norms)};
}

/// Gradient of l2_normalize. Where ‖x‖ ≥ eps: dx = (g − y·Σ g ⊙ y) / ‖x‖; where the norm was
/// clamped to eps the denominator is a constant and dx = g / eps (PyTorch's clamp_min rule).
template <class T>
host_tensor<T> l2_normalize_backward(const host_tensor<T>& g, const host_tensor<T>& y, const host_tensor<T>& norms,
                                     int dim, T eps) {
  dim = normalize_dim(dim, y.dim(), "l2_normalize_backward");
  check_softmax_grad(g.sizes(), y.sizes(), "l2_normalize_backward");
  const host_tensor<T> gc = g.contiguous(), yc = y.contiguous(), nc = norms.contiguous();
  host_tensor<T> dx(y.sizes());
  const T* pg = gc.data();
  const T* py = yc.data();
  const T* pn = nc.data();
  T* pd = dx.data();
  const auto L = ltl::detail::dim_lines_of(y.sizes(), dim);
  check_l2_normalize_norms(norms.numel(), L.lines(), y.sizes(), dim);
  ltl::detail::for_each_dim_line(L, [&](index_t base, index_t l, auto s) {
    const T norm = pn[l];
    if (norm >= eps) {
      double dot = 0;
      for (index_t j = 0; j < L.n; ++j)
        dot += static_cast<double>(pg[base + j * s]) * static_cast<double>(py[base + j * s]);
      const T d = static_cast<T>(dot);
      for (index_t j = 0; j < L.n; ++j) pd[base + j * s] = (pg[base + j * s] - py[base + j * s] * d) / norm;
    } else {
      for (index_t j = 0; j < L.n; ++j) pd[base + j * s] = pg[base + j * s] / eps;
    }
  });
  return dx;
}

}  // namespace ltl::cpu
