#pragma once
/// \file
/// Building blocks shared by the hand-written CUDA kernels: math overloads callable from host
/// and device code (so that host tests run a kernel's per-element arithmetic on the CPU),
/// unfused multiply/add, the [outer, n, inner] lines of one dimension, and block reductions
/// that combine per-thread partials in a fixed tree order. Needs nvcc.
///
/// Determinism: no kernel of the backend uses floating-point atomics. A reduction is split
/// into per-thread partials over a fixed partition of its range and combined by a fixed tree,
/// so a given shape gives the same bits on every run (SPEC §13).

#include "ltlearn/backends/cuda/kernels/elementwise.cuh"

#include <cuda_runtime.h>

#include <cmath>

namespace ltl::cuda::kernels {

// ---- math usable in host and device code ----------------------------------------------------

__host__ __device__ inline float exp_of(float v) { return expf(v); }
__host__ __device__ inline double exp_of(double v) { return ::exp(v); }
__host__ __device__ inline float log_of(float v) { return logf(v); }
__host__ __device__ inline double log_of(double v) { return ::log(v); }
__host__ __device__ inline double sqrt_of(double v) { return ::sqrt(v); }
__host__ __device__ inline double pow_of(double a, double b) { return ::pow(a, b); }
/// std::max's rule (the first argument unless the second is larger), so NaN handling matches.
template <class T>
__host__ __device__ T max_of(T a, T b) {
  return a < b ? b : a;
}
/// std::min's rule.
template <class T>
__host__ __device__ T min_of(T a, T b) {
  return b < a ? b : a;
}
/// True for NaN (without <cmath>, which device code cannot call through std::).
template <class T>
__host__ __device__ bool is_nan(T v) {
  return v != v;
}

/// a·b rounded on its own: nvcc contracts a·b + c into one FMA by default, which would change
/// the bits of sums the CPU forms as separate products and additions.
__host__ __device__ inline float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
__host__ __device__ inline double mul_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

// ---- lines of one dimension -----------------------------------------------------------------

/// A contiguous tensor reduced along dimension d, seen as `outer × inner` lines of `n`
/// elements spaced `inner` apart ([outer, n, inner]), lines numbered o·inner + i (the CPU's
/// ltl::detail::dim_lines).
struct line_space {
  index_t outer = 1, n = 1, inner = 1;
  [[nodiscard]] __host__ __device__ index_t lines() const { return outer * inner; }
  /// Offset of the first element of line l.
  [[nodiscard]] __host__ __device__ index_t base(index_t l) const { return (l / inner) * n * inner + l % inner; }
};

/// The lines of dimension `d` (already normalised) of shape `s`.
inline line_space make_line_space(const shape& s, int d) {
  line_space L;
  for (int k = 0; k < d; ++k) L.outer *= s[k];
  L.n = s[d];
  for (int k = d + 1; k < s.size(); ++k) L.inner *= s[k];
  return L;
}

/// Lines at least this long get one block each; shorter ones one thread each.
inline constexpr index_t block_line_threshold = 256;

/// Blocks for a launch with one block per item (grid-stride over items beyond max_grid).
inline unsigned blocks_for(index_t items) { return static_cast<unsigned>(items < max_grid ? items : max_grid); }

// ---- block reductions (blockDim.x == block_size) --------------------------------------------

/// Σ over the block of each thread's `v`, combined by a fixed binary tree (thread t adds t + w
/// for w = 128, 64, …, 1); every thread gets the total. `scratch` holds block_size values.
template <class Acc>
__device__ Acc block_sum(Acc v, Acc* scratch) {
  const int t = static_cast<int>(threadIdx.x);
  scratch[t] = v;
  __syncthreads();
  for (int w = block_size / 2; w > 0; w /= 2) {
    if (t < w) scratch[t] += scratch[t + w];
    __syncthreads();
  }
  const Acc total = scratch[0];
  __syncthreads();  // scratch is free again once everyone has read the total
  return total;
}

/// Largest of the threads' values (std::max's rule at each step of the same tree).
template <class Acc>
__device__ Acc block_max(Acc v, Acc* scratch) {
  const int t = static_cast<int>(threadIdx.x);
  scratch[t] = v;
  __syncthreads();
  for (int w = block_size / 2; w > 0; w /= 2) {
    if (t < w) scratch[t] = max_of(scratch[t], scratch[t + w]);
    __syncthreads();
  }
  const Acc total = scratch[0];
  __syncthreads();
  return total;
}

/// *out = Σ v[0, n) in a fixed order: thread t adds v[t], v[t + 256], …, then block_sum. One
/// block of block_size threads.
template <class Acc>
__global__ void sum_fixed_order(const Acc* __restrict__ v, index_t n, Acc* __restrict__ out) {
  __shared__ Acc scratch[block_size];
  Acc s = 0;
  for (index_t j = threadIdx.x; j < n; j += block_size) s += v[j];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) *out = s;
}

/// The host twin of block_sum for tests: the same tree over `block_size` partials.
template <class Acc>
Acc tree_sum_host(Acc (&partial)[block_size]) {
  for (int w = block_size / 2; w > 0; w /= 2)
    for (int t = 0; t < w; ++t) partial[t] += partial[t + w];
  return partial[0];
}

}  // namespace ltl::cuda::kernels
