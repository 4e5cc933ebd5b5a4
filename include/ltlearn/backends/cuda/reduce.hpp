#pragma once
/// \file
/// CUDA reductions with the names and signatures of the contract's reduction_kernels
/// (backends/contract/kernels.hpp): `sum_dims_keep`
/// and `sum_to` (the backward of broadcasting), accumulated in double as on the CPU.
/// Needs nvcc: include it (through <ltlearn/cuda.hpp>) from .cu files.

#include "ltlearn/backends/cuda/elementwise.hpp"
#include "ltlearn/backends/cuda/kernels/reduce.cuh"
#include "ltlearn/backends/cuda/op_scope.hpp"

#include <vector>

namespace ltl::cuda {

namespace detail {
/// The index spaces of a sum over flagged dimensions: one output per position of `kept`,
/// each summing the `red` positions starting at its kept offset.
struct reduction_plan {
  shape out_shape;  ///< x's shape with reduced extents set to 1 (keepdim)
  kernels::strided_space<1> kept, red;
  index_t n_out = 0, n_in = 0;
};

inline reduction_plan plan_reduction(const shape& sizes, const shape& strides, const std::vector<bool>& reduce) {
  const int r = sizes.size();
  LTL_CHECK(static_cast<int>(reduce.size()) == r, shape_error, "sum: {} flags for shape {}", reduce.size(), sizes);
  reduction_plan p;
  p.out_shape = sizes;
  shape kept, kept_st, red, red_st;
  for (int d = 0; d < r; ++d) {
    if (reduce[static_cast<std::size_t>(d)]) {
      p.out_shape[d] = 1;
      red.push_back(sizes[d]);
      red_st.push_back(strides[d]);
    } else {
      kept.push_back(sizes[d]);
      kept_st.push_back(strides[d]);
    }
  }
  p.kept = kernels::make_space<1>(kept, {kept_st});
  p.red = kernels::make_space<1>(red, {red_st});
  p.n_out = kept.numel();
  p.n_in = red.numel();
  return p;
}
}  // namespace detail

/// Sum over the dimensions flagged in `reduce` (one flag per dimension of x). The result has
/// extent 1 in reduced dimensions (keepdim) and is contiguous. Shape of x: any rank.
template <class T>
device_tensor<T> sum_dims_keep(const device_tensor<T>& x, const std::vector<bool>& reduce) {
  const op_scope scope("sum_dims_keep", x);
  const detail::reduction_plan p = detail::plan_reduction(x.sizes(), x.strides(), reduce);
  device_tensor<T> out(p.out_shape);
  if (p.n_out == 0) return out;
  if (p.n_in == 0) {  // an empty sum is zero, as on the CPU
    out.zero_();
    return out;
  }
  const cudaStream_t s = context::current().stream();
  if (p.n_in < kernels::block_reduce_threshold) {
    kernels::sum_per_thread<T, double><<<kernels::grid_for(p.n_out), kernels::block_size, 0, s>>>(
        x.data(), p.kept, p.red, out.data(), p.n_out, p.n_in);
  } else {
    const auto blocks = static_cast<unsigned>(std::min(p.n_out, kernels::max_grid));
    kernels::sum_per_block<T, double><<<blocks, kernels::block_size, 0, s>>>(x.data(), p.kept, p.red, out.data(),
                                                                              p.n_out, p.n_in);
  }
  detail::check_launch("sum");
  return out;
}

/// Sums `g` down to `target`, a shape that broadcasts to g's shape (the backward of broadcasting).
template <class T>
device_tensor<T> sum_to(const device_tensor<T>& g, const shape& target) {
  const op_scope scope("sum_to", g);
  if (g.sizes() == target) return g;
  return cuda::sum_dims_keep(g, sum_to_dims(g.sizes(), target)).reshape(target);
}

}  // namespace ltl::cuda
