#pragma once
/// \file
/// Status checks for the CUDA runtime, cuBLAS and cuDNN, and the GPU availability probe.
///
/// Every CUDA, cuBLAS and cuDNN call in ltlearn goes through one of the LTL_*_CHECK macros, so
/// a failure becomes an `ltl::cuda_error` whose message names the call, the source location and
/// the library's own status text, and the op that was running (op_label.hpp). This header needs
/// only the CUDA include path, not nvcc.

#include "ltlearn/backends/cuda/op_label.hpp"
#include "ltlearn/core/error.hpp"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <string>

namespace ltl::cuda {

namespace detail {
/// Throws the cuda_error for a failed runtime call. Also clears the runtime's "last error"
/// slot so that a later kernel-launch check does not report this stale failure again.
[[noreturn]] inline void throw_runtime_error(cudaError_t status, const char* expr, const char* file, int line) {
  (void)cudaGetLastError();
  throw cuda_error(fmt::format("{} failed at {}:{}: {} ({}){}", expr, file, line, cudaGetErrorString(status),
                               cudaGetErrorName(status), op_suffix()));
}
[[noreturn]] inline void throw_cublas_error(cublasStatus_t status, const char* expr, const char* file, int line) {
  throw cuda_error(fmt::format("{} failed at {}:{}: {} ({}){}", expr, file, line, cublasGetStatusString(status),
                               cublasGetStatusName(status), op_suffix()));
}
/// The cuDNN error, with cuDNN's own description of the last failure (cudnnGetLastErrorString,
/// cuDNN ≥ 9), which names the parameter it rejected.
[[noreturn]] inline void throw_cudnn_error(cudnnStatus_t status, const char* expr, const char* file, int line) {
  char last[512] = {};
  cudnnGetLastErrorString(last, sizeof(last));
  throw cuda_error(fmt::format("{} failed at {}:{}: {}{}{}{}", expr, file, line, cudnnGetErrorString(status),
                               last[0] ? "; cuDNN: " : "", last, op_suffix()));
}

/// Throws cuda_error if the kernel launch just made failed (bad configuration, no device,
/// missing kernel image for this GPU's architecture). Errors inside the kernel surface later,
/// at the next synchronising call.
inline void check_launch(const char* kernel) {
  const cudaError_t st = cudaGetLastError();
  if (st != cudaSuccess) [[unlikely]] {
    throw cuda_error(fmt::format("launch of kernel {} failed: {} ({}){}", kernel, cudaGetErrorString(st),
                                 cudaGetErrorName(st), op_suffix()));
  }
}

/// Outcome of probing the CUDA runtime once per process.
struct availability {
  bool ok = false;
  std::string reason;
};

inline availability probe() {
  availability a;
  int count = 0;  // cudaGetDeviceCount leaves it untouched when it fails
  const cudaError_t st = cudaGetDeviceCount(&count);
  (void)cudaGetLastError();
  if (st == cudaSuccess && count > 0) {
    a.ok = true;
    return a;
  }
  if (st == cudaSuccess || st == cudaErrorNoDevice) {
    a.reason = "no CUDA-capable device is visible (check CUDA_VISIBLE_DEVICES)";
  } else if (st == cudaErrorInsufficientDriver) {
    int driver = 0, runtime = 0;
    (void)cudaDriverGetVersion(&driver);
    (void)cudaRuntimeGetVersion(&runtime);
    (void)cudaGetLastError();
    a.reason = driver == 0 ? fmt::format("no NVIDIA driver is installed (cudaGetDeviceCount: {})",
                                         cudaGetErrorString(st))
                           : fmt::format("the NVIDIA driver supports CUDA {}.{} but the runtime is CUDA {}.{}",
                                         driver / 1000, driver % 1000 / 10, runtime / 1000, runtime % 1000 / 10);
  } else {
    a.reason = fmt::format("cudaGetDeviceCount failed: {} ({})", cudaGetErrorString(st), cudaGetErrorName(st));
  }
  return a;
}

inline const availability& cached_availability() noexcept {
  // The device count cannot change during a process, so probe once. If even formatting the
  // reason fails (out of memory), report "unavailable" rather than throw from a query.
  static const availability a = []() noexcept {
    try {
      return probe();
    } catch (...) {
      return availability{};
    }
  }();
  return a;
}
}  // namespace detail

/// True when at least one CUDA device can be used. Never throws; false without a driver.
[[nodiscard]] inline bool available() noexcept { return detail::cached_availability().ok; }

/// Why `available()` is false (empty when a device is available), e.g. "no NVIDIA driver is installed".
[[nodiscard]] inline std::string unavailable_reason() {
  const auto& a = detail::cached_availability();
  if (a.ok) return {};
  return a.reason.empty() ? std::string("the CUDA runtime could not be probed") : a.reason;
}

}  // namespace ltl::cuda

/// Evaluates a CUDA runtime call; throws `ltl::cuda_error` naming it unless it returns cudaSuccess.
#define LTL_CUDA_CHECK(expr)                                                                  \
  do {                                                                                        \
    const cudaError_t ltl_cuda_status_ = (expr);                                              \
    if (ltl_cuda_status_ != cudaSuccess) [[unlikely]] {                                       \
      ::ltl::cuda::detail::throw_runtime_error(ltl_cuda_status_, #expr, __FILE__, __LINE__);  \
    }                                                                                         \
  } while (0)

/// Evaluates a cuBLAS call; throws `ltl::cuda_error` naming it unless it returns CUBLAS_STATUS_SUCCESS.
#define LTL_CUBLAS_CHECK(expr)                                                               \
  do {                                                                                       \
    const cublasStatus_t ltl_cublas_status_ = (expr);                                        \
    if (ltl_cublas_status_ != CUBLAS_STATUS_SUCCESS) [[unlikely]] {                          \
      ::ltl::cuda::detail::throw_cublas_error(ltl_cublas_status_, #expr, __FILE__, __LINE__); \
    }                                                                                        \
  } while (0)

/// Evaluates a cuDNN call; throws `ltl::cuda_error` naming it unless it returns CUDNN_STATUS_SUCCESS.
#define LTL_CUDNN_CHECK(expr)                                                              \
  do {                                                                                     \
    const cudnnStatus_t ltl_cudnn_status_ = (expr);                                        \
    if (ltl_cudnn_status_ != CUDNN_STATUS_SUCCESS) [[unlikely]] {                          \
      ::ltl::cuda::detail::throw_cudnn_error(ltl_cudnn_status_, #expr, __FILE__, __LINE__); \
    }                                                                                      \
  } while (0)
