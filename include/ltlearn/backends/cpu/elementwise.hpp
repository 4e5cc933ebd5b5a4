#pragma once
/// \file
/// CPU elementwise kernels: unary maps, broadcasting binary maps, in-place accumulation.
///
/// Fast paths: contiguous same-shape operands run as flat OpenMP loops the compiler
/// vectorises; everything else goes through the strided odometer of detail/strided.hpp.

#include "ltlearn/backends/contract/broadcast.hpp"
#include "ltlearn/core/config.hpp"
#include "ltlearn/tensor/tensor.hpp"

#include <array>
#include <cmath>

namespace ltl {

namespace cpu {

template <class T>
using host_tensor = tensor<T, device>;

/// Grain below which kernels stay single-threaded (thread wake-up costs more than the work).
inline constexpr index_t parallel_grain = 16384;

/// Runs f(begin, end) over [0, n) split across the OpenMP team when n is large.
template <class F>
void parallel_for(index_t n, F&& f, index_t grain = parallel_grain) {
#if LTL_HAS_OPENMP
  if (n >= 2 * grain) {
#pragma omp parallel
    {
      const index_t nt = omp_get_num_threads(), t = omp_get_thread_num();
      const index_t chunk = (n + nt - 1) / nt;
      const index_t b = std::min(n, t * chunk), e = std::min(n, b + chunk);
      if (b < e) f(b, e);
    }
    return;
  }
#else
  (void)grain;
#endif
  if (n > 0) f(index_t{0}, n);
}

/// out[i] = f(x[i]) into a new contiguous tensor.
template <class T, class F>
host_tensor<T> map(const host_tensor<T>& x, F f) {
  host_tensor<T> out(x.sizes());
  T* o = out.data();
  const T* p = x.data();
  if (x.is_contiguous()) {
    parallel_for(x.numel(), [&](index_t b, index_t e) {
      for (index_t i = b; i < e; ++i) o[i] = f(p[i]);
    });
  } else {
    const auto st = x.strides();
    parallel_for(x.numel(), [&](index_t b, index_t e) {
      index_t i = b;
      ltl::detail::strided_for<1>(x.sizes(), {st}, b, e, [&](const auto& off) { o[i++] = f(p[off[0]]); });
    });
  }
  return out;
}

/// out = f(a, b) with broadcasting, into a new contiguous tensor. `op` names the caller in errors.
template <class T, class F>
host_tensor<T> zip(const host_tensor<T>& a, const host_tensor<T>& b, F f, const char* op) {
  const shape s = broadcast_shapes(a.sizes(), b.sizes(), op);
  host_tensor<T> out(s);
  T* o = out.data();
  const T* pa = a.data();
  const T* pb = b.data();
  if (a.sizes() == s && b.sizes() == s && a.is_contiguous() && b.is_contiguous()) {
    parallel_for(out.numel(), [&](index_t i0, index_t i1) {
      for (index_t i = i0; i < i1; ++i) o[i] = f(pa[i], pb[i]);
    });
    return out;
  }
  const auto ea = a.expand(s), eb = b.expand(s);
  const std::array<shape, 2> st{ea.strides(), eb.strides()};
  parallel_for(out.numel(), [&](index_t i0, index_t i1) {
    index_t i = i0;
    ltl::detail::strided_for<2>(s, st, i0, i1, [&](const auto& off) { o[i++] = f(pa[off[0]], pb[off[1]]); });
  });
  return out;
}

/// dst[i] = f(dst[i], src[i]) in place; `src` broadcasts to dst's shape.
template <class T, class F>
void update(host_tensor<T>& dst, const host_tensor<T>& src, F f, const char* op) {
  LTL_CHECK(broadcast_shapes(dst.sizes(), src.sizes(), op) == dst.sizes(), shape_error,
            "{}: cannot broadcast {} into {}", op, src.sizes(), dst.sizes());
  T* d = dst.data();
  const T* s = src.data();
  if (src.sizes() == dst.sizes() && dst.is_contiguous() && src.is_contiguous()) {
    parallel_for(dst.numel(), [&](index_t i0, index_t i1) {
      for (index_t i = i0; i < i1; ++i) d[i] = f(d[i], s[i]);
    });
    return;
  }
  const std::array<shape, 2> st{dst.strides(), src.expand(dst.sizes()).strides()};
  parallel_for(dst.numel(), [&](index_t i0, index_t i1) {
    ltl::detail::strided_for<2>(dst.sizes(), st, i0, i1, [&](const auto& off) { d[off[0]] = f(d[off[0]], s[off[1]]); });
  });
}

// Named kernels (backends/contract/kernels.hpp): the ops layer and the autograd engine call
// these by argument-dependent lookup; other backends provide the same names for their tensors.

template <class T>
host_tensor<T> add(const host_tensor<T>& a, const host_tensor<T>& b) {
  return zip(a, b, [](T x, T y) { return x + y; }, "add");
}
template <class T>
host_tensor<T> sub(const host_tensor<T>& a, const host_tensor<T>& b) {
  return zip(a, b, [](T x, T y) { return x - y; }, "sub");
}
template <class T>
host_tensor<T> mul(const host_tensor<T>& a, const host_tensor<T>& b) {
  return zip(a, b, [](T x, T y) { return x * y; }, "mul");
}
template <class T>
host_tensor<T> div(const host_tensor<T>& a, const host_tensor<T>& b) {
  return zip(a, b, [](T x, T y) { return x / y; }, "div");
}
/// dst += src (src broadcasts into dst).
template <class T>
void accumulate(host_tensor<T>& dst, const host_tensor<T>& src) {
  update(dst, src, [](T x, T y) { return x + y; }, "accumulate");
}
/// y = alpha * x + beta
template <class T>
host_tensor<T> affine(const host_tensor<T>& x, T alpha, T beta) {
  return map(x, [=](T v) { return alpha * v + beta; });
}
template <class T>
host_tensor<T> relu_forward(const host_tensor<T>& x) {
  return map(x, [](T v) { return v > T(0) ? v : T(0); });
}
/// dx = dy where y > 0 (y is relu's output).
template <class T>
host_tensor<T> relu_backward(const host_tensor<T>& dy, const host_tensor<T>& y) {
  return zip(dy, y, [](T g, T v) { return v > T(0) ? g : T(0); }, "relu_backward");
}
/// e^x
template <class T>
host_tensor<T> exp_forward(const host_tensor<T>& x) {
  return map(x, [](T v) { return std::exp(v); });
}
/// Natural logarithm (no clamping: log of a non-positive value is −inf/NaN, as in IEEE).
template <class T>
host_tensor<T> log_forward(const host_tensor<T>& x) {
  return map(x, [](T v) { return std::log(v); });
}
/// x^p
template <class T>
host_tensor<T> pow_forward(const host_tensor<T>& x, T p) {
  return map(x, [p](T v) { return std::pow(v, p); });
}
/// dx = dy·p·x^(p−1) (x is pow's input).
template <class T>
host_tensor<T> pow_backward(const host_tensor<T>& dy, const host_tensor<T>& x, T p) {
  return zip(dy, x, [p](T gi, T vi) { return gi * p * std::pow(vi, p - T(1)); }, "pow_backward");
}
/// max(x, 0) + slope·min(x, 0)
template <class T>
host_tensor<T> leaky_relu_forward(const host_tensor<T>& x, T slope) {
  return map(x, [slope](T v) { return v > T(0) ? v : slope * v; });
}
/// dx = dy where x > 0, slope·dy elsewhere (x is leaky_relu's input).
template <class T>
host_tensor<T> leaky_relu_backward(const host_tensor<T>& dy, const host_tensor<T>& x, T slope) {
  return zip(dy, x, [slope](T gi, T vi) { return vi > T(0) ? gi : slope * gi; }, "leaky_relu_backward");
}

}  // namespace cpu
}  // namespace ltl
