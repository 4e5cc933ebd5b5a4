#pragma once
/// \file
/// The kernel set a device provides, written as concepts: one concept per area (elementwise,
/// reductions, GEMM, softmax family, batch norm, pooling, convolution, indexing, the fused
/// loss, the optimiser update, the tensor hooks of non-host memory), each over a device `D`
/// and an element type `T`, and `compute_device<D>`, their conjunction for float and double.
///
/// Kernels are free functions in the namespace of the device tag (`ltl::cpu`, `ltl::cuda`, a
/// test device's) taking `tensor<T, D>`; the ops layer calls them unqualified, so argument-
/// dependent lookup on the tensor's device picks the implementation. The concepts check that
/// lookup: each requirement is the call an op makes, with the result type it relies on.
/// A backend states what it provides with `static_assert`s against these concepts
/// (backends/cpu/kernel_set.hpp for the CPU, backends/cuda/kernel_set.hpp for CUDA), so a
/// renamed or mistyped kernel fails at its definition, not in some model far away.
///
/// Shapes and semantics are those of the CPU kernels (backends/cpu/*.hpp), which are the
/// reference: every other backend matches them (bit for bit where the tests say so).

#include "ltlearn/backends/contract/batchnorm.hpp"
#include "ltlearn/backends/contract/broadcast.hpp"
#include "ltlearn/backends/contract/loss.hpp"
#include "ltlearn/backends/contract/optim.hpp"
#include "ltlearn/backends/contract/pool.hpp"
// conv2d_options: from backends/contract/conv.hpp once the conv branch has moved the conv types
// there (until then they live in the CPU conv header).
#include "ltlearn/backends/contract/conv.hpp"
#include "ltlearn/core/concepts.hpp"
#include "ltlearn/core/shape.hpp"
#include "ltlearn/tensor/tensor.hpp"

#include <array>
#include <concepts>
#include <cstdint>
#include <utility>
#include <vector>

