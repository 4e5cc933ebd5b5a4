#pragma once
/// \file
/// Foundational concepts: devices and scalar types.

#include <concepts>
#include <cstddef>
#include <type_traits>

namespace ltl {

/// A device tag type.
///
/// Represents a memory space plus the kernels that run on it. Requires static raw
/// `allocate`/`deallocate`, an in-device `copy` and `zero`, a printable `name` and an
/// `is_host` flag. Ensures that `tensor<T, D>` can own storage on it; kernels for it are
/// found in the tag's namespace.
template <class D>
concept device = requires(void* p, const void* cp, std::size_t n) {
  { D::allocate(n) } -> std::same_as<void*>;
  D::deallocate(p, n);
  D::copy(p, cp, n);
  D::zero(p, n);
  { D::name } -> std::convertible_to<const char*>;
  { D::is_host } -> std::convertible_to<bool>;
};

/// Floating-point element types the differentiable ops instantiate for (float, double).
template <class T>
concept real_scalar = std::same_as<T, float> || std::same_as<T, double>;

/// Element types a tensor may hold: arithmetic types (labels are int64 tensors).
template <class T>
concept tensor_element = std::is_arithmetic_v<T>;

}  // namespace ltl
