#pragma once
/// \file
/// CUDA kernel of the contract's loss_kernels (backends/contract/kernels.hpp): the fused
/// logit-adjusted loss (SPEC §7) with every policy of loss_terms — scale, margins,
/// temperatures, offsets, class weights, focal exponent — and per-sample weights, forward and
/// backward in one pass, with the semantics of backends/cpu/loss.hpp (L = Σ ℓ_i / Σ w_{y_i};
/// the per-sample weights do not enter the normaliser). Deterministic: per-row losses are
/// summed in a fixed order, no atomics (kernels/loss.cuh). Shapes: z [B, C], y [B] → scalar.
///
/// The labels stay on the device: a kernel checks them and forms the normaliser Σ w_{y_i} in
/// the CPU's order, and the loss value, the normaliser and the check's result come back to the
/// host in one copy, so one call synchronises the stream once; a bad label then throws the
/// CPU's value_error (the same check function, contract/loss.hpp). The per-class terms are
/// uploaded only when they change (detail::device_loss_terms).
/// Needs nvcc: include it (through <ltlearn/cuda.hpp>) from .cu files.

#include "ltlearn/backends/contract/loss.hpp"
#include "ltlearn/backends/cuda/elementwise.hpp"
#include "ltlearn/backends/cuda/kernels/loss.cuh"
#include "ltlearn/backends/cuda/op_scope.hpp"

#include <cstdint>
#include <vector>

namespace ltl::cuda {

namespace detail {
/// The per-class terms on the current device, uploaded only when they differ from the last
/// call's on this thread and device: the terms change once per epoch at most, and an upload
/// from pageable memory would wait for all work queued on the stream.
inline const tensor<double, device>& device_loss_terms(std::vector<double> host) {
  struct cached {
    int device_index = -1;
    std::vector<double> host;
    tensor<double, device> on_device;
  };
  thread_local cached last;
  const int index = context::current().device_index();
  if (last.device_index != index || last.host != host) {
    last.on_device = tensor<double, cpu::device>::from(shape{static_cast<index_t>(host.size())}, host)
                         .template to<device>();
    last.host = std::move(host);
    last.device_index = index;
  }
  return last.on_device;
}

/// The loss value of a call whose status came back as `h`, after the checks the CPU makes
/// before its loop (in the same order, with the same messages): a bad label, then Σw ≤ 0.
inline double fused_loss_result(const kernels::loss_status& h, index_t classes) {
  if (h.bad_pos >= 0) check_fused_loss_label(h.bad_label, static_cast<index_t>(h.bad_pos), classes);
  check_fused_loss_normalizer(h.wsum);
  return h.loss;
}
}  // namespace detail

/// Loss value of logits z [B, C] with labels y [B]; writes ∂L/∂z into dz [B, C] when dz is
/// non-null, and each ℓ_i into row_loss [B] when non-null. Optional per-sample factors
/// sample_w [B] multiply ℓ_i without entering the denominator Σ w_{y_i}.
template <class T>
double fused_loss(const device_tensor<T>& z, const tensor<std::int64_t, device>& y, const loss_terms& t,
                  device_tensor<T>* dz, device_tensor<T>* row_loss = nullptr,
                  const device_tensor<T>* sample_w = nullptr) {
  const op_scope scope("fused_loss", z, y, dz, row_loss, sample_w);
  check_fused_loss_args(z.sizes(), y.sizes(), t);
  const index_t B = z.size(0), C = z.size(1);
  LTL_CHECK(!dz || (dz->sizes() == z.sizes() && dz->is_contiguous()), shape_error,
            "fused_loss: gradient {} must be a contiguous tensor of the logits' shape {}",
            dz ? dz->sizes() : shape{}, z.sizes());
  LTL_CHECK(!row_loss || (row_loss->sizes() == shape{B} && row_loss->is_contiguous()), shape_error,
            "fused_loss: per-row losses {} must be a contiguous [{}]", row_loss ? row_loss->sizes() : shape{}, B);
  const bool has_sw = sample_w && sample_w->defined();
  if (has_sw) check_fused_loss_sample_weights(sample_w->sizes(), z.sizes());
  const bool has_off = !t.offsets.empty(), has_w = !t.weights.empty(), has_m = !t.margins.empty();

  // The per-class terms as one array: mult (s/a_c), then offsets, margins, weights if given.
  const auto cs = static_cast<std::size_t>(C);
  std::vector<double> terms(cs, t.scale);
  if (!t.temperatures.empty())
    for (std::size_t c = 0; c < cs; ++c) terms[c] = t.scale / t.temperatures[c];
  for (const auto* v : {has_off ? &t.offsets : nullptr, has_m ? &t.margins : nullptr, has_w ? &t.weights : nullptr})
    if (v) terms.insert(terms.end(), v->begin(), v->end());
  const tensor<double, device>& dterms = detail::device_loss_terms(std::move(terms));
  const double* next = dterms.data() + C;
  auto take = [&](bool has) {
    const double* p = has ? next : nullptr;
    if (has) next += C;
    return p;
  };
  const double* d_off = take(has_off);
  const double* d_margin = take(has_m);
  const double* d_weight = take(has_w);

  const device_tensor<T> zc = z.contiguous();
  const auto yd = y.contiguous();  // checked on the device (loss_prepare)
  const device_tensor<T> swc = has_sw ? sample_w->contiguous() : device_tensor<T>();
  tensor<double, device> row_acc(shape{B});
  // A kernels::loss_status in a device block of whole doubles (the allocator aligns it).
  static_assert(sizeof(kernels::loss_status) % sizeof(double) == 0);
  tensor<double, device> status_block(shape{static_cast<index_t>(sizeof(kernels::loss_status) / sizeof(double))});
  auto* status = reinterpret_cast<kernels::loss_status*>(status_block.data());
  const kernels::loss_args<T> a{zc.data(),
                                yd.data(),
                                has_sw ? swc.data() : nullptr,
                                dterms.data(),
                                d_off,
                                d_margin,
                                d_weight,
                                dz ? dz->data() : nullptr,
                                row_loss ? row_loss->data() : nullptr,
                                row_acc.data(),
                                B,
                                C,
                                t.focal,
                                0.0};  // 1/Σw: the kernels read it from the status
  const cudaStream_t s = context::current().stream();
  // A given normaliser (data parallel: the global batch's Σw) replaces the local one, as on the CPU.
  kernels::loss_prepare<double><<<1, kernels::block_size, 0, s>>>(yd.data(), B, C, d_weight, t.normalizer, status);
  detail::check_launch("fused_loss (label check)");
  if (C >= kernels::block_line_threshold) {
    kernels::loss_rows_per_block<<<kernels::blocks_for(B), kernels::block_size, 0, s>>>(a, status);
  } else {
    kernels::loss_rows_per_thread<<<kernels::grid_for(B), kernels::block_size, 0, s>>>(a, status);
  }
  detail::check_launch("fused_loss");
  kernels::loss_finish<double><<<1, kernels::block_size, 0, s>>>(row_acc.data(), B, status);
  detail::check_launch("fused_loss (sum of rows)");
  kernels::loss_status h{};
  device_transfer<cpu::device, device>::copy(&h, status, sizeof h);  // the call's one synchronisation
  return detail::fused_loss_result(h, C);
}

}  // namespace ltl::cuda
