#pragma once
/// \file
/// Differentiable reductions: sum and mean over chosen dimensions (or all), keepdim optional.

#include "ltlearn/ops/elementwise.hpp"

#include <vector>

namespace ltl {

namespace detail {
inline std::vector<bool> reduce_mask(const shape& s, std::initializer_list<int> dims, const char* op) {
  std::vector<bool> m(static_cast<std::size_t>(s.size()), dims.size() == 0);
  for (int d : dims) m[static_cast<std::size_t>(normalize_dim(d, s.size(), op))] = true;
  return m;
}
inline shape reduced_shape(const shape& s, const std::vector<bool>& mask, bool keepdim) {
  shape out;
  for (int d = 0; d < s.size(); ++d) {
    if (!mask[static_cast<std::size_t>(d)]) out.push_back(s[d]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}
}  // namespace detail

/// Sum over `dims` (all dimensions when empty). Accumulates in double.
template <real_scalar T, device D>
variable<T, D> sum(const variable<T, D>& x, std::initializer_list<int> dims = {}, bool keepdim = false) {
  const auto mask = detail::reduce_mask(x.sizes(), dims, "sum");
  const shape kept = detail::reduced_shape(x.sizes(), mask, true);
  auto y = sum_dims_keep(x.value(), mask).reshape(detail::reduced_shape(x.sizes(), mask, keepdim));
  return make_result<T, D>(std::move(y), "sum", {&x}, [kept, sx = x.sizes()](const tensor<T, D>& g) {
    return grads_t<T, D>{g.reshape(kept).expand(sx).contiguous()};
  });
}

/// Mean over `dims` (all dimensions when empty).
template <real_scalar T, device D>
variable<T, D> mean(const variable<T, D>& x, std::initializer_list<int> dims = {}, bool keepdim = false) {
  const auto mask = detail::reduce_mask(x.sizes(), dims, "mean");
  index_t count = 1;
  for (int d = 0; d < x.dim(); ++d)
    if (mask[static_cast<std::size_t>(d)]) count *= x.size(d);
  LTL_CHECK(count > 0, shape_error, "mean: reducing an empty extent of shape {}", x.sizes());
  return affine(sum(x, dims, keepdim), T(1) / static_cast<T>(count), T(0));
}

}  // namespace ltl
