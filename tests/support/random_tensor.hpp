#pragma once
// Seeded random host tensors, the inputs of most tests (light: no Catch2, no kernels), so that
// CPU, device-generic and CUDA tests draw the same values from the same seed.

#include <ltlearn/core/rng.hpp>
#include <ltlearn/tensor/tensor.hpp>

#include <cstdint>

namespace ltl_test {

/// A host tensor of shape s with entries U(lo, hi) from ltl::rng(seed).
template <class T = double>
ltl::tensor<T> random_tensor(const ltl::shape& s, std::uint64_t seed, double lo = -1, double hi = 1) {
  ltl::rng g(seed);
  ltl::tensor<T> t(s);
  for (ltl::index_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<T>(g.uniform(lo, hi));
  return t;
}

}  // namespace ltl_test
