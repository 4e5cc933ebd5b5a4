#pragma once
/// \file
/// detail::to_host: a tensor of any device as a host tensor, for host-side loops over small
/// results (labels, logits read by a meter, λ and permutations built on the host). Host memory
/// is the default device of `tensor<T>`; a tensor already there is returned as is (contiguous),
/// so CPU code pays nothing.

#include "ltlearn/tensor/tensor.hpp"

namespace ltl::detail {

/// The device of host memory (the default device of tensor<T>).
using host_device_t = typename tensor<float>::device_type;

/// `t` as a contiguous host tensor (the same handle when it already is one).
template <tensor_element T, device D>
[[nodiscard]] tensor<T> to_host(const tensor<T, D>& t) {
  return t.template to<host_device_t>();
}

}  // namespace ltl::detail
