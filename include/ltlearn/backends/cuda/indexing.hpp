#pragma once
/// \file
/// CUDA kernels of the contract's indexing_kernels (backends/contract/kernels.hpp): index_select,
/// label gather, one-hot, per-sample permuted mixing (lerp_mix) and the CIFAR ResNet option-A
/// shortcut, forward and backward, and the argmax hit count, with the semantics of
/// backends/cpu/indexing.hpp.
///
/// Integer labels and indices are copied to the host and validated there before any kernel
/// reads them (value_error naming the op, the value, its position and the valid range, as on
/// the CPU): an out-of-range label must never become an out-of-bounds device access. That copy
/// synchronises the stream; index lists are small (one entry per sample or selected row).
/// Needs nvcc: include it (through <ltlearn/cuda.hpp>) from .cu files.

#include "ltlearn/backends/contract/indexing.hpp"
#include "ltlearn/backends/cuda/elementwise.hpp"
#include "ltlearn/backends/cuda/kernels/indexing.cuh"
#include "ltlearn/backends/cuda/op_scope.hpp"

#include <algorithm>
#include <cstdint>

namespace ltl::cuda {

namespace detail {
/// The host copy of an index tensor, each value checked to lie in [0, limit); `what` names the
/// values ("label", "index", "perm entry") in the message.
inline tensor<std::int64_t, cpu::device> checked_indices(const tensor<std::int64_t, device>& idx, index_t limit,
                                                         const char* op, const char* what) {
  auto h = idx.numel() > 0 ? idx.template to<cpu::device>() : tensor<std::int64_t, cpu::device>(idx.sizes());
  ltl::detail::check_index_range(h.data(), h.numel(), limit, op, what);
  return h;
}

/// The segments of a checked host index list, on the device: {start [rows + 1], members [K]}.
inline std::pair<tensor<std::int64_t, device>, tensor<std::int64_t, device>> device_segments(
    const tensor<std::int64_t, cpu::device>& idx, index_t rows) {
  const auto s = kernels::make_index_segments(idx.data(), idx.numel(), rows);
  using HT = tensor<std::int64_t, cpu::device>;
  return {HT::from(shape{rows + 1}, s.start).template to<device>(),
          HT::from(shape{idx.numel()}, s.members).template to<device>()};
}
}  // namespace detail

/// Slices of x [..., n, ...] at `indices` [K] along `dim` → [..., K, ...], contiguous.
template <class T>
device_tensor<T> index_select_forward(const device_tensor<T>& x, int dim, const tensor<std::int64_t, device>& indices) {
  const op_scope scope("index_select_forward", x, indices);
  dim = normalize_dim(dim, x.dim(), "index_select");
  check_index_select(indices.sizes(), "index_select");
  const auto L = kernels::make_line_space(x.sizes(), dim);
  shape os = x.sizes();
  os[dim] = indices.numel();
  const auto host = detail::checked_indices(indices, x.size(dim), "index_select", "index");
  device_tensor<T> out(os);
  if (out.numel() == 0) return out;
  const auto idx = host.template to<device>();
  const device_tensor<T> xc = x.contiguous();
  kernels::index_select_fwd<<<kernels::grid_for(out.numel()), kernels::block_size, 0, context::current().stream()>>>(
      xc.data(), idx.data(), out.data(), out.numel(), indices.numel(), L.n, L.inner);
  detail::check_launch("index_select");
  return out;
}

/// Backward of index_select: zeros of `x_shape` with g's slices added at `indices` along `dim`
/// (repeated indices accumulate, in index order).
template <class T>
device_tensor<T> index_select_backward(const device_tensor<T>& g, int dim, const tensor<std::int64_t, device>& indices,
                                       const shape& x_shape) {
  const op_scope scope("index_select_backward", g, indices);
  dim = normalize_dim(dim, x_shape.size(), "index_select_backward");
  check_index_select_backward(g.sizes(), dim, indices.sizes(), x_shape);
  const auto host = detail::checked_indices(indices, x_shape[dim], "index_select_backward", "index");
  device_tensor<T> dx(x_shape);
  if (dx.numel() == 0) return dx;
  const auto [start, members] = detail::device_segments(host, x_shape[dim]);
  const device_tensor<T> gc = g.contiguous();
  const auto L = kernels::make_line_space(x_shape, dim);
  kernels::index_select_bwd<<<kernels::grid_for(dx.numel()), kernels::block_size, 0, context::current().stream()>>>(
      gc.data(), start.data(), members.data(), dx.data(), dx.numel(), indices.numel(), L.n, L.inner);
  detail::check_launch("index_select_backward");
  return dx;
}

/// out[i] = x[i, labels[i]] for x [N, C] (any strides) and labels [N].
template <class T>
device_tensor<T> gather_forward(const device_tensor<T>& x, const tensor<std::int64_t, device>& labels) {
  const op_scope scope("gather_forward", x, labels);
  check_gather(x.sizes(), labels.sizes());
  const index_t n = x.size(0);
  device_tensor<T> out(shape{n});
  if (n == 0) return out;
  const auto y = detail::checked_indices(labels, x.size(1), "gather", "label").template to<device>();
  kernels::gather_fwd<<<kernels::grid_for(n), kernels::block_size, 0, context::current().stream()>>>(
      x.data(), x.strides()[0], x.strides()[1], y.data(), out.data(), n);
  detail::check_launch("gather");
  return out;
}

/// Backward of gather: [N, C] zeros with g[i] at (i, labels[i]).
template <class T>
device_tensor<T> gather_backward(const device_tensor<T>& g, const tensor<std::int64_t, device>& labels,
                                 index_t classes) {
  const op_scope scope("gather_backward", g, labels);
  check_gather_backward(g.sizes(), labels.sizes());
  const index_t n = g.size(0);
  const auto host = detail::checked_indices(labels, classes, "gather_backward", "label");
  device_tensor<T> dx(shape{n, classes});
  if (dx.numel() == 0) return dx;
  const auto y = host.template to<device>();
  kernels::gather_bwd<<<kernels::grid_for(dx.numel()), kernels::block_size, 0, context::current().stream()>>>(
      g.data(), g.strides()[0], y.data(), dx.data(), dx.numel(), classes);
  detail::check_launch("gather_backward");
  return dx;
}

/// Writes the one-hot encoding of `labels` [...] into the contiguous `out` [..., C].
template <class T>
void one_hot_into(device_tensor<T>& out, const tensor<std::int64_t, device>& labels) {
  const op_scope scope("one_hot_into", out, labels);
  check_one_hot(out.sizes(), out.is_contiguous(), labels.sizes());
  const index_t classes = out.size(-1);
  const auto host = detail::checked_indices(labels, classes, "one_hot", "label");
  if (out.numel() == 0) return;
  const auto y = host.template to<device>();
  kernels::one_hot_fwd<<<kernels::grid_for(out.numel()), kernels::block_size, 0, context::current().stream()>>>(
      y.data(), out.data(), out.numel(), classes);
  detail::check_launch("one_hot");
}

/// out_i = (1 − λ_i)·a_i + λ_i·b_{perm(i)} for a, b [N, ...], lambda [N], perm [N] in [0, N).
template <class T>
device_tensor<T> lerp_mix_forward(const device_tensor<T>& a, const device_tensor<T>& b, const device_tensor<T>& lambda,
                                  const tensor<std::int64_t, device>& perm) {
  const op_scope scope("lerp_mix_forward", a, b, lambda, perm);
  check_lerp_mix(a.sizes(), b.sizes(), lambda.sizes(), perm.sizes());
  const index_t n = a.size(0), m = n > 0 ? a.numel() / n : 0;
  device_tensor<T> out(a.sizes());
  if (n == 0) return out;  // perm is empty too: nothing to check
  const auto p = detail::checked_indices(perm, n, "lerp_mix", "perm entry").template to<device>();
  if (m == 0) return out;
  const device_tensor<T> ac = a.contiguous(), bc = b.contiguous(), lc = lambda.contiguous();
  kernels::lerp_mix_fwd<<<kernels::grid_for(out.numel()), kernels::block_size, 0, context::current().stream()>>>(
      ac.data(), bc.data(), lc.data(), p.data(), out.data(), out.numel(), m);
  detail::check_launch("lerp_mix");
  return out;
}

/// Gradient of lerp_mix with respect to a: (1 − λ_i)·g_i.
template <class T>
device_tensor<T> lerp_mix_backward_a(const device_tensor<T>& g, const device_tensor<T>& lambda) {
  const op_scope scope("lerp_mix_backward_a", g, lambda);
  check_lerp_mix_backward_a(g.sizes(), lambda.sizes());
  device_tensor<T> da(g.sizes());
  if (da.numel() == 0) return da;
  const device_tensor<T> gc = g.contiguous(), lc = lambda.contiguous();
  kernels::lerp_mix_bwd_a<<<kernels::grid_for(da.numel()), kernels::block_size, 0, context::current().stream()>>>(
      gc.data(), lc.data(), da.data(), da.numel(), da.numel() / g.size(0));
  detail::check_launch("lerp_mix_backward");
  return da;
}

/// Gradient of lerp_mix with respect to b: row perm(i) receives λ_i·g_i (repeated perm entries
/// accumulate in order of i).
template <class T>
device_tensor<T> lerp_mix_backward_b(const device_tensor<T>& g, const device_tensor<T>& lambda,
                                     const tensor<std::int64_t, device>& perm) {
  const op_scope scope("lerp_mix_backward_b", g, lambda, perm);
  check_lerp_mix_backward_b(g.sizes(), lambda.sizes(), perm.sizes());
  const index_t n = g.size(0), m = n > 0 ? g.numel() / n : 0;
  device_tensor<T> db(g.sizes());
  if (n == 0) return db;
  const auto host = detail::checked_indices(perm, n, "lerp_mix_backward", "perm entry");
  if (m == 0) return db;
  const auto [start, members] = detail::device_segments(host, n);
  const device_tensor<T> gc = g.contiguous(), lc = lambda.contiguous();
  kernels::lerp_mix_bwd_b<<<kernels::grid_for(db.numel()), kernels::block_size, 0, context::current().stream()>>>(
      gc.data(), lc.data(), start.data(), members.data(), db.data(), db.numel(), m);
  detail::check_launch("lerp_mix_backward");
  return db;
}

/// CIFAR ResNet option-A shortcut: x [N, Cin, H, W] (any strides) subsampled as
/// x[:, :, ::stride, ::stride], zero-padded with (out_channels − Cin)/2 channels on each side.
template <class T>
device_tensor<T> shortcut_a_forward(const device_tensor<T>& x, index_t out_channels, index_t stride) {
  const op_scope scope("shortcut_a_forward", x);
  check_shortcut_a(x.sizes(), out_channels, stride);
  const index_t n = x.size(0), cin = x.size(1), h = x.size(2), w = x.size(3);
  const index_t ho = (h + stride - 1) / stride, wo = (w + stride - 1) / stride;
  device_tensor<T> out(shape{n, out_channels, ho, wo});
  if (out.numel() == 0) return out;
  const shape& st = x.strides();
  const kernels::shortcut_dims d{n, cin, h, w, out_channels, ho, wo, stride, (out_channels - cin) / 2,
                                 {st[0], st[1], st[2], st[3]}};
  kernels::shortcut_a_fwd<<<kernels::grid_for(out.numel()), kernels::block_size, 0, context::current().stream()>>>(
      x.data(), out.data(), d, out.numel());
  detail::check_launch("shortcut_a");
  return out;
}

/// Number of rows of logits [B, C] whose row_argmax equals the label [B]: counted on the device
/// in a fixed order (one block per row, then sum_fixed_order), so only the count is downloaded.
/// Labels are compared, not used as addresses: any value is valid and one outside [0, C) never
/// matches.
template <class T>
index_t argmax_matches(const device_tensor<T>& logits, const tensor<std::int64_t, device>& labels) {
  const op_scope scope("argmax_matches", logits, labels);
  check_argmax_matches(logits.sizes(), labels.sizes());
  const index_t B = logits.size(0), C = logits.size(1);
  if (B == 0) return 0;
  if (C == 0) {  // no scores: row_argmax is 0 for every row
    const auto y = labels.template to<cpu::device>().contiguous();
    return static_cast<index_t>(std::count(y.data(), y.data() + B, std::int64_t{0}));
  }
  const device_tensor<T> z = logits.contiguous();
  const tensor<std::int64_t, device> y = labels.contiguous();
  tensor<std::int64_t, device> hits(shape{B}), total(shape{1});
  const cudaStream_t s = context::current().stream();
  kernels::argmax_hits<<<kernels::blocks_for(B), kernels::block_size, 0, s>>>(z.data(), B, C, y.data(), hits.data());
  detail::check_launch("argmax_matches");
  kernels::sum_fixed_order<std::int64_t><<<1, kernels::block_size, 0, s>>>(hits.data(), B, total.data());
  detail::check_launch("argmax_matches (sum)");
  return static_cast<index_t>(total.item());
}

/// Backward of shortcut_a: the gradient of the kept channels at the subsampled positions of
/// x_shape [N, Cin, H, W], zeros elsewhere.
template <class T>
device_tensor<T> shortcut_a_backward(const device_tensor<T>& g, const shape& x_shape, index_t stride) {
  const op_scope scope("shortcut_a_backward", g);
  check_shortcut_a_backward(g.sizes(), x_shape, stride);
  device_tensor<T> dx(x_shape);
  if (dx.numel() == 0) return dx;
  const device_tensor<T> gc = g.contiguous();
  const kernels::shortcut_dims d{x_shape[0], x_shape[1], x_shape[2], x_shape[3], g.size(1),
                                 g.size(2),  g.size(3),  stride,     (g.size(1) - x_shape[1]) / 2,
                                 {0, 0, 0, 0}};
  kernels::shortcut_a_bwd<<<kernels::grid_for(dx.numel()), kernels::block_size, 0, context::current().stream()>>>(
      gc.data(), dx.data(), d, dx.numel());
  detail::check_launch("shortcut_a_backward");
  return dx;
}

}  // namespace ltl::cuda
