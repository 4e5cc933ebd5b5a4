#pragma once
/// \file
/// CUDA kernels of 2-D batch normalisation over x [N, C, H, W] (contiguous). Needs nvcc.
///
/// A channel's M = N·H·W values are numbered j = i·HW + p (sample i, plane position p) and cut
/// into `chunks` fixed ranges of `chunk` values (bn_plan). Three launches per pass:
///   1. partial sums: one block per (chunk, channel), block_sum over the chunk, in double;
///   2. finalize: one thread per channel adds its chunks' partials in chunk order and forms the
///      channel's statistics and per-channel coefficients (the CPU's per-channel scalar code);
///   3. apply: one thread per element of x.
/// The partition depends only on the shape, so results are bit-reproducible; the statistics
/// match the CPU's to rounding (its sums run in a different order).

#include "ltlearn/backends/cuda/kernels/block.cuh"

namespace ltl::cuda::kernels {

/// The partition of each channel's values into chunks, and their element offsets.
struct bn_plan {
  index_t n = 0, c = 0, hw = 0, m = 0;  ///< x [n, c, h, w], m = n·hw values per channel
  index_t chunk = 1, chunks = 1;        ///< chunks·chunk ≥ m > (chunks − 1)·chunk

  /// Offset in x of value j of channel ch.
  [[nodiscard]] __host__ __device__ index_t offset(index_t ch, index_t j) const {
    return ((j / hw) * c + ch) * hw + j % hw;
  }
  /// Channel of element e of x.
  [[nodiscard]] __host__ __device__ index_t channel_of(index_t e) const { return (e / hw) % c; }
};

/// Values per chunk: enough blocks to fill a GPU even when C is small (CIFAR's 16 channels),
/// few enough that a chunk's block is not mostly idle.
inline constexpr index_t bn_chunk_target = 4096;

inline bn_plan make_bn_plan(index_t n, index_t c, index_t hw) {
  bn_plan p;
  p.n = n, p.c = c, p.hw = hw, p.m = n * hw;
  p.chunks = p.m > 0 ? (p.m + bn_chunk_target - 1) / bn_chunk_target : 1;
  p.chunk = p.m > 0 ? (p.m + p.chunks - 1) / p.chunks : 1;
  p.chunks = p.m > 0 ? (p.m + p.chunk - 1) / p.chunk : 1;  // no empty trailing chunk
  return p;
}

/// Per-channel statistics of a training batch from Σ (x − k) and Σ (x − k)² (k the channel's
/// first value), as the CPU forms them.
struct bn_batch_stats {
  double mean, var, unbiased;
};
__host__ __device__ inline bn_batch_stats bn_stats_from_sums(double k, double s1, double s2, index_t m) {
  const double d = s1 / static_cast<double>(m);
  const double ss = max_of(0.0, s2 - s1 * d);  // Σ (x − mean)²
  return {k + d, ss / static_cast<double>(m), ss / static_cast<double>(m - 1)};
}

/// Forward operands. Pointers to optional [C] tensors are null when absent; *_s are strides.
template <class T>
struct bn_forward_args {
  const T* x;
  const T* residual;
  T* y;
  const T* weight;
  const T* bias;
  T* running_mean;
  T* running_var;
  index_t ws, bs, rms, rvs;
  T* mean;    ///< saved mean [C]
  T* invstd;  ///< saved invstd [C]
  T* scale;   ///< scratch [C]: inv·weight
  T* shift;   ///< scratch [C]: bias
  double* partial;  ///< [C, chunks, 2]: Σ (x − k), Σ (x − k)²
  double momentum, eps;
  bool training, relu;
};

/// Pass 1 (training): partial shifted sums of chunk blockIdx.x of channel blockIdx.y.
template <class T>
__global__ void bn_forward_sums(bn_forward_args<T> a, bn_plan p) {
  __shared__ double scratch[block_size];
  const index_t ch = blockIdx.y, q = blockIdx.x;
  const double k = static_cast<double>(a.x[ch * p.hw]);
  const index_t j1 = min_of(p.m, (q + 1) * p.chunk);
  double s1 = 0, s2 = 0;
  for (index_t j = q * p.chunk + threadIdx.x; j < j1; j += block_size) {
    const double d = static_cast<double>(a.x[p.offset(ch, j)]) - k;
    s1 += d;
    s2 += d * d;
  }
  s1 = block_sum(s1, scratch);
  s2 = block_sum(s2, scratch);
  if (threadIdx.x == 0) {
    a.partial[(ch * p.chunks + q) * 2] = s1;
    a.partial[(ch * p.chunks + q) * 2 + 1] = s2;
  }
}

/// Pass 2: statistics, running-statistic update (training) and coefficients of channel ch.
template <class T>
__host__ __device__ void bn_forward_channel(const bn_forward_args<T>& a, const bn_plan& p, index_t ch) {
  double mean, var;
  if (a.training) {
    double s1 = 0, s2 = 0;
    for (index_t q = 0; q < p.chunks; ++q) {
      s1 += a.partial[(ch * p.chunks + q) * 2];
      s2 += a.partial[(ch * p.chunks + q) * 2 + 1];
    }
    const bn_batch_stats st = bn_stats_from_sums(static_cast<double>(a.x[ch * p.hw]), s1, s2, p.m);
    mean = st.mean;
    var = st.var;
    if (a.running_mean) {
      T& rm = a.running_mean[ch * a.rms];
      T& rv = a.running_var[ch * a.rvs];
      rm = static_cast<T>((1.0 - a.momentum) * static_cast<double>(rm) + a.momentum * mean);
      rv = static_cast<T>((1.0 - a.momentum) * static_cast<double>(rv) + a.momentum * st.unbiased);
    }
  } else {
    mean = static_cast<double>(a.running_mean[ch * a.rms]);
    var = static_cast<double>(a.running_var[ch * a.rvs]);
  }
  const double inv = 1.0 / sqrt_of(var + a.eps);
  a.mean[ch] = static_cast<T>(mean);
  a.invstd[ch] = static_cast<T>(inv);
  a.scale[ch] = static_cast<T>(inv * (a.weight ? static_cast<double>(a.weight[ch * a.ws]) : 1.0));
  a.shift[ch] = a.bias ? a.bias[ch * a.bs] : T(0);
}

template <class T>
__global__ void bn_forward_finalize(bn_forward_args<T> a, bn_plan p) {
  LTL_CUDA_GRID_STRIDE(ch, p.c) bn_forward_channel(a, p, ch);
}

/// Pass 3, element e: (x − mean)·scale + shift [+ residual] [then ReLU], the CPU's expression
/// (products rounded apart from the additions, as the CPU's separate statements are).
template <class T>
__host__ __device__ T bn_forward_value(const bn_forward_args<T>& a, const bn_plan& p, index_t e) {
  const index_t ch = p.channel_of(e);
  T v = mul_rn(a.x[e] - a.mean[ch], a.scale[ch]) + a.shift[ch];
  if (a.residual) v = v + a.residual[e];
  return a.relu ? max_of(T(0), v) : v;
}

template <class T>
__global__ void bn_forward_apply(bn_forward_args<T> a, bn_plan p, index_t total) {
  LTL_CUDA_GRID_STRIDE(e, total) a.y[e] = bn_forward_value(a, p, e);
}

/// Backward operands (optional pointers null when absent or not wanted).
template <class T>
struct bn_backward_args {
  const T* dy;
  const T* x;
  const T* relu_out;  ///< the fused ReLU's output: dy is masked by relu_out > 0
  const T* weight;
  index_t ws;
  const T* mean;
  const T* invstd;
  T* dx;
  T* dweight;
  T* dbias;
  T* masked;  ///< dy·[relu_out > 0], written when wanted
  T* scale;   ///< scratch [C]: w·inv
  T* g_mean;  ///< scratch [C]: mean of the masked dy (training)
  T* x_coef;  ///< scratch [C]: Σ dy'·(x − mean)·inv² / M (training)
  double* partial;  ///< [C, chunks, 2]: Σ dy', Σ dy'·(x − mean)
  bool training;
};

/// The masked upstream gradient at element e.
template <class T>
__host__ __device__ T bn_masked_grad(const bn_backward_args<T>& a, index_t e) {
  return (!a.relu_out || a.relu_out[e] > T(0)) ? a.dy[e] : T(0);
}

/// Pass 1: partial Σ dy' and Σ dy'·(x − mean) of one chunk; writes dy' when wanted.
template <class T>
__global__ void bn_backward_sums(bn_backward_args<T> a, bn_plan p) {
  __shared__ double scratch[block_size];
  const index_t ch = blockIdx.y, q = blockIdx.x;
  const double mu = static_cast<double>(a.mean[ch]);
  const index_t j1 = min_of(p.m, (q + 1) * p.chunk);
  double sg = 0, sgx = 0;
  for (index_t j = q * p.chunk + threadIdx.x; j < j1; j += block_size) {
    const index_t e = p.offset(ch, j);
    const T gv = bn_masked_grad(a, e);
    if (a.masked) a.masked[e] = gv;
    sg += static_cast<double>(gv);
    sgx += static_cast<double>(gv) * (static_cast<double>(a.x[e]) - mu);
  }
  sg = block_sum(sg, scratch);
  sgx = block_sum(sgx, scratch);
  if (threadIdx.x == 0) {
    a.partial[(ch * p.chunks + q) * 2] = sg;
    a.partial[(ch * p.chunks + q) * 2 + 1] = sgx;
  }
}

/// Pass 2: parameter gradients and dx's coefficients of channel ch (`sums`: pass 1 ran).
template <class T>
__host__ __device__ void bn_backward_channel(const bn_backward_args<T>& a, const bn_plan& p, index_t ch, bool sums) {
  double sum_g = 0, sum_gx = 0;
  if (sums)
    for (index_t q = 0; q < p.chunks; ++q) {
      sum_g += a.partial[(ch * p.chunks + q) * 2];
      sum_gx += a.partial[(ch * p.chunks + q) * 2 + 1];
    }
  const double inv = static_cast<double>(a.invstd[ch]);
  if (a.dweight) a.dweight[ch] = static_cast<T>(sum_gx * inv);
  if (a.dbias) a.dbias[ch] = static_cast<T>(sum_g);
  const double w = a.weight ? static_cast<double>(a.weight[ch * a.ws]) : 1.0;
  a.scale[ch] = static_cast<T>(w * inv);
  a.g_mean[ch] = a.training ? static_cast<T>(sum_g / static_cast<double>(p.m)) : T(0);
  a.x_coef[ch] = a.training ? static_cast<T>(sum_gx * inv * inv / static_cast<double>(p.m)) : T(0);
}

template <class T>
__global__ void bn_backward_finalize(bn_backward_args<T> a, bn_plan p, bool sums) {
  LTL_CUDA_GRID_STRIDE(ch, p.c) bn_backward_channel(a, p, ch, sums);
}

/// Pass 3, element e: dx = scale·(dy' − g_mean − (x − mean)·x_coef), reading dy' from
/// `masked` when pass 1 wrote it.
template <class T>
__host__ __device__ T bn_backward_value(const bn_backward_args<T>& a, const bn_plan& p, index_t e) {
  const index_t ch = p.channel_of(e);
  const T g = a.masked ? a.masked[e] : bn_masked_grad(a, e);
  return mul_rn(a.scale[ch], g - a.g_mean[ch] - mul_rn(a.x[e] - a.mean[ch], a.x_coef[ch]));
}

template <class T>
__global__ void bn_backward_apply(bn_backward_args<T> a, bn_plan p, index_t total) {
  LTL_CUDA_GRID_STRIDE(e, total) a.dx[e] = bn_backward_value(a, p, e);
}

/// dy' alone (no sums wanted): masked[e] = dy·[relu_out > 0].
template <class T>
__global__ void bn_mask_grad(bn_backward_args<T> a, index_t total) {
  LTL_CUDA_GRID_STRIDE(e, total) a.masked[e] = bn_masked_grad(a, e);
}

}  // namespace ltl::cuda::kernels
