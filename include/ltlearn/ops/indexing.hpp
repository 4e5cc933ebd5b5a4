#pragma once
/// \file
/// Differentiable indexing with integer labels: index_select, gather, lerp_mix (per-sample
/// permuted mixing), and the non-differentiable one_hot encoding.
///
/// Labels and indices are `tensor<std::int64_t, D>` on the same device as the data. Every op
/// validates them: an out-of-range value throws ltl::value_error naming the op, the value, its
/// position and the valid range. Ops copy the (small) label, index, λ and perm tensors they keep
/// for backward, so a loader that reuses its buffers cannot corrupt a pending gradient.

#include "ltlearn/autograd/variable.hpp"
#include "ltlearn/backends/cpu/indexing.hpp"
#include "ltlearn/ops/elementwise.hpp"

#include <cstdint>

namespace ltl {

/// Integer label/index tensor on device D.
template <device D>
using label_tensor = tensor<std::int64_t, D>;

/// The slices of x at `indices` [K] along `dim`: x [..., n, ...] → [..., K, ...] (as
/// torch.index_select). Backward scatter-adds into x; repeated indices accumulate.
template <real_scalar T, device D>
variable<T, D> index_select(const variable<T, D>& x, int dim, const label_tensor<D>& indices) {
  dim = normalize_dim(dim, x.dim(), "index_select");
  LTL_CHECK(indices.dim() == 1, shape_error, "index_select: indices must be 1-D [K], got shape {} (x is {})",
            indices.sizes(), x.sizes());
  return make_result<T, D>(index_select_forward(x.value(), dim, indices), "index_select", {&x},
                           [indices = indices.clone(), dim, xs = x.sizes()](const tensor<T, D>& g) {
                             return grads_t<T, D>{index_select_backward(g, dim, indices, xs)};
                           });
}

/// out[i] = x[i, labels[i]] for x [N, C], labels [N] → [N]: each sample's score of its own
/// class. Backward writes g[i] at (i, labels[i]) of a zero [N, C] gradient.
template <real_scalar T, device D>
variable<T, D> gather(const variable<T, D>& x, const label_tensor<D>& labels) {
  LTL_CHECK(x.dim() == 2 && labels.dim() == 1 && labels.size(0) == x.size(0), shape_error,
            "gather: expects x [N, C] and labels [N], got {} and {}", x.sizes(), labels.sizes());
  return make_result<T, D>(gather_forward(x.value(), labels), "gather", {&x},
                           [labels = labels.clone(), classes = x.size(1)](const tensor<T, D>& g) {
                             return grads_t<T, D>{gather_backward(g, labels, classes)};
                           });
}

/// One-hot encoding of labels [...] → [..., classes] of element type T (not differentiable):
/// `ltl::one_hot<float>(labels, 10)`.
template <tensor_element T, device D>
tensor<T, D> one_hot(const label_tensor<D>& labels, index_t classes) {
  LTL_CHECK(classes > 0, value_error, "one_hot: the number of classes must be positive, got {}", classes);
  shape s = labels.sizes();
  s.push_back(classes);
  tensor<T, D> out(s);
  one_hot_into(out, labels);
  return out;
}

/// Per-sample mixing with a permuted partner (SPEC §8: MFW, mixup, Remix):
/// out_i = (1 − λ_i)·a_i + λ_i·b_{perm(i)}, for a, b [N, ...] of one shape, lambda [N] and
/// perm [N] with entries in [0, N). Neither lambda nor perm is differentiated. Gradients flow
/// into a ((1 − λ_i)·g_i) and into b (λ_i·g_i scattered to row perm(i)); when a and b are the
/// same variable the engine sums both contributions.
template <real_scalar T, device D>
variable<T, D> lerp_mix(const variable<T, D>& a, const variable<T, D>& b, const tensor<T, D>& lambda,
                        const label_tensor<D>& perm) {
  LTL_CHECK(a.dim() >= 1 && a.sizes() == b.sizes() && lambda.dim() == 1 && perm.dim() == 1 &&
                lambda.size(0) == a.size(0) && perm.size(0) == a.size(0),
            shape_error, "lerp_mix: expects a, b [N, ...] of one shape, lambda [N] and perm [N], got {}, {}, {}, {}",
            a.sizes(), b.sizes(), lambda.sizes(), perm.sizes());
  return make_result<T, D>(lerp_mix_forward(a.value(), b.value(), lambda, perm), "lerp_mix", {&a, &b},
                           [lambda = lambda.clone(), perm = perm.clone()](const tensor<T, D>& g,
                                                                           const std::vector<bool>& need) {
                             grads_t<T, D> r(2);
                             if (need[0]) r[0] = lerp_mix_backward_a(g, lambda);
                             if (need[1]) r[1] = lerp_mix_backward_b(g, lambda, perm);
                             return r;
                           });
}

}  // namespace ltl