namespace ltl {

/// Tensor hooks of a device whose memory the host cannot address.
///
/// tensor::fill_ and tensor::copy_ run on the host for host devices; for others they call
/// `fill_device(t, v)` and `strided_copy(dst, src)` (views of one shape, any strides).
template <class D, class T>
concept tensor_kernels = device<D> && (D::is_host || requires(tensor<T, D>& t, const tensor<T, D>& s, T v) {
                                         fill_device(t, v);
                                         strided_copy(t, s);
                                       });

/// Elementwise kernels. Binary kernels broadcast as NumPy (broadcast_shapes) and return new
/// contiguous tensors; `accumulate(dst, src)` adds src (broadcast into dst's shape) in place.
/// The pairs `*_forward` / `*_backward` are the differentiable ops' two halves: relu's backward
/// takes relu's output, pow's and leaky_relu's take the input x (dx = g·p·x^(p−1), resp.
/// g where x > 0 and slope·g elsewhere).
template <class D, class T>
concept elementwise_kernels =
    device<D> && requires(const tensor<T, D>& a, const tensor<T, D>& b, tensor<T, D>& dst, T s) {
      { add(a, b) } -> std::same_as<tensor<T, D>>;
      { sub(a, b) } -> std::same_as<tensor<T, D>>;
      { mul(a, b) } -> std::same_as<tensor<T, D>>;
      { div(a, b) } -> std::same_as<tensor<T, D>>;
      accumulate(dst, a);
      { affine(a, s, s) } -> std::same_as<tensor<T, D>>;  // alpha·x + beta
      { relu_forward(a) } -> std::same_as<tensor<T, D>>;
      { relu_backward(a, b) } -> std::same_as<tensor<T, D>>;
      { exp_forward(a) } -> std::same_as<tensor<T, D>>;
      { log_forward(a) } -> std::same_as<tensor<T, D>>;
      { pow_forward(a, s) } -> std::same_as<tensor<T, D>>;
      { pow_backward(a, b, s) } -> std::same_as<tensor<T, D>>;
      { leaky_relu_forward(a, s) } -> std::same_as<tensor<T, D>>;
      { leaky_relu_backward(a, b, s) } -> std::same_as<tensor<T, D>>;
    };

/// Reductions: `sum_dims_keep(x, flags)` sums the flagged dimensions keeping them as extent 1
/// (accumulating in double); `sum_to(g, shape)` is the backward of broadcasting.
template <class D, class T>
concept reduction_kernels =
    device<D> && requires(const tensor<T, D>& a, const std::vector<bool>& flags, const shape& s) {
      { sum_dims_keep(a, flags) } -> std::same_as<tensor<T, D>>;
      { sum_to(a, s) } -> std::same_as<tensor<T, D>>;
    };

/// Matrix products of 2-D views (transposed views allowed): `gemm(a, b, c, alpha, beta)` sets
/// c = alpha·a·b + beta·c for a contiguous c; `matmul(a, b)` returns a·b.
template <class D, class T>
concept gemm_kernels = device<D> && requires(const tensor<T, D>& a, const tensor<T, D>& b, tensor<T, D>& c, T s) {
  gemm(a, b, c, s, s);
  { matmul(a, b) } -> std::same_as<tensor<T, D>>;
};

/// Normalising activations along one dimension: softmax, log_softmax (backward from the
/// output y) and l2_normalize (forward returns the output and the clamped norms).
template <class D, class T>
concept softmax_kernels = device<D> && requires(const tensor<T, D>& x, const tensor<T, D>& y, int dim, T eps) {
  { softmax_forward(x, dim) } -> std::same_as<tensor<T, D>>;
  { log_softmax_forward(x, dim) } -> std::same_as<tensor<T, D>>;
  { softmax_backward(x, y, dim) } -> std::same_as<tensor<T, D>>;
  { log_softmax_backward(x, y, dim) } -> std::same_as<tensor<T, D>>;
  { l2_normalize_forward(x, dim, eps) } -> std::same_as<std::pair<tensor<T, D>, tensor<T, D>>>;
  { l2_normalize_backward(x, y, y, dim, eps) } -> std::same_as<tensor<T, D>>;
};

/// 2-D batch normalisation with its fused residual and ReLU (backends/contract/batchnorm.hpp):
/// forward(x, weight, bias, running_mean&, running_var&, options, residual) updates the running
/// statistics in place when training; backward(dy, x, weight, mean, invstd, training,
/// {dx, dweight, dbias wanted}, relu output, residual gradient wanted).
template <class D, class T>
concept batch_norm_kernels =
    device<D> && requires(const tensor<T, D>& x, tensor<T, D>& running, const batch_norm_options& opt, bool flag,
                          std::array<bool, 3> need) {
      { batch_norm2d_forward(x, x, x, running, running, opt, x) } -> std::same_as<batch_norm_forward_result<T, D>>;
      {
        batch_norm2d_backward(x, x, x, x, x, flag, need, x, flag)
      } -> std::same_as<batch_norm_backward_result<T, D>>;
    };

/// 2-D max and average pooling and global average pooling (backends/contract/pool.hpp); max
/// pooling's backward takes the argmax indices its forward saved.
template <class D, class T>
concept pooling_kernels = device<D> && requires(const tensor<T, D>& x, const tensor<std::int64_t, D>& idx,
                                                const shape& s, const pool2d_options& opt) {
  { max_pool2d_forward(x, opt) } -> std::same_as<max_pool2d_result<T, D>>;
  { max_pool2d_backward(x, idx, s) } -> std::same_as<tensor<T, D>>;
  { avg_pool2d_forward(x, opt) } -> std::same_as<tensor<T, D>>;
  { avg_pool2d_backward(x, s, opt) } -> std::same_as<tensor<T, D>>;
  { global_avg_pool_forward(x) } -> std::same_as<tensor<T, D>>;
  { global_avg_pool_backward(x, s) } -> std::same_as<tensor<T, D>>;
};

/// 2-D convolution, by its public kernel entry points: forward with bias; forward with a
/// per-channel epilogue (x, w, options, scale, shift, residual, relu: the folded batch norm of
/// inference); the input, weight and bias gradients.
template <class D, class T>
concept conv_kernels =
    device<D> && requires(const tensor<T, D>& x, const shape& s, const conv2d_options& opt, bool relu) {
      { conv2d_forward(x, x, x, opt) } -> std::same_as<tensor<T, D>>;
      { conv2d_forward_epilogue(x, x, opt, x, x, x, relu) } -> std::same_as<tensor<T, D>>;
      { conv2d_backward_input(x, x, s, opt) } -> std::same_as<tensor<T, D>>;
      { conv2d_backward_weight(x, x, s, opt) } -> std::same_as<tensor<T, D>>;
      { conv2d_backward_bias(x) } -> std::same_as<tensor<T, D>>;
    };

/// Indexing with int64 labels on the same device: index_select, gather, one_hot, per-sample
/// permuted mixing (lerp_mix) and the CIFAR ResNet option-A shortcut, forward and backward;
/// `argmax_matches(logits, labels)`, the number of rows of logits [B, C] whose row_argmax
/// (backends/contract/indexing.hpp) equals the label (training accuracy without a download).
template <class D, class T>
concept indexing_kernels =
    device<D> && requires(const tensor<T, D>& x, tensor<T, D>& out, const tensor<std::int64_t, D>& labels, int dim,
                          const shape& s, index_t n) {
      { index_select_forward(x, dim, labels) } -> std::same_as<tensor<T, D>>;
      { index_select_backward(x, dim, labels, s) } -> std::same_as<tensor<T, D>>;
      { gather_forward(x, labels) } -> std::same_as<tensor<T, D>>;
      { gather_backward(x, labels, n) } -> std::same_as<tensor<T, D>>;
      one_hot_into(out, labels);
      { lerp_mix_forward(x, x, x, labels) } -> std::same_as<tensor<T, D>>;
      { lerp_mix_backward_a(x, x) } -> std::same_as<tensor<T, D>>;
      { lerp_mix_backward_b(x, x, labels) } -> std::same_as<tensor<T, D>>;
      { shortcut_a_forward(x, n, n) } -> std::same_as<tensor<T, D>>;
      { shortcut_a_backward(x, s, n) } -> std::same_as<tensor<T, D>>;
      { argmax_matches(x, labels) } -> std::same_as<index_t>;
    };

/// The fused logit-adjusted loss (backends/contract/loss.hpp): value of logits z [B, C] with
/// labels [B]; writes ∂L/∂z, the per-row losses and reads per-sample weights through pointers
/// that may be null.
template <class D, class T>
concept loss_kernels = device<D> && requires(const tensor<T, D>& z, const tensor<std::int64_t, D>& y,
                                             const loss_terms& terms, tensor<T, D>* out, const tensor<T, D>* w) {
  { fused_loss(z, y, terms, out, out, w) } -> std::same_as<double>;
};

/// The optimiser's in-place update: `sgd_update(w, g, momentum_buffer, step)`
/// (backends/contract/optim.hpp; the buffer is undefined without momentum).
template <class D, class T>
concept optimiser_kernels = device<D> && requires(tensor<T, D>& w, const tensor<T, D>& g, const sgd_step<T>& step) {
  sgd_update(w, g, w, step);
};

/// Every kernel area for element type T.
template <class D, class T>
concept kernel_set = tensor_kernels<D, T> && elementwise_kernels<D, T> && reduction_kernels<D, T> &&
                     gemm_kernels<D, T> && softmax_kernels<D, T> && batch_norm_kernels<D, T> &&
                     pooling_kernels<D, T> && conv_kernels<D, T> && indexing_kernels<D, T> &&
                     loss_kernels<D, T> && optimiser_kernels<D, T>;

/// A device that runs everything the library does: the whole kernel set in float and double.
///
/// Represents a memory space (ltl::device) plus every kernel the ops, losses and optimisers
/// call. Requires `kernel_set<D, float>` and `kernel_set<D, double>`. Ensures that models,
/// losses and optimisers instantiate for `D` (`nn::resnet_cifar<float, D>`).
template <class D>
concept compute_device = device<D> && kernel_set<D, float> && kernel_set<D, double>;

}  // namespace ltl
