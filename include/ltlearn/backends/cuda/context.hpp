#pragma once
/// \file
/// ltl::cuda::context: the stream, cuBLAS handle and (lazily) cuDNN handle of one device.
///
/// All of ltlearn's device work for a device is issued on that device's single stream, so
/// kernels, copies and library calls are ordered with each other without events, and a block
/// freed into the caching allocator can be reused at once by the next op on the same stream.
/// The stream is a blocking one (created without cudaStreamNonBlocking), so user code that
/// works on the legacy default stream stays ordered with it too.
///
/// `context::current()` is the context of the calling thread's current device (cudaGetDevice);
/// contexts are created on first use, thread-safely, and live until the process ends.

#include "ltlearn/backends/cuda/error.hpp"

#include <map>
#include <memory>
#include <mutex>

namespace ltl::cuda {

/// Makes `device_index` current for the guard's lifetime and restores the previous device.
class device_guard {
 public:
  explicit device_guard(int device_index) {
    LTL_CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != device_index) LTL_CUDA_CHECK(cudaSetDevice(device_index));
  }
  ~device_guard() {
    if (cudaSetDevice(previous_) != cudaSuccess) (void)cudaGetLastError();
  }
  device_guard(const device_guard&) = delete;
  device_guard& operator=(const device_guard&) = delete;

 private:
  int previous_ = 0;
};

/// Per-device execution context: one stream, one cuBLAS handle bound to it, and a cuDNN
/// handle bound to it on first request. Obtain it with `current()` or `get(index)`.
///
/// cuBLAS handles may be shared by threads as long as their configuration is not changed
/// (ltlearn never changes it after creation). cuDNN handles must not be used by two threads
/// at once: callers that may run concurrently hold `cudnn_mutex()` around cuDNN calls.
class context {
 public:
  /// The context of the current device.
  static context& current() {
    int index = 0;
    LTL_CUDA_CHECK(cudaGetDevice(&index));
    // Every launch asks for the context: skip the registry's lock when the device is unchanged.
    thread_local context* last = nullptr;
    if (!last || last->index_ != index) last = &get(index);
    return *last;
  }

  /// The context of device `device_index` (0 ≤ index < device count); throws device_error otherwise.
  static context& get(int device_index) {
    static std::mutex mu;
    // Deliberately leaked: destroying streams and handles from static destructors would race
    // the CUDA runtime's own teardown at process exit.
    static auto* contexts = new std::map<int, std::unique_ptr<context>>();
    std::lock_guard lock(mu);
    auto it = contexts->find(device_index);
    if (it != contexts->end()) return *it->second;
    int count = 0;
    LTL_CUDA_CHECK(cudaGetDeviceCount(&count));
    LTL_CHECK(device_index >= 0 && device_index < count, device_error,
              "cuda::context: device {} does not exist ({} devices visible)", device_index, count);
    auto ctx = std::unique_ptr<context>(new context(device_index));
    return *contexts->emplace(device_index, std::move(ctx)).first->second;
  }

  context(const context&) = delete;
  context& operator=(const context&) = delete;

  [[nodiscard]] int device_index() const noexcept { return index_; }
  /// The stream every ltlearn operation on this device is issued on.
  [[nodiscard]] cudaStream_t stream() const noexcept { return stream_; }
  /// cuBLAS handle bound to `stream()`, host pointer mode.
  [[nodiscard]] cublasHandle_t cublas() const noexcept { return cublas_; }

  /// cuDNN handle bound to `stream()`, created on the first call (loading cuDNN is slow and
  /// most elementwise-only programs never need it).
  [[nodiscard]] cudnnHandle_t cudnn() {
    std::call_once(cudnn_once_, [this] {
      device_guard g(index_);
      cudnnHandle_t h = nullptr;
      LTL_CUDNN_CHECK(cudnnCreate(&h));
      const cudnnStatus_t st = cudnnSetStream(h, stream_);
      if (st != CUDNN_STATUS_SUCCESS) {
        (void)cudnnDestroy(h);
        LTL_CUDNN_CHECK(st);
      }
      cudnn_ = h;
    });
    return cudnn_;
  }
  /// Serialises users of the shared cuDNN handle.
  [[nodiscard]] std::mutex& cudnn_mutex() noexcept { return cudnn_mu_; }

  /// Blocks until all work issued on `stream()` has finished.
  void synchronize() const { LTL_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

 private:
  explicit context(int device_index) : index_(device_index) {
    device_guard g(index_);
    LTL_CUDA_CHECK(cudaStreamCreate(&stream_));
    const cublasStatus_t st = cublasCreate(&cublas_);
    if (st == CUBLAS_STATUS_SUCCESS) {
      const cublasStatus_t bound = cublasSetStream(cublas_, stream_);
      if (bound == CUBLAS_STATUS_SUCCESS) return;
      (void)cublasDestroy(cublas_);
      (void)cudaStreamDestroy(stream_);
      LTL_CUBLAS_CHECK(bound);
    }
    (void)cudaStreamDestroy(stream_);
    LTL_CUBLAS_CHECK(st);
  }

  int index_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
  std::once_flag cudnn_once_;
  std::mutex cudnn_mu_;
};

}  // namespace ltl::cuda
