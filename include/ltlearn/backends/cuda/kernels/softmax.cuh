#pragma once
/// \file
/// CUDA kernels normalising along one dimension (softmax, log-softmax, L2 normalisation and
/// their backwards) over the lines of a line_space. Needs nvcc.
///
/// Short lines run one thread each through the `*_line` functions, which are the CPU's loops
/// written once for host and device (host tests run them against backends/cpu/softmax.hpp).
/// Lines of at least block_line_threshold elements run one block each: thread t takes the
/// elements t, t + 256, …, and the line's sums are combined by block_sum's fixed tree. Sums
/// are in double, as on the CPU.

#include "ltlearn/backends/cuda/kernels/block.cuh"

namespace ltl::cuda::kernels {

/// Which function a line kernel computes.
enum class line_op { softmax, log_softmax, softmax_grad, log_softmax_grad, l2_normalize, l2_normalize_grad };

/// Operands of a line kernel; `b` and the norms are used depending on the op.
template <class T>
struct line_args {
  const T* a = nullptr;  ///< x (forward) or the upstream gradient g (backward)
  const T* b = nullptr;  ///< the forward output y (backward)
  T* out = nullptr;      ///< y (forward) or dx (backward)
  T* norms = nullptr;                ///< l2_normalize's forward: the line norms it writes
  const T* saved_norms = nullptr;    ///< l2_normalize's backward: the forward's norms
  T eps = T(0);
};

/// One whole line, serially, in the CPU kernel's order of operations. `a`, `b`, `out` point at
/// the line's first element, `s` is its stride, `l` the line's number.
template <line_op Op, class T>
__host__ __device__ void run_line(const line_args<T>& p, index_t base, index_t l, index_t n, index_t s) {
  const T* a = p.a + base;
  T* o = p.out + base;
  if constexpr (Op == line_op::softmax || Op == line_op::log_softmax) {
    T m = -INFINITY;
    for (index_t j = 0; j < n; ++j) m = max_of(m, a[j * s]);
    double sum = 0;
    if constexpr (Op == line_op::softmax) {
      for (index_t j = 0; j < n; ++j) {
        const T e = exp_of(a[j * s] - m);
        o[j * s] = e;
        sum += static_cast<double>(e);
      }
      const double inv = 1.0 / sum;
      for (index_t j = 0; j < n; ++j) o[j * s] = static_cast<T>(static_cast<double>(o[j * s]) * inv);
    } else {
      for (index_t j = 0; j < n; ++j) sum += static_cast<double>(exp_of(a[j * s] - m));
      const double log_sum = log_of(sum);
      for (index_t j = 0; j < n; ++j) o[j * s] = static_cast<T>(static_cast<double>(a[j * s] - m) - log_sum);
    }
  } else if constexpr (Op == line_op::softmax_grad) {
    const T* y = p.b + base;
    double dot = 0;
    for (index_t j = 0; j < n; ++j) dot += static_cast<double>(a[j * s]) * static_cast<double>(y[j * s]);
    const T d = static_cast<T>(dot);
    for (index_t j = 0; j < n; ++j) o[j * s] = mul_rn(y[j * s], a[j * s] - d);
  } else if constexpr (Op == line_op::log_softmax_grad) {
    const T* y = p.b + base;
    double gs = 0;
    for (index_t j = 0; j < n; ++j) gs += static_cast<double>(a[j * s]);
    const T t = static_cast<T>(gs);
    for (index_t j = 0; j < n; ++j) o[j * s] = a[j * s] - mul_rn(exp_of(y[j * s]), t);
  } else if constexpr (Op == line_op::l2_normalize) {
    double ss = 0;
    for (index_t j = 0; j < n; ++j) {
      const double v = static_cast<double>(a[j * s]);
      ss += v * v;
    }
    const double norm = sqrt_of(ss);
    p.norms[l] = static_cast<T>(norm);
    const double inv = 1.0 / max_of(norm, static_cast<double>(p.eps));
    for (index_t j = 0; j < n; ++j) o[j * s] = static_cast<T>(static_cast<double>(a[j * s]) * inv);
  } else {  // l2_normalize_grad
    const T* y = p.b + base;
    const T norm = p.saved_norms[l];
    if (norm >= p.eps) {
      double dot = 0;
      for (index_t j = 0; j < n; ++j) dot += static_cast<double>(a[j * s]) * static_cast<double>(y[j * s]);
      const T d = static_cast<T>(dot);
      for (index_t j = 0; j < n; ++j) o[j * s] = (a[j * s] - mul_rn(y[j * s], d)) / norm;
    } else {
      for (index_t j = 0; j < n; ++j) o[j * s] = a[j * s] / p.eps;
    }
  }
}

/// One thread per line.
template <line_op Op, class T>
__global__ void lines_per_thread(line_args<T> p, line_space L) {
  LTL_CUDA_GRID_STRIDE(l, L.lines()) run_line<Op>(p, L.base(l), l, L.n, L.inner);
}

/// One block per line: the same arithmetic with the line's sums split over the block's
/// threads (element j belongs to thread j mod block_size) and combined by block_sum.
template <line_op Op, class T>
__global__ void lines_per_block(line_args<T> p, line_space L) {
  __shared__ double scratch[block_size];
  const index_t t = threadIdx.x, n = L.n, s = L.inner;
  for (index_t l = blockIdx.x; l < L.lines(); l += gridDim.x) {
    const index_t base = L.base(l);
    const T* a = p.a + base;
    T* o = p.out + base;
    if constexpr (Op == line_op::softmax || Op == line_op::log_softmax) {
      T m = -INFINITY;
      for (index_t j = t; j < n; j += block_size) m = max_of(m, a[j * s]);
      m = static_cast<T>(block_max(static_cast<double>(m), scratch));
      double sum = 0;
      for (index_t j = t; j < n; j += block_size) {
        const T e = exp_of(a[j * s] - m);
        if constexpr (Op == line_op::softmax) o[j * s] = e;
        sum += static_cast<double>(e);
      }
      sum = block_sum(sum, scratch);
      if constexpr (Op == line_op::softmax) {
        const double inv = 1.0 / sum;
        for (index_t j = t; j < n; j += block_size) o[j * s] = static_cast<T>(static_cast<double>(o[j * s]) * inv);
      } else {
        const double log_sum = log_of(sum);
        for (index_t j = t; j < n; j += block_size)
          o[j * s] = static_cast<T>(static_cast<double>(a[j * s] - m) - log_sum);
      }
    } else if constexpr (Op == line_op::softmax_grad) {
      const T* y = p.b + base;
      double dot = 0;
      for (index_t j = t; j < n; j += block_size)
        dot += static_cast<double>(a[j * s]) * static_cast<double>(y[j * s]);
      const T d = static_cast<T>(block_sum(dot, scratch));
      for (index_t j = t; j < n; j += block_size) o[j * s] = mul_rn(y[j * s], a[j * s] - d);
    } else if constexpr (Op == line_op::log_softmax_grad) {
      const T* y = p.b + base;
      double gs = 0;
      for (index_t j = t; j < n; j += block_size) gs += static_cast<double>(a[j * s]);
      const T g_sum = static_cast<T>(block_sum(gs, scratch));
      for (index_t j = t; j < n; j += block_size) o[j * s] = a[j * s] - mul_rn(exp_of(y[j * s]), g_sum);
    } else if constexpr (Op == line_op::l2_normalize) {
      double ss = 0;
      for (index_t j = t; j < n; j += block_size) {
        const double v = static_cast<double>(a[j * s]);
        ss += v * v;
      }
      const double norm = sqrt_of(block_sum(ss, scratch));
      if (t == 0) p.norms[l] = static_cast<T>(norm);
      const double inv = 1.0 / max_of(norm, static_cast<double>(p.eps));
      for (index_t j = t; j < n; j += block_size) o[j * s] = static_cast<T>(static_cast<double>(a[j * s]) * inv);
    } else {  // l2_normalize_grad; the branch is uniform over the block
      const T* y = p.b + base;
      const T norm = p.saved_norms[l];
      if (norm >= p.eps) {
        double dot = 0;
        for (index_t j = t; j < n; j += block_size)
          dot += static_cast<double>(a[j * s]) * static_cast<double>(y[j * s]);
        const T d = static_cast<T>(block_sum(dot, scratch));
        for (index_t j = t; j < n; j += block_size) o[j * s] = (a[j * s] - mul_rn(y[j * s], d)) / norm;
      } else {
        for (index_t j = t; j < n; j += block_size) o[j * s] = a[j * s] / p.eps;
      }
    }
  }
}

}  // namespace ltl::cuda::kernels
