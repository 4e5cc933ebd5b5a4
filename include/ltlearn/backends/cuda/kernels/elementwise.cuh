#pragma once
/// \file
/// Hand-written CUDA kernels for elementwise work: unary maps, broadcasting binary maps,
/// in-place updates, fills and strided copies. Needs nvcc (a .cu translation unit).
///
/// Every kernel is a grid-stride loop over the linear positions of a row-major index space,
/// so one launch configuration serves any size. Operands that are not simply contiguous are
/// described by a `strided_space`: extents plus one stride list per operand, passed by value
/// as a kernel parameter. Adjacent dimensions that are contiguous for every operand are merged
/// on the host first, so a contiguous-but-broadcast operand costs one divide, not one per rank.

#include "ltlearn/backends/cuda/error.hpp"
#include "ltlearn/core/shape.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cstddef>

namespace ltl::cuda::kernels {

/// Threads per block for the elementwise and reduction kernels.
inline constexpr int block_size = 256;
/// Upper bound on blocks per launch; grid-stride loops cover the rest.
inline constexpr index_t max_grid = 65535;

/// Blocks for a grid-stride launch over `n` (> 0) positions.
inline unsigned grid_for(index_t n) {
  return static_cast<unsigned>(std::min<index_t>((n + block_size - 1) / block_size, max_grid));
}

/// A row-major index space of up to shape::max_rank extents with the strides of K operands.
template <int K>
struct strided_space {
  int rank = 0;
  index_t sizes[shape::max_rank] = {};
  index_t strides[K][shape::max_rank] = {};

