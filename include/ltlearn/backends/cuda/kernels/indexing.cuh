#pragma once
/// \file
/// CUDA kernels of the indexing ops: index_select, label gather, one-hot, per-sample permuted
/// mixing (lerp_mix) and the CIFAR option-A shortcut, forward and backward. Needs nvcc.
///
/// Backwards where several sources land on one destination (index_select, lerp_mix's b) do not
/// scatter: the host inverts the index list into segments (index_segments: for each
/// destination row, the source positions that name it, in increasing order) and each thread
/// gathers one destination element, adding its sources in the order the CPU's scatter-add
/// visits them. No atomics, and dx is the CPU's bit for bit.

#include "ltlearn/backends/cuda/kernels/block.cuh"

#include <cstdint>
#include <vector>

namespace ltl::cuda::kernels {

/// Inverse of an index list idx [K] with values in [0, rows): the positions k with
/// idx[k] == r are members[start[r] .. start[r + 1]), increasing.
struct index_segments {
  std::vector<std::int64_t> start, members;
};

/// Builds the segments of an index list already checked to lie in [0, rows).
inline index_segments make_index_segments(const std::int64_t* idx, index_t k_count, index_t rows) {
  index_segments s;
  s.start.assign(static_cast<std::size_t>(rows + 1), 0);
  for (index_t k = 0; k < k_count; ++k) ++s.start[static_cast<std::size_t>(idx[k] + 1)];
  for (index_t r = 0; r < rows; ++r) s.start[static_cast<std::size_t>(r + 1)] += s.start[static_cast<std::size_t>(r)];
  s.members.resize(static_cast<std::size_t>(k_count));
  std::vector<std::int64_t> fill(s.start.begin(), s.start.end() - 1);
  for (index_t k = 0; k < k_count; ++k) s.members[static_cast<std::size_t>(fill[static_cast<std::size_t>(idx[k])]++)] = k;
  return s;
}

/// index_select: output element e of [outer, K, inner] reads x [outer, n, inner] at idx[k].
__host__ __device__ inline index_t index_select_source(index_t e, const std::int64_t* idx, index_t k_count,
                                                       index_t n, index_t inner) {
  const index_t r = e / inner, i = e % inner, o = r / k_count, k = r % k_count;
  return (o * n + idx[k]) * inner + i;
}

template <class T>
__global__ void index_select_fwd(const T* __restrict__ x, const std::int64_t* __restrict__ idx, T* __restrict__ out,
                                 index_t total, index_t k_count, index_t n, index_t inner) {
  LTL_CUDA_GRID_STRIDE(e, total) out[e] = x[index_select_source(e, idx, k_count, n, inner)];
}

/// index_select's input gradient at element e of [outer, n, inner]: Σ g[o, k, i] over the k
/// that select row r, in increasing k.
template <class T>
__host__ __device__ T index_select_grad(const T* g, const std::int64_t* start, const std::int64_t* members, index_t e,
                                        index_t k_count, index_t n, index_t inner) {
  const index_t i = e % inner, r = (e / inner) % n, o = e / (inner * n);
  T acc = T(0);
  for (std::int64_t p = start[r]; p < start[r + 1]; ++p) acc += g[(o * k_count + members[p]) * inner + i];
  return acc;
}

template <class T>
__global__ void index_select_bwd(const T* __restrict__ g, const std::int64_t* __restrict__ start,
                                 const std::int64_t* __restrict__ members, T* __restrict__ dx, index_t total,
                                 index_t k_count, index_t n, index_t inner) {
  LTL_CUDA_GRID_STRIDE(e, total) dx[e] = index_select_grad(g, start, members, e, k_count, n, inner);
}

/// out[i] = x[i·s0 + y[i]·s1]
template <class T>
__global__ void gather_fwd(const T* __restrict__ x, index_t s0, index_t s1, const std::int64_t* __restrict__ y,
                           T* __restrict__ out, index_t n) {
  LTL_CUDA_GRID_STRIDE(i, n) out[i] = x[i * s0 + y[i] * s1];
}

/// dx [N, C] = g[i] at (i, y[i]), 0 elsewhere (one thread per element: no separate zero fill).
template <class T>
__global__ void gather_bwd(const T* __restrict__ g, index_t gs, const std::int64_t* __restrict__ y,
                           T* __restrict__ dx, index_t total, index_t classes) {
  LTL_CUDA_GRID_STRIDE(e, total) {
    const index_t i = e / classes;
    dx[e] = e % classes == y[i] ? g[i * gs] : T(0);
  }
}

/// out [N, C] = [c == y[i]]
template <class T>
__global__ void one_hot_fwd(const std::int64_t* __restrict__ y, T* __restrict__ out, index_t total, index_t classes) {
  LTL_CUDA_GRID_STRIDE(e, total) out[e] = e % classes == y[e / classes] ? T(1) : T(0);
}

/// hits[r] = [row_argmax of logits row r == y[r]] for rows of C ≥ 1 scores, one block per row.
/// row_argmax (backends/contract/indexing.hpp) scans in order and keeps the first largest, so a
/// NaN never wins unless it is the row's first score, and then nothing replaces it. The same
/// answer without the scan: the first score if it is NaN, else the smallest index of the
/// largest non-NaN score (0 when there is none) — which a tree of (value, index) pairs finds
/// in any order.
template <class T>
__global__ void argmax_hits(const T* __restrict__ z, index_t rows, index_t C, const std::int64_t* __restrict__ y,
                            std::int64_t* __restrict__ hits) {
  __shared__ T best_v[block_size];
  __shared__ index_t best_i[block_size];  // -1: no non-NaN score seen
  const int t = static_cast<int>(threadIdx.x);
  for (index_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* row = z + r * C;
    T v = 0;
    index_t i = -1;
    for (index_t c = t; c < C; c += block_size)  // increasing c: the first of equal scores stays
      if (!is_nan(row[c]) && (i < 0 || v < row[c])) {
        v = row[c];
        i = c;
      }
    best_v[t] = v;
    best_i[t] = i;
    __syncthreads();
    for (int w = block_size / 2; w > 0; w /= 2) {
      if (t < w) {
        const index_t bi = best_i[t + w];
        const index_t ai = best_i[t];
        if (bi >= 0 && (ai < 0 || best_v[t] < best_v[t + w] || (best_v[t] == best_v[t + w] && bi < ai))) {
          best_v[t] = best_v[t + w];
          best_i[t] = bi;
        }
      }
      __syncthreads();
    }
    if (t == 0) {
      const index_t pick = is_nan(row[0]) || best_i[0] < 0 ? 0 : best_i[0];
      hits[r] = pick == y[r] ? 1 : 0;
    }
    __syncthreads();  // the scratch is reused by the next row
  }
}

/// out_i = (1 − λ_i)·a_i + λ_i·b_{perm(i)}, rows of m values.
template <class T>
__global__ void lerp_mix_fwd(const T* __restrict__ a, const T* __restrict__ b, const T* __restrict__ lambda,
                             const std::int64_t* __restrict__ perm, T* __restrict__ out, index_t total, index_t m) {
  LTL_CUDA_GRID_STRIDE(e, total) {
    const index_t i = e / m, c = e % m;
    const T l = lambda[i], k = T(1) - l;
    out[e] = mul_rn(k, a[e]) + mul_rn(l, b[perm[i] * m + c]);
  }
}

/// (1 − λ_i)·g_i
template <class T>
__global__ void lerp_mix_bwd_a(const T* __restrict__ g, const T* __restrict__ lambda, T* __restrict__ da,
                               index_t total, index_t m) {
  LTL_CUDA_GRID_STRIDE(e, total) da[e] = mul_rn(T(1) - lambda[e / m], g[e]);
}

/// lerp_mix's b gradient at element e = (j, c): Σ λ_i·g[i, c] over the i with perm(i) = j,
/// in increasing i.
template <class T>
__host__ __device__ T lerp_mix_grad_b(const T* g, const T* lambda, const std::int64_t* start,
                                      const std::int64_t* members, index_t e, index_t m) {
  const index_t j = e / m, c = e % m;
  T acc = T(0);
  for (std::int64_t p = start[j]; p < start[j + 1]; ++p) {
    const index_t i = members[p];
    acc += mul_rn(lambda[i], g[i * m + c]);
  }
  return acc;
}

template <class T>
__global__ void lerp_mix_bwd_b(const T* __restrict__ g, const T* __restrict__ lambda,
                               const std::int64_t* __restrict__ start, const std::int64_t* __restrict__ members,
                               T* __restrict__ db, index_t total, index_t m) {
  LTL_CUDA_GRID_STRIDE(e, total) db[e] = lerp_mix_grad_b(g, lambda, start, members, e, m);
}

/// Geometry of the option-A shortcut: x [n, cin, h, w] (strides st) → [n, cout, ho, wo].
struct shortcut_dims {
  index_t n, cin, h, w, cout, ho, wo, stride, pad;
  index_t st[4];

