#pragma once
/// \file
/// Differentiable shape ops: constant 2-D padding, the CIFAR ResNet option-A shortcut,
/// concatenation, and reshape/flatten.
///
/// pad2d, concat and reshape are written with tensor views (narrow + copy_, reshape), which
/// every device supports, so they need no backend kernel; shortcut_a's strided subsample is a
/// backend kernel (backends/cpu/indexing.hpp).

#include "ltlearn/autograd/variable.hpp"
#include "ltlearn/backends/cpu/indexing.hpp"
#include "ltlearn/ops/elementwise.hpp"

#include <initializer_list>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace ltl {

/// Amounts of constant padding for pad2d, set with designated initializers:
/// `pad2d(x, {.top = 1, .left = 2})`.
struct pad2d_options {
  index_t top = 0;
  index_t bottom = 0;
  index_t left = 0;
  index_t right = 0;
  double value = 0;  ///< fill value of the border
};

/// Constant padding of x [N, C, H, W] → [N, C, top + H + bottom, left + W + right].
/// Backward crops the gradient back to [N, C, H, W].
template <real_scalar T, device D>
variable<T, D> pad2d(const variable<T, D>& x, const pad2d_options& opt) {
  LTL_CHECK(x.dim() == 4, shape_error, "pad2d: expects x [N, C, H, W], got {}", x.sizes());
  LTL_CHECK(opt.top >= 0 && opt.bottom >= 0 && opt.left >= 0 && opt.right >= 0, value_error,
            "pad2d: padding must be non-negative, got top {} bottom {} left {} right {} for input {}", opt.top,
            opt.bottom, opt.left, opt.right, x.sizes());
  const index_t h = x.size(2), w = x.size(3);
  tensor<T, D> out(shape{x.size(0), x.size(1), opt.top + h + opt.bottom, opt.left + w + opt.right});
  out.fill_(static_cast<T>(opt.value));
  out.narrow(2, opt.top, h).narrow(3, opt.left, w).copy_(x.value());
  return make_result<T, D>(std::move(out), "pad2d", {&x}, [top = opt.top, left = opt.left, h, w](const tensor<T, D>& g) {
    return grads_t<T, D>{g.narrow(2, top, h).narrow(3, left, w).contiguous()};
  });
}

/// pad2d with positional amounts (top, bottom, left, right) and fill `value`.
template <real_scalar T, device D>
variable<T, D> pad2d(const variable<T, D>& x, index_t top, index_t bottom, index_t left, index_t right,
                     std::type_identity_t<T> value = T(0)) {
  return pad2d(x, pad2d_options{.top = top, .bottom = bottom, .left = left, .right = right,
                                .value = static_cast<double>(value)});
}

/// The CIFAR ResNet option-A shortcut (He et al. 2016, §4.2): x [N, Cin, H, W] subsampled as
/// x[:, :, ::stride, ::stride], then zero-padded with (out_channels − Cin)/2 channels before and
/// after → [N, out_channels, ⌈H/stride⌉, ⌈W/stride⌉]; the reference CIFAR ResNet's
/// `F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))`. The channel difference
/// must be even and non-negative.
template <real_scalar T, device D>
variable<T, D> shortcut_a(const variable<T, D>& x, index_t out_channels, index_t stride) {
  LTL_CHECK(x.dim() == 4, shape_error, "shortcut_a: expects x [N, C, H, W], got {}", x.sizes());
  LTL_CHECK(stride >= 1 && out_channels >= x.size(1) && (out_channels - x.size(1)) % 2 == 0, shape_error,
            "shortcut_a: cannot map input {} to {} channels with stride {} (needs stride >= 1 and an even, "
            "non-negative channel difference)",
            x.sizes(), out_channels, stride);
  return make_result<T, D>(shortcut_a_forward(x.value(), out_channels, stride), "shortcut_a", {&x},
                           [xs = x.sizes(), stride](const tensor<T, D>& g) {
                             return grads_t<T, D>{shortcut_a_backward(g, xs, stride)};
                           });
}

