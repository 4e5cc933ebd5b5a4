#pragma once
/// \file
/// The ltl::error hierarchy and the always-on LTL_CHECK macro for user input.
///
/// Every error a user can trigger derives from ltl::error, so `catch (const ltl::error&)`
/// is enough for callers; the subtypes let tests and tools tell the causes apart.

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <utility>

namespace ltl {

/// Base of every error ltlearn throws on bad input or a failed resource.
class error : public std::runtime_error {
 public:
  explicit error(const std::string& what) : std::runtime_error(what) {}
};

/// Mismatched or invalid shapes, ranks or dimensions.
class shape_error : public error {
 public:
  using error::error;
};

/// Tensors on the wrong device, or a device that is not available.
class device_error : public error {
 public:
  using error::error;
};

/// Unreadable, truncated or corrupt files.
class io_error : public error {
 public:
  using error::error;
};

/// Invalid values: out-of-range labels or indices, NaN losses, bad hyper-parameters.
class value_error : public error {
 public:
  using error::error;
};

/// Misuse of the autograd graph (e.g. a second backward through freed buffers).
class autograd_error : public error {
 public:
  using error::error;
};

/// A CUDA, cuBLAS or cuDNN call that returned a failure status.
class cuda_error : public device_error {
 public:
  using device_error::device_error;
};

namespace detail {
template <class E, class... Args>
[[noreturn]] void throw_error(fmt::format_string<Args...> f, Args&&... args) {
  throw E(fmt::format(f, std::forward<Args>(args)...));
}
}  // namespace detail

}  // namespace ltl

/// Always-on check of user input: throws `ErrorType` with a formatted message when
/// `cond` is false. Example: `LTL_CHECK(a.dim() == 2, shape_error, "matmul: a is {}", a.sizes());`
#define LTL_CHECK(cond, ErrorType, ...)                              \
  do {                                                               \
    if (!(cond)) [[unlikely]] {                                      \
      ::ltl::detail::throw_error<::ltl::ErrorType>(__VA_ARGS__);     \
    }                                                                \
  } while (0)