  /// Offset in x of output element e, or −1 where the output is a zero-padded channel.
  [[nodiscard]] __host__ __device__ index_t source(index_t e) const {
    const index_t plane = ho * wo, q = e / plane, o = e % plane;
    const index_t i = q / cout, c = q % cout - pad;
    if (c < 0 || c >= cin) return -1;
    return i * st[0] + c * st[1] + (o / wo) * stride * st[2] + (o % wo) * stride * st[3];
  }
  /// Offset in the contiguous gradient [n, cout, ho, wo] that input element e (contiguous
  /// [n, cin, h, w]) receives, or −1 where the subsampling skipped it.
  [[nodiscard]] __host__ __device__ index_t grad_source(index_t e) const {
    const index_t x_w = e % w, x_h = (e / w) % h, q = e / (h * w);
    const index_t i = q / cin, c = q % cin;
    if (x_h % stride != 0 || x_w % stride != 0) return -1;
    return ((i * cout + c + pad) * ho + x_h / stride) * wo + x_w / stride;
  }
};

template <class T>
__global__ void shortcut_a_fwd(const T* __restrict__ x, T* __restrict__ out, shortcut_dims d, index_t total) {
  LTL_CUDA_GRID_STRIDE(e, total) {
    const index_t s = d.source(e);
    out[e] = s < 0 ? T(0) : x[s];
  }
}

template <class T>
__global__ void shortcut_a_bwd(const T* __restrict__ g, T* __restrict__ dx, shortcut_dims d, index_t total) {
  LTL_CUDA_GRID_STRIDE(e, total) {
    const index_t s = d.grad_source(e);
    dx[e] = s < 0 ? T(0) : g[s];
  }
}

}  // namespace ltl::cuda::kernels
