#pragma once
/// \file
/// 2-D convolution by im2col + GEMM: the kernel for every geometry (any kernel size, stride,
/// padding, dilation and groups). Per sample and group, the receptive fields are unrolled into
/// a column matrix col [Cin/groups · KH · KW, Ho · Wo] and the group's output is
/// W_g [Cout/groups, K] · col. Samples are spread over the OpenMP team with one column buffer
/// per thread (taken from the caching allocator, so steady-state training allocates nothing);
/// with a single sample the loop stays serial and Eigen parallelises the GEMM itself. 1×1
/// stride-1 unpadded convolutions use the input plane as the column matrix directly.

#include "ltlearn/backends/contract/conv.hpp"
#include "ltlearn/backends/cpu/conv/direct3x3.hpp"
#include "ltlearn/backends/cpu/conv/kernel_args.hpp"
#include "ltlearn/backends/cpu/gemm.hpp"
#include "ltlearn/backends/cpu/reduce.hpp"

#include <algorithm>
#include <vector>

namespace ltl::detail {

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

}  // namespace ltl::detail

namespace ltl::cpu::im2col_gemm {

/// y [N, Cout, Ho, Wo] = epilogue(conv2d(x, w)) for contiguous x [N, Cin, H, W] and w [Cout,
/// Cin/groups, KH, KW]; the epilogue runs after each sample's GEMM, while its output is in cache.
template <class T>
void forward(const host_tensor<T>& x, const host_tensor<T>& w, const conv2d_geometry& g,
             const ltl::detail::conv_epilogue<T>& ep, host_tensor<T>& y) {
  const index_t cg = g.cin_per_group(), og = g.cout_per_group(), k = g.col_rows(), p = g.out_plane();
  const host_tensor<T> wmat = w.reshape(shape{g.groups, og, k});
  const bool any = ep.any();
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
}

/// dx [N, Cin, H, W] (shape x_shape) from contiguous dy [N, Cout, Ho, Wo] and w.
template <class T>
host_tensor<T> input_grad(const host_tensor<T>& dy, const host_tensor<T>& w, const conv2d_geometry& g,
                          const shape& x_shape) {
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

/// dW [Cout, Cin/groups, KH, KW] (shape w_shape) from contiguous dy and x. Each thread sums its
/// samples into a private buffer; the buffers are then added in thread order, so the result is
/// deterministic for a given thread count.
template <class T>
host_tensor<T> weight_grad(const host_tensor<T>& dy, const host_tensor<T>& x, const conv2d_geometry& g,
                           const shape& w_shape) {
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

}  // namespace ltl::cpu::im2col_gemm
