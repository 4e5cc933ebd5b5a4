#pragma once
/// \file
/// CUDA kernel of the SGD update (the rule: optim/sgd.hpp; its step: backends/contract/optim.hpp).
/// Needs nvcc.

#include "ltlearn/backends/contract/optim.hpp"
#include "ltlearn/backends/cuda/kernels/block.cuh"

namespace ltl::cuda::kernels {

/// Element i of the update, the CPU's expressions in its order (products rounded apart from
/// the additions, as the CPU's separate statements are): d = g + wd·w; without a buffer
/// w −= lr·d; with one b = d (first step) or momentum·b + (1 − dampening)·d, then
/// w −= lr·(nesterov ? d + momentum·b : b).
template <class T>
__host__ __device__ void sgd_element(T* w, const T* g, T* b, const sgd_step<T>& s, index_t i) {
  const T d = g[i] + mul_rn(s.weight_decay, w[i]);
  if (!b) {
    w[i] -= mul_rn(s.lr, d);
    return;
  }
  b[i] = s.first ? d : mul_rn(s.momentum, b[i]) + mul_rn(s.dampening_keep, d);
  w[i] -= mul_rn(s.lr, s.nesterov ? d + mul_rn(s.momentum, b[i]) : b[i]);
}

template <class T>
__global__ void sgd_kernel(T* w, const T* __restrict__ g, T* b, sgd_step<T> s, index_t n) {
  LTL_CUDA_GRID_STRIDE(i, n) sgd_element(w, g, b, s, i);
}

}  // namespace ltl::cuda::kernels
