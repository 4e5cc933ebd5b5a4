#pragma once
/// \file
/// The name of the CUDA kernel function (the contract kernel the op layer called: "add",
/// "conv2d_forward", "fused_loss", …) running on the calling thread, so that an error raised
/// deep inside it — out of memory in the caching allocator, a CUDA, cuBLAS or cuDNN status —
/// says which op failed. Set by `op_scope` (backends/cuda/op_scope.hpp); no CUDA headers here,
/// so that the host-testable memory pool can use it.

#include <fmt/format.h>

#include <string>

namespace ltl::cuda::detail {

/// The running op's name (null outside any op). Scopes nest; the outermost name stays.
inline const char*& current_op() noexcept {
  thread_local const char* op = nullptr;
  return op;
}

/// " (in op <name>)" while an op runs, else "": appended to the backend's error messages.
inline std::string op_suffix() {
  const char* op = current_op();
  return op ? fmt::format(" (in op {})", op) : std::string();
}

}  // namespace ltl::cuda::detail
