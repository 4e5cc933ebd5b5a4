#pragma once
/// \file
/// CUDA sum-reduction kernels over arbitrary sets of dimensions. Needs nvcc.
///
/// The input's dimensions are split into a kept space (one output each) and a reduced space.
/// Short reductions run one thread per output; long ones one block per output with a
/// shared-memory tree. Partial sums are combined in a fixed order, so results are
/// deterministic for a given input shape (the float result may still differ from the CPU's in
/// the last bits: the summation order differs).

#include "ltlearn/backends/cuda/kernels/elementwise.cuh"

namespace ltl::cuda::kernels {

/// Reductions at least this long get a whole block per output.
inline constexpr index_t block_reduce_threshold = 256;

/// out[o] = Σ_j x[kept(o) + red(j)], one thread per output, accumulated in Acc.
template <class T, class Acc>
__global__ void sum_per_thread(const T* __restrict__ x, strided_space<1> kept, strided_space<1> red,
                               T* __restrict__ out, index_t n_out, index_t n_in) {
  LTL_CUDA_GRID_STRIDE(o, n_out) {
    const index_t base = kept.offset(o);
    Acc s = 0;
    for (index_t j = 0; j < n_in; ++j) s += static_cast<Acc>(x[base + red.offset(j)]);
    out[o] = static_cast<T>(s);
  }
}

/// Same sums, one block (of exactly block_size threads) per output.
template <class T, class Acc>
__global__ void sum_per_block(const T* __restrict__ x, strided_space<1> kept, strided_space<1> red,
                              T* __restrict__ out, index_t n_out, index_t n_in) {
  __shared__ Acc partial[block_size];
  const int t = static_cast<int>(threadIdx.x);
  for (index_t o = blockIdx.x; o < n_out; o += gridDim.x) {
    const index_t base = kept.offset(o);
    Acc s = 0;
    for (index_t j = t; j < n_in; j += block_size) s += static_cast<Acc>(x[base + red.offset(j)]);
    partial[t] = s;
    __syncthreads();
    for (int w = block_size / 2; w > 0; w /= 2) {
      if (t < w) partial[t] += partial[t + w];
      __syncthreads();
    }
    if (t == 0) out[o] = static_cast<T>(partial[0]);
    __syncthreads();  // partial[0] is read before the next output overwrites it
  }
}

}  // namespace ltl::cuda::kernels