  /// Element offsets of linear position `i` in each operand. (Host-callable for tests.)
  __host__ __device__ void offsets(index_t i, index_t (&off)[K]) const {
    for (int k = 0; k < K; ++k) off[k] = 0;
    for (int d = rank - 1; d >= 0; --d) {
      const index_t idx = i % sizes[d];
      i /= sizes[d];
      for (int k = 0; k < K; ++k) off[k] += idx * strides[k][d];
    }
  }
  /// Offset of linear position `i` in the single operand of a one-operand space.
  __host__ __device__ index_t offset(index_t i) const {
    index_t off[K];
    offsets(i, off);
    return off[0];
  }
};

/// Builds the space of extents `sizes` for K operands, dropping size-1 dimensions and merging
/// neighbours whose strides chain (stride[d] == stride[d+1]·size[d+1]) in every operand.
template <int K>
strided_space<K> make_space(const shape& sizes, const std::array<shape, static_cast<std::size_t>(K)>& strides) {
  strided_space<K> inner;  // built innermost-first, reversed at the end
  int n = 0;
  for (int d = sizes.size() - 1; d >= 0; --d) {
    if (sizes[d] == 1) continue;
    if (n > 0) {
      bool chained = true;
      for (int k = 0; k < K; ++k)
        chained = chained && strides[static_cast<std::size_t>(k)][d] == inner.strides[k][n - 1] * inner.sizes[n - 1];
      if (chained) {
        inner.sizes[n - 1] *= sizes[d];
        continue;
      }
    }
    inner.sizes[n] = sizes[d];
    for (int k = 0; k < K; ++k) inner.strides[k][n] = strides[static_cast<std::size_t>(k)][d];
    ++n;
  }
  strided_space<K> s;
  s.rank = n;
  for (int i = 0; i < n; ++i) {
    s.sizes[i] = inner.sizes[n - 1 - i];
    for (int k = 0; k < K; ++k) s.strides[k][i] = inner.strides[k][n - 1 - i];
  }
  return s;
}

// ---- functors (device-callable; user functors passed to map/zip must be too) -------------

struct plus {
  template <class T>
  __host__ __device__ T operator()(T a, T b) const { return a + b; }
};
struct minus {
  template <class T>
  __host__ __device__ T operator()(T a, T b) const { return a - b; }
};
struct multiplies {
  template <class T>
  __host__ __device__ T operator()(T a, T b) const { return a * b; }
};
struct divides {
  template <class T>
  __host__ __device__ T operator()(T a, T b) const { return a / b; }
};
/// alpha·v + beta
template <class T>
struct affine_fn {
  T alpha, beta;
  __host__ __device__ T operator()(T v) const { return alpha * v + beta; }
};
struct relu_fn {
  template <class T>
  __host__ __device__ T operator()(T v) const { return v > T(0) ? v : T(0); }
};
/// Gradient of relu given the upstream gradient g and relu's output y.
struct relu_grad_fn {
  template <class T>
  __host__ __device__ T operator()(T g, T y) const { return y > T(0) ? g : T(0); }
};
// The CUDA math library's functions (expf, exp, ...), which may differ from the host's libm by
// an ulp or two: results match the CPU to rounding, not bit for bit.
struct exp_fn {
  __host__ __device__ float operator()(float v) const { return expf(v); }
  __host__ __device__ double operator()(double v) const { return ::exp(v); }
};
struct log_fn {
  __host__ __device__ float operator()(float v) const { return logf(v); }
  __host__ __device__ double operator()(double v) const { return ::log(v); }
};
/// v^p
template <class T>
struct pow_fn {
  T p;
  __host__ __device__ T operator()(T v) const { return ::pow(v, p); }
};
/// Gradient of v^p given the upstream gradient g and pow's input v: g·p·v^(p−1).
template <class T>
struct pow_grad_fn {
  T p;
  __host__ __device__ T operator()(T g, T v) const { return g * p * ::pow(v, p - T(1)); }
};
/// max(v, 0) + slope·min(v, 0)
template <class T>
struct leaky_relu_fn {
  T slope;
  __host__ __device__ T operator()(T v) const { return v > T(0) ? v : slope * v; }
};
/// Gradient of leaky_relu given the upstream gradient g and leaky_relu's input v.
template <class T>
struct leaky_relu_grad_fn {
  T slope;
  __host__ __device__ T operator()(T g, T v) const { return v > T(0) ? g : slope * g; }
};

// ---- kernels ------------------------------------------------------------------------------

#define LTL_CUDA_GRID_STRIDE(i, n)                                                     \
  for (index_t i = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<index_t>(blockDim.x) * gridDim.x)

/// out[i] = f(x[i]), both contiguous.
template <class T, class F>
__global__ void map_contiguous(const T* __restrict__ x, T* __restrict__ out, index_t n, F f) {
  LTL_CUDA_GRID_STRIDE(i, n) out[i] = f(x[i]);
}

/// out[i] = f(x[offset(i)]), out contiguous.
template <class T, class F>
__global__ void map_strided(const T* __restrict__ x, strided_space<1> s, T* __restrict__ out, index_t n, F f) {
  LTL_CUDA_GRID_STRIDE(i, n) out[i] = f(x[s.offset(i)]);
}

/// out[i] = f(a[i], b[i]), all contiguous and of one shape.
template <class T, class F>
__global__ void zip_contiguous(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ out, index_t n,
                               F f) {
  LTL_CUDA_GRID_STRIDE(i, n) out[i] = f(a[i], b[i]);
}

/// out[i] = f(a[oa], b[ob]) with broadcast (stride-0) operands, out contiguous.
template <class T, class F>
__global__ void zip_strided(const T* __restrict__ a, const T* __restrict__ b, strided_space<2> s,
                            T* __restrict__ out, index_t n, F f) {
  LTL_CUDA_GRID_STRIDE(i, n) {
    index_t off[2];
    s.offsets(i, off);
    out[i] = f(a[off[0]], b[off[1]]);
  }
}

/// dst[od] = f(dst[od], src[os]) in place (src may broadcast; dst positions are distinct).
template <class T, class F>
__global__ void update_strided(T* dst, const T* src, strided_space<2> s, index_t n, F f) {
  LTL_CUDA_GRID_STRIDE(i, n) {
    index_t off[2];
    s.offsets(i, off);
    dst[off[0]] = f(dst[off[0]], src[off[1]]);
  }
}

/// p[offset(i)] = v
template <class T>
__global__ void fill_strided(T* p, strided_space<1> s, index_t n, T v) {
  LTL_CUDA_GRID_STRIDE(i, n) p[s.offset(i)] = v;
}

/// dst[od] = src[os]
template <class T>
__global__ void copy_strided(T* __restrict__ dst, const T* __restrict__ src, strided_space<2> s, index_t n) {
  LTL_CUDA_GRID_STRIDE(i, n) {
    index_t off[2];
    s.offsets(i, off);
    dst[off[0]] = src[off[1]];
  }
}

}  // namespace ltl::cuda::kernels
