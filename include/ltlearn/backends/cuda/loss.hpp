#pragma once
/// \file
/// CUDA kernel of the contract's loss_kernels (backends/contract/kernels.hpp): the fused
/// logit-adjusted loss (SPEC §7) with every policy of loss_terms — scale, margins,
/// temperatures, offsets, class weights, focal exponent — and per-sample weights, forward and
/// backward in one pass, with the semantics of backends/cpu/loss.hpp (L = Σ ℓ_i / Σ w_{y_i};
/// the per-sample weights do not enter the normaliser). Deterministic: per-row losses are
/// summed in a fixed order, no atomics (kernels/loss.cuh). Shapes: z [B, C], y [B] → scalar.
///
/// The labels are copied to the host to be validated (value_error on a bad label, as on the
/// CPU) and to form the normaliser Σ w_{y_i} in the CPU's order; the loss value comes back to
/// the host as a double, so one call synchronises the stream twice. The per-class terms are
/// uploaded only when they change (detail::device_loss_terms).
/// Needs nvcc: include it (through <ltlearn/cuda.hpp>) from .cu files.

#include "ltlearn/backends/contract/loss.hpp"
#include "ltlearn/backends/cuda/elementwise.hpp"
#include "ltlearn/backends/cuda/kernels/loss.cuh"

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
}  // namespace detail

/// Loss value of logits z [B, C] with labels y [B]; writes ∂L/∂z into dz [B, C] when dz is
/// non-null, and each ℓ_i into row_loss [B] when non-null. Optional per-sample factors
/// sample_w [B] multiply ℓ_i without entering the denominator Σ w_{y_i}.
template <class T>
double fused_loss(const device_tensor<T>& z, const tensor<std::int64_t, device>& y, const loss_terms& t,
                  device_tensor<T>* dz, device_tensor<T>* row_loss = nullptr,
                  const device_tensor<T>* sample_w = nullptr) {
  LTL_CHECK(z.dim() == 2, shape_error, "fused_loss: logits must be [B, C], got {}", z.sizes());
  const index_t B = z.size(0), C = z.size(1);
  LTL_CHECK(y.dim() == 1 && y.size(0) == B, shape_error, "fused_loss: labels {} do not match logits {}", y.sizes(),
            z.sizes());
  LTL_CHECK(B > 0 && C > 0, shape_error, "fused_loss: empty logits {}", z.sizes());
  auto check_len = [&](const std::vector<double>& v, const char* what) {
    LTL_CHECK(v.empty() || static_cast<index_t>(v.size()) == C, shape_error,
              "fused_loss: {} has {} entries for {} classes", what, v.size(), C);
  };
  check_len(t.margins, "margins");
  check_len(t.temperatures, "temperatures");
  check_len(t.offsets, "offsets");
  check_len(t.weights, "weights");
  LTL_CHECK(!dz || (dz->sizes() == z.sizes() && dz->is_contiguous()), shape_error,
            "fused_loss: gradient {} must be a contiguous tensor of the logits' shape {}",
            dz ? dz->sizes() : shape{}, z.sizes());
  LTL_CHECK(!row_loss || (row_loss->sizes() == shape{B} && row_loss->is_contiguous()), shape_error,
            "fused_loss: per-row losses {} must be a contiguous [{}]", row_loss ? row_loss->sizes() : shape{}, B);
  const bool has_sw = sample_w && sample_w->defined();
  LTL_CHECK(!has_sw || (sample_w->dim() == 1 && sample_w->size(0) == B), shape_error,
            "fused_loss: sample weights {} do not match logits {}", has_sw ? sample_w->sizes() : shape{}, z.sizes());

  const auto yh = y.template to<cpu::device>();
  const std::int64_t* py = yh.data();
  for (index_t i = 0; i < B; ++i)
    LTL_CHECK(py[i] >= 0 && py[i] < C, value_error, "fused_loss: label {} at position {} is outside [0, {})", py[i], i,
              C);
  const bool has_off = !t.offsets.empty(), has_w = !t.weights.empty(), has_m = !t.margins.empty();
  // A given normaliser (data parallel: the global batch's Σw) replaces the local one, as on the CPU.
  double wsum = t.normalizer;
  if (wsum == 0)
    for (index_t i = 0; i < B; ++i) wsum += has_w ? t.weights[static_cast<std::size_t>(py[i])] : 1.0;
  LTL_CHECK(wsum > 0, value_error, "fused_loss: the labels' weights sum to {}", wsum);

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
  const auto yd = y.contiguous();  // checked above through its host copy
  const device_tensor<T> swc = has_sw ? sample_w->contiguous() : device_tensor<T>();
  tensor<double, device> row_acc(shape{B}), total(shape{1});
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
                                1.0 / wsum};
  const cudaStream_t s = context::current().stream();
  if (C >= kernels::block_line_threshold) {
    kernels::loss_rows_per_block<<<kernels::blocks_for(B), kernels::block_size, 0, s>>>(a);
  } else {
    kernels::loss_rows_per_thread<<<kernels::grid_for(B), kernels::block_size, 0, s>>>(a);
  }
  detail::check_launch("fused_loss");
  kernels::sum_fixed_order<double><<<1, kernels::block_size, 0, s>>>(row_acc.data(), B, total.data());
  detail::check_launch("fused_loss (sum of rows)");
  return total.item() * a.inv_wsum;
}

}  // namespace ltl::cuda