/// Concatenation along `dim` of variables whose shapes agree everywhere else. Backward hands
/// each input its slice of the gradient.
template <real_scalar T, device D>
variable<T, D> concat(const std::vector<variable<T, D>>& xs, int dim = 0) {
  LTL_CHECK(!xs.empty(), shape_error, "concat: no inputs");
  const shape& s0 = xs[0].sizes();
  dim = normalize_dim(dim, s0.size(), "concat");
  shape out_shape = s0;
  out_shape[dim] = 0;
  for (std::size_t k = 0; k < xs.size(); ++k) {
    const shape& sk = xs[k].sizes();
    bool ok = sk.size() == s0.size();
    for (int d = 0; ok && d < s0.size(); ++d) ok = d == dim || sk[d] == s0[d];
    if (!ok) {
      std::string all;
      for (std::size_t j = 0; j < xs.size(); ++j) all += fmt::format("{}{}", j ? ", " : "", xs[j].sizes());
      detail::throw_error<shape_error>("concat: input {} has shape {}, which does not match input 0's {} outside "
                                       "dimension {} (all shapes: {})",
                                       k, sk, s0, dim, all);
    }
    out_shape[dim] += sk[dim];
  }
  tensor<T, D> out(out_shape);
  std::vector<index_t> offsets;
  offsets.reserve(xs.size() + 1);
  index_t off = 0;
  for (const auto& x : xs) {
    offsets.push_back(off);
    out.narrow(dim, off, x.size(dim)).copy_(x.value());
    off += x.size(dim);
  }
  offsets.push_back(off);
  return make_result<T, D>(std::move(out), "concat", xs,
                                     [offsets = std::move(offsets), dim](const tensor<T, D>& g,
                                                                         const std::vector<bool>& need) {
                                       grads_t<T, D> r(need.size());
                                       for (std::size_t k = 0; k < need.size(); ++k)
                                         if (need[k])
                                           r[k] = g.narrow(dim, offsets[k], offsets[k + 1] - offsets[k]).contiguous();
                                       return r;
                                     });
}

/// concat of a braced list: `concat({a, b}, 1)`.
template <real_scalar T, device D>
variable<T, D> concat(std::initializer_list<variable<T, D>> xs, int dim = 0) {
  return concat(std::vector<variable<T, D>>(xs), dim);
}

/// x viewed with shape `s` (one extent may be −1); shares storage when x is contiguous.
/// Backward reshapes the gradient back to x's shape.
template <real_scalar T, device D>
variable<T, D> reshape(const variable<T, D>& x, const shape& s) {
  return make_result<T, D>(x.value().reshape(s), "reshape", {&x},
                           [xs = x.sizes()](const tensor<T, D>& g) { return grads_t<T, D>{g.reshape(xs)}; });
}

/// Dimensions start_dim..end_dim of x merged into one (as torch.flatten): [N, C, H, W] with
/// start_dim = 1 → [N, C·H·W].
template <real_scalar T, device D>
variable<T, D> flatten(const variable<T, D>& x, int start_dim = 1, int end_dim = -1) {
  if (x.dim() == 0) return reshape(x, shape{1});
  start_dim = normalize_dim(start_dim, x.dim(), "flatten");
  end_dim = normalize_dim(end_dim, x.dim(), "flatten");
  LTL_CHECK(start_dim <= end_dim, shape_error, "flatten: start_dim {} is after end_dim {} for shape {}", start_dim,
            end_dim, x.sizes());
  shape s;
  index_t merged = 1;
  for (int d = 0; d < x.dim(); ++d) {
    if (d < start_dim || d > end_dim) {
      s.push_back(x.size(d));
    } else {
      merged *= x.size(d);
      if (d == end_dim) s.push_back(merged);
    }
  }
  return reshape(x, s);
}

}  // namespace ltl
