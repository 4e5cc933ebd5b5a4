#pragma once
/// \file
/// CPU reductions: sums over chosen dimensions, accumulated in double, deterministic for a
/// given thread count (per-thread partials are combined in thread order).

#include "ltlearn/backends/cpu/elementwise.hpp"

#include <vector>

namespace ltl::cpu {

/// Number of threads kernels use (1 without OpenMP).
inline int num_threads() noexcept {
#if LTL_HAS_OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

/// Sum over the dimensions flagged in `reduce` (one flag per dimension of x). The result has
/// extent 1 in reduced dimensions (keepdim) and is contiguous.
template <class T>
host_tensor<T> sum_dims_keep(const host_tensor<T>& x, const std::vector<bool>& reduce) {
  const int r = x.dim();
  LTL_CHECK(static_cast<int>(reduce.size()) == r, shape_error, "sum: {} flags for shape {}", reduce.size(), x.sizes());
  shape out_shape = x.sizes(), kept, kept_st, red, red_st;
  for (int d = 0; d < r; ++d) {
    if (reduce[static_cast<std::size_t>(d)]) {
      out_shape[d] = 1;
      red.push_back(x.size(d));
      red_st.push_back(x.strides()[d]);
    } else {
      kept.push_back(x.size(d));
      kept_st.push_back(x.strides()[d]);
    }
  }
  host_tensor<T> out(out_shape);
  T* o = out.data();
  const T* p = x.data();
  const index_t n_out = kept.numel(), n_in = red.numel();
  // Offsets of the kept positions (row-major over kept dims = row-major over out).
  auto reduce_one = [&](index_t base, index_t b, index_t e) {
    double s = 0;
    ltl::detail::strided_for<1>(red, {red_st}, b, e, [&](const auto& off) { s += static_cast<double>(p[base + off[0]]); });
    return s;
  };
  if (n_out >= 4 * num_threads() || n_in < 2 * parallel_grain) {
    parallel_for(
        n_out,
        [&](index_t b, index_t e) {
          index_t i = b;
          ltl::detail::strided_for<1>(kept, {kept_st}, b, e, [&](const auto& off) { o[i++] = static_cast<T>(reduce_one(off[0], 0, n_in)); });
        },
        std::max<index_t>(1, parallel_grain / std::max<index_t>(1, n_in)));
    return out;
  }
  // Few outputs, long reductions: split each reduction across threads.
  index_t i = 0;
  ltl::detail::strided_for<1>(kept, {kept_st}, 0, n_out, [&](const auto& off) {
    std::vector<double> partial(static_cast<std::size_t>(num_threads()), 0.0);
#if LTL_HAS_OPENMP
#pragma omp parallel
    {
      const index_t nt = omp_get_num_threads(), t = omp_get_thread_num();
      const index_t chunk = (n_in + nt - 1) / nt;
      const index_t b = std::min(n_in, t * chunk), e = std::min(n_in, b + chunk);
      partial[static_cast<std::size_t>(t)] = reduce_one(off[0], b, e);
    }
#else
    partial[0] = reduce_one(off[0], 0, n_in);
#endif
    double s = 0;
    for (double v : partial) s += v;
    o[i++] = static_cast<T>(s);
  });
  return out;
}

/// Sums `g` down to `target`, a shape that broadcasts to g's shape (the backward of broadcasting).
template <class T>
host_tensor<T> sum_to(const host_tensor<T>& g, const shape& target) {
  if (g.sizes() == target) return g;
  return sum_dims_keep(g, sum_to_dims(g.sizes(), target)).reshape(target);
}

}  // namespace ltl::cpu
