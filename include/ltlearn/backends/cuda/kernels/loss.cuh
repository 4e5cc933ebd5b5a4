#pragma once
/// \file
/// CUDA kernels of the fused logit-adjusted loss (SPEC §7), forward and backward in one pass:
///
///   z'_c = s·(z_c − m_c·[c = y]) / a_c + b_c,  p = softmax(z'),  ℓ = w·(1 − p_y)^φ·(−log p_y),
///   w = w_y·(sample weight), ∂ℓ/∂z_c = (w·F / Σ_i w_{y_i})·(p_c − [c = y])·s/a_c,
///   F = (1 − q)^φ − φ·q·(1 − q)^(φ−1)·log q, q = p_y.
///
/// All arithmetic is in double, as the CPU's reference path (backends/cpu/loss.hpp,
/// rows_double): per-class multipliers s/a_c, offsets, margins and weights are double arrays.
/// Short rows run one thread each (loss_row, the CPU's row loop written once for host and
/// device: host tests run it against the CPU); rows of at least block_line_threshold classes
/// run one block each, with the max and Σ exp combined by the block's fixed tree. Each row's
/// ℓ_i is written to a [B] double array, summed afterwards by one block in a fixed order
/// (sum_fixed_order): no atomics, so the loss and ∂z are bit-reproducible.
///
/// The labels never leave the device: loss_prepare checks them and forms the normaliser
/// Σ_i w_{y_i} (in the CPU's order, i = 0, 1, …) into a loss_status, the row kernels read
/// 1/Σw from it and skip rows with a bad label (no out-of-range reads), and loss_finish writes
/// the loss value beside the check's result, so the host reads everything at once. Needs nvcc.

#include "ltlearn/backends/cuda/kernels/block.cuh"

#include <cstdint>

