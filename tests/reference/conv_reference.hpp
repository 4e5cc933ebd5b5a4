#pragma once
/// \file
/// Naive direct 2-D convolution (forward and both backward products) accumulated in double:
/// the oracle for every kernel of ltl::conv2d (conv2d_options::algorithm is ignored here).
/// Deliberately written as plain nested loops over the definition, sharing no code with the
/// library kernels: it needs only the options and the tensor type.

#include <ltlearn/backends/contract/conv.hpp>
#include <ltlearn/tensor/tensor.hpp>

namespace ltl_ref {

using ltl::index_t;
using ref_tensor = ltl::tensor<double>;

/// Output extent of a convolution along one axis.
inline index_t conv_out(index_t in, index_t k, index_t stride, index_t pad, index_t dil) {
  return (in + 2 * pad - dil * (k - 1) - 1) / stride + 1;
}

/// Calls f(n, co, oh, ow, ci, ki, kj, ih, iw) for every (output, tap) pair that reads a real
/// (non-padding) input element.
template <class F>
void for_each_tap(const ltl::shape& xs, const ltl::shape& ws, const ltl::conv2d_options& o, F&& f) {
  const index_t n_ = xs[0], h = xs[2], w = xs[3], cout = ws[0], cg = ws[1], kh = ws[2], kw = ws[3];
  const index_t og = cout / o.groups;
  const index_t ho = conv_out(h, kh, o.stride.h, o.padding.h, o.dilation.h);
  const index_t wo = conv_out(w, kw, o.stride.w, o.padding.w, o.dilation.w);
  for (index_t n = 0; n < n_; ++n)
    for (index_t co = 0; co < cout; ++co)
      for (index_t oh = 0; oh < ho; ++oh)
        for (index_t ow = 0; ow < wo; ++ow)
          for (index_t cl = 0; cl < cg; ++cl)
            for (index_t ki = 0; ki < kh; ++ki)
              for (index_t kj = 0; kj < kw; ++kj) {
                const index_t ih = oh * o.stride.h - o.padding.h + ki * o.dilation.h;
                const index_t iw = ow * o.stride.w - o.padding.w + kj * o.dilation.w;
                if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
                f(n, co, oh, ow, (co / og) * cg + cl, cl, ki, kj, ih, iw);
              }
}

/// y[n, co, oh, ow] = b[co] + Σ x[n, ci, ih, iw] · w[co, cl, ki, kj], in double.
template <class T>
ref_tensor conv2d(const ltl::tensor<T>& x, const ltl::tensor<T>& w, const ltl::tensor<T>& b,
                  const ltl::conv2d_options& o) {
  const auto& xs = x.sizes();
  const auto& ws = w.sizes();
  const ltl::shape ys{xs[0], ws[0], conv_out(xs[2], ws[2], o.stride.h, o.padding.h, o.dilation.h),
                      conv_out(xs[3], ws[3], o.stride.w, o.padding.w, o.dilation.w)};
  ref_tensor y = ref_tensor::zeros(ys);
  for (index_t n = 0; n < ys[0]; ++n)
    for (index_t co = 0; co < ys[1]; ++co)
      for (index_t oh = 0; oh < ys[2]; ++oh)
        for (index_t ow = 0; ow < ys[3]; ++ow) y.at({n, co, oh, ow}) = b.defined() ? double(b.at({co})) : 0.0;
  for_each_tap(xs, ws, o,
               [&](index_t n, index_t co, index_t oh, index_t ow, index_t ci, index_t cl, index_t ki, index_t kj,
                   index_t ih, index_t iw) {
                 y.at({n, co, oh, ow}) += double(x.at({n, ci, ih, iw})) * double(w.at({co, cl, ki, kj}));
               });
  return y;
}

/// dx = Σ over taps of dy · w (the adjoint of conv2d in its input), in double.
template <class T>
ref_tensor conv2d_grad_input(const ltl::tensor<T>& dy, const ltl::tensor<T>& w, const ltl::shape& xs,
                             const ltl::conv2d_options& o) {
  ref_tensor dx = ref_tensor::zeros(xs);
  for_each_tap(xs, w.sizes(), o,
               [&](index_t n, index_t co, index_t oh, index_t ow, index_t ci, index_t cl, index_t ki, index_t kj,
                   index_t ih, index_t iw) {
                 dx.at({n, ci, ih, iw}) += double(dy.at({n, co, oh, ow})) * double(w.at({co, cl, ki, kj}));
               });
  return dx;
}

/// dw = Σ over taps of dy · x (the adjoint of conv2d in its weight), in double.
template <class T>
ref_tensor conv2d_grad_weight(const ltl::tensor<T>& dy, const ltl::tensor<T>& x, const ltl::shape& ws,
                              const ltl::conv2d_options& o) {
  ref_tensor dw = ref_tensor::zeros(ws);
  for_each_tap(x.sizes(), ws, o,
               [&](index_t n, index_t co, index_t oh, index_t ow, index_t ci, index_t cl, index_t ki, index_t kj,
                   index_t ih, index_t iw) {
                 dw.at({co, cl, ki, kj}) += double(dy.at({n, co, oh, ow})) * double(x.at({n, ci, ih, iw}));
               });
  return dw;
}

}  // namespace ltl_ref