namespace ltl::cuda::kernels {

/// Operands of the loss kernels. Per-class arrays [C] are null for their neutral value, except
/// `mult` (s/a_c), which is always given.
template <class T>
struct loss_args {
  const T* z;              ///< logits [B, C], contiguous
  const std::int64_t* y;   ///< labels [B], checked to lie in [0, C)
  const T* sample_w;       ///< per-sample factors [B] or null
  const double* mult;      ///< s / a_c
  const double* offsets;   ///< b_c or null
  const double* margins;   ///< m_c or null
  const double* weights;   ///< w_c or null
  T* dz;                   ///< ∂L/∂z [B, C] or null
  T* row_loss;             ///< ℓ_i [B] or null
  double* row_acc;         ///< ℓ_i [B] in double, always written (summed afterwards)
  index_t rows, classes;
  double phi, inv_wsum;
};

/// Adjusted logit z'_c of row `row` with label yi (the CPU's pass 1, in double).
template <class T>
__host__ __device__ double adjusted_logit(const loss_args<T>& a, const T* row, index_t c, index_t yi) {
  double v = static_cast<double>(row[c]);
  if (a.margins && c == yi) v -= a.margins[c];
  v *= a.mult[c];
  if (a.offsets) v += a.offsets[c];
  return v;
}

/// Row i's loss ℓ_i from q = p_y and log q (stored in `li`); returns the gradient's factor k:
/// ∂z_c = k·(p_c − [c = y])·mult_c.
template <class T>
__host__ __device__ double loss_row_factor(const loss_args<T>& a, index_t i, index_t yi, double q, double logq,
                                           double& li) {
  const double w = (a.weights ? a.weights[yi] : 1.0) * (a.sample_w ? static_cast<double>(a.sample_w[i]) : 1.0);
  double focal_w = 1.0, F = 1.0;
  if (a.phi != 0.0) {
    const double one_q = max_of(0.0, 1.0 - q);
    focal_w = pow_of(one_q, a.phi);
    F = one_q > 0 ? focal_w - a.phi * q * pow_of(one_q, a.phi - 1.0) * logq : 0.0;
  }
  li = -w * focal_w * logq;
  return w * F * a.inv_wsum;
}

/// Row i's loss and gradient from its max `mx` and Σ exp `se`; thread `t` of `nt` writes the
/// gradient entries t, t + nt, … (nt = 1: the whole row), thread 0 the row's loss.
template <class T>
__host__ __device__ void loss_row_finish(const loss_args<T>& a, index_t i, double mx, double se, index_t t,
                                         index_t nt) {
  const T* row = a.z + i * a.classes;
  const auto yi = static_cast<index_t>(a.y[i]);
  const double logq = adjusted_logit(a, row, yi, yi) - mx - log_of(se);
  const double q = exp_of(logq);
  double li = 0;
  const double k = loss_row_factor(a, i, yi, q, logq, li);
  if (t == 0) {
    a.row_acc[i] = li;
    if (a.row_loss) a.row_loss[i] = static_cast<T>(li);
  }
  if (!a.dz) return;
  T* d = a.dz + i * a.classes;
  const double inv_se = 1.0 / se;
  for (index_t c = t; c < a.classes; c += nt) {
    const double p = exp_of(adjusted_logit(a, row, c, yi) - mx) * inv_se;
    d[c] = static_cast<T>(k * (p - (c == yi ? 1.0 : 0.0)) * a.mult[c]);
  }
}

/// Row i, serially (the CPU's rows_double loop for one row).
template <class T>
__host__ __device__ void loss_row(const loss_args<T>& a, index_t i) {
  const T* row = a.z + i * a.classes;
  const auto yi = static_cast<index_t>(a.y[i]);
  double mx = -INFINITY;
  for (index_t c = 0; c < a.classes; ++c) mx = max_of(mx, adjusted_logit(a, row, c, yi));
  double se = 0;
  for (index_t c = 0; c < a.classes; ++c) se += exp_of(adjusted_logit(a, row, c, yi) - mx);
  loss_row_finish(a, i, mx, se, 0, 1);
}

/// What the host reads back from one fused-loss call, in one copy: the check of the labels,
/// the normaliser and the loss value.
struct loss_status {
  double loss;             ///< L = Σ ℓ_i · (1/Σw) (loss_finish)
  double wsum;             ///< Σ_i w_{y_i}, or the given normaliser
  double inv_wsum;         ///< 1 / wsum, as the gradient uses it
  std::int64_t bad_pos;    ///< first position with a label outside [0, C), or −1
  std::int64_t bad_label;  ///< the label there
};

/// Whether label `yi` is a class of `classes`.
__host__ __device__ inline bool label_ok(std::int64_t yi, index_t classes) { return yi >= 0 && yi < classes; }

/// Checks y [rows] against [0, classes) and forms the normaliser into *st: `normalizer` when
/// non-zero; else Σ_i weights[y_i] added in the order i = 0, 1, … (the CPU's; bad labels add
/// 0, the call fails anyway), or rows when there are no weights (Σ 1.0 is exact). One block of
/// block_size threads. (Kernels in headers are templates, so that each is defined once.)
template <class W = double>
__global__ void loss_prepare(const std::int64_t* __restrict__ y, index_t rows, index_t classes,
                             const W* __restrict__ weights, W normalizer, loss_status* __restrict__ st) {
  __shared__ W scratch[block_size];
  __shared__ index_t first_bad[block_size];
  const int t = static_cast<int>(threadIdx.x);
  // Each thread's first bad position (its positions ascend), then the block's smallest.
  index_t mine = rows;
  for (index_t i = t; i < rows && mine == rows; i += block_size)
    if (!label_ok(y[i], classes)) mine = i;
  first_bad[t] = mine;
  __syncthreads();
  for (int w = block_size / 2; w > 0; w /= 2) {
    if (t < w) first_bad[t] = min_of(first_bad[t], first_bad[t + w]);
    __syncthreads();
  }
  W wsum = normalizer;
  if (wsum == 0 && !weights) wsum = static_cast<W>(rows);
  if (wsum == 0) {  // chunks of block_size weights, gathered in parallel, added by thread 0 in order
    for (index_t base = 0; base < rows; base += block_size) {
      const index_t i = base + t;
      scratch[t] = i < rows && label_ok(y[i], classes) ? weights[y[i]] : W(0);
      __syncthreads();
      if (t == 0)
        for (index_t j = 0; j < block_size && base + j < rows; ++j) wsum += scratch[j];
      __syncthreads();
    }
  }
  if (t == 0) {
    const index_t bad = first_bad[0];
    st->loss = 0;
    st->wsum = wsum;
    st->inv_wsum = 1.0 / wsum;
    st->bad_pos = bad < rows ? bad : -1;
    st->bad_label = bad < rows ? y[bad] : 0;
  }
}

template <class T>
__global__ void loss_rows_per_thread(loss_args<T> a, const loss_status* __restrict__ st) {
  a.inv_wsum = st->inv_wsum;
  LTL_CUDA_GRID_STRIDE(i, a.rows) {
    if (label_ok(a.y[i], a.classes)) {
      loss_row(a, i);
    } else {
      a.row_acc[i] = 0;
    }
  }
}

/// One block per row: thread t takes classes t, t + 256, …; the row's max and Σ exp are
/// combined by the block's fixed tree.
template <class T>
__global__ void loss_rows_per_block(loss_args<T> a, const loss_status* __restrict__ st) {
  __shared__ double scratch[block_size];
  a.inv_wsum = st->inv_wsum;
  const index_t t = threadIdx.x;
  for (index_t i = blockIdx.x; i < a.rows; i += gridDim.x) {
    if (!label_ok(a.y[i], a.classes)) {  // the whole block skips the row: no barrier is split
      if (t == 0) a.row_acc[i] = 0;
      continue;
    }
    const T* row = a.z + i * a.classes;
    const auto yi = static_cast<index_t>(a.y[i]);
    double mx = -INFINITY;
    for (index_t c = t; c < a.classes; c += block_size) mx = max_of(mx, adjusted_logit(a, row, c, yi));
    mx = block_max(mx, scratch);
    double se = 0;
    for (index_t c = t; c < a.classes; c += block_size) se += exp_of(adjusted_logit(a, row, c, yi) - mx);
    se = block_sum(se, scratch);
    loss_row_finish(a, i, mx, se, t, block_size);
  }
}

/// st->loss = (Σ row_acc[0, rows) in sum_fixed_order's order, block.cuh) · st->inv_wsum. One block of
/// block_size threads.
template <class Acc = double>
__global__ void loss_finish(const Acc* __restrict__ row_acc, index_t rows, loss_status* __restrict__ st) {
  __shared__ Acc scratch[block_size];
  Acc s = 0;
  for (index_t j = threadIdx.x; j < rows; j += block_size) s += row_acc[j];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) st->loss = s * st->inv_wsum;
}

/// The host twin of sum_fixed_order, for tests.
inline double sum_fixed_order_host(const double* v, index_t n) {
  double partial[block_size] = {};
  for (index_t t = 0; t < block_size; ++t)
    for (index_t j = t; j < n; j += block_size) partial[t] += v[j];
  return tree_sum_host(partial);
}

}  // namespace ltl::cuda::kernels
