#pragma once
/// \file
/// ltl::cuda::context: the streams, library handles and numerics settings of one device.
///
/// All of ltlearn's compute work for a device is issued on that device's compute stream, so
/// kernels, copies and library calls are ordered with each other without events, and a block
/// freed into the caching allocator can be reused at once by the next op on the same stream.
/// The compute stream is a blocking one (created without cudaStreamNonBlocking), so user code
/// on the legacy default stream stays ordered with it too. The copy stream (non-blocking) is
/// for uploads that overlap compute; work handed between the two is ordered with events, and
/// blocks crossing them are announced to the allocator (memory.hpp, record_stream).
///
/// `context::current()` is the context of the calling thread's current device (cudaGetDevice);
/// contexts are created on first use, thread-safely, and live until the process ends. The first
/// context checks that the CUDA runtime and cuBLAS found at run time match the versions ltlearn
/// was compiled against, the first cuDNN handle does the same for cuDNN (version_check.hpp).

#include "ltlearn/backends/cuda/error.hpp"
#include "ltlearn/backends/cuda/version_check.hpp"

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

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

/// Numerics settings of a device's library calls (SPEC §13): the defaults give results that
/// are reproducible run to run and as accurate as FP32 FMA arithmetic.
struct settings {
  /// Let cuDNN/cuBLAS use TF32 tensor cores for float (≈ 10-bit mantissa inputs): faster on
  /// Ampere and later, but no longer FP32-accurate. Opt-in only.
  bool allow_tf32 = false;
  /// Only algorithms whose results are bit-identical run to run (cuDNN's determinism flag).
  bool deterministic = true;
  /// Largest cuDNN workspace an algorithm may ask for, in bytes.
  std::size_t max_workspace_bytes = std::size_t{1} << 30;
  /// Host batches (trainer, batched pass) reach the device through the pinned staging rings
  /// and the copy stream (upload.hpp), overlapping compute; false: synchronous copies
  /// (tensor::to). The values are the same either way.
  bool staged_uploads = true;
};

namespace detail {
/// cuBLAS math mode for `s`: TF32 tensor cores for float routines only when allow_tf32 is set;
/// otherwise CUBLAS_DEFAULT_MATH, under which cuBLAS keeps at least the requested precision's
/// mantissa (no TF32 for float) — the FP32-accurate default of SPEC §13.
[[nodiscard]] constexpr cublasMath_t cublas_math_mode(const settings& s) noexcept {
  return s.allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH;
}

/// Throws cuda_error when a library found at run time cannot serve this build.
inline void require_compatible(const version_verdict& v) {
  if (!v.ok) throw cuda_error(v.message);
}

/// CUDA runtime and cuBLAS versions found at run time against the compiled-in ones.
inline std::vector<version_verdict> check_runtime_and_cublas() {
  std::vector<version_verdict> out;
  int runtime = 0;
  LTL_CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  out.push_back(check_library_version("the CUDA runtime (libcudart)", decode_cuda_version(CUDART_VERSION),
                                      decode_cuda_version(runtime)));
  library_version blas;
  LTL_CUBLAS_CHECK(cublasGetProperty(MAJOR_VERSION, &blas.major));
  LTL_CUBLAS_CHECK(cublasGetProperty(MINOR_VERSION, &blas.minor));
  LTL_CUBLAS_CHECK(cublasGetProperty(PATCH_LEVEL, &blas.patch));
  out.push_back(check_library_version("cuBLAS (libcublas)", {CUBLAS_VER_MAJOR, CUBLAS_VER_MINOR, CUBLAS_VER_PATCH},
                                      blas, "put a matching libcublas first on LD_LIBRARY_PATH"));
  return out;
}

/// cuDNN's version, and the CUDA major version it was built for, against the compiled-in ones.
inline std::vector<version_verdict> check_cudnn() {
  std::vector<version_verdict> out;
  out.push_back(check_library_version(
      "cuDNN (libcudnn)", {CUDNN_MAJOR, CUDNN_MINOR, CUDNN_PATCHLEVEL},
      decode_version_10000(static_cast<long long>(cudnnGetVersion())),
      "install cuDNN 9 (a toolkit package or the nvidia-cudnn wheel) and put its lib folder on LD_LIBRARY_PATH"));
  int runtime = 0;
  LTL_CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  const library_version built_for = decode_cuda_version(static_cast<int>(cudnnGetCudartVersion()));
  out.push_back(check_library_version("the CUDA version cuDNN was built for", decode_cuda_version(runtime),
                                      built_for, "use the cuDNN build for this CUDA major version"));
  return out;
}
}  // namespace detail

/// Per-device execution context: compute and copy streams, cuBLAS and cuDNN handles bound to
/// the compute stream (both created on first request), and the numerics settings. Obtain it
/// with `current()` or `get(index)`.
///
/// cuBLAS handles may be shared by threads as long as their configuration is not changed; the
/// only configuration ltlearn changes is the math mode, and only when `settings().allow_tf32`
/// changed, which the settings' own rule (change them between steps) keeps single-threaded. cuDNN handles must not be used by two threads
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
    if (contexts->empty()) {
      for (const auto& v : detail::check_runtime_and_cublas()) detail::require_compatible(v);
    }
    auto ctx = std::unique_ptr<context>(new context(device_index));
    return *contexts->emplace(device_index, std::move(ctx)).first->second;
  }

  context(const context&) = delete;
  context& operator=(const context&) = delete;

  [[nodiscard]] int device_index() const noexcept { return index_; }
  /// The stream every ltlearn operation on this device is issued on.
  [[nodiscard]] cudaStream_t stream() const noexcept { return stream_; }
  /// A second, non-blocking stream for host-to-device uploads that overlap compute.
  [[nodiscard]] cudaStream_t copy_stream() const noexcept { return copy_stream_; }

  /// cuBLAS handle bound to `stream()`, host pointer mode, with the math mode of the current
  /// settings (detail::cublas_math_mode): created on the first call, its math mode set again
  /// whenever allow_tf32 changed since the previous call.
  [[nodiscard]] cublasHandle_t cublas() {
    std::call_once(cublas_once_, [this] {
      device_guard g(index_);
      cublasHandle_t h = nullptr;
      LTL_CUBLAS_CHECK(cublasCreate(&h));
      const cublasStatus_t st = cublasSetStream(h, stream_);
      if (st != CUBLAS_STATUS_SUCCESS) {
        (void)cublasDestroy(h);
        LTL_CUBLAS_CHECK(st);
      }
      cublas_ = h;
    });
    const cublasMath_t want = detail::cublas_math_mode(settings_);
    if (cublas_math_.load(std::memory_order_relaxed) != static_cast<int>(want)) {
      device_guard g(index_);
      LTL_CUBLAS_CHECK(cublasSetMathMode(cublas_, want));
      cublas_math_.store(static_cast<int>(want), std::memory_order_relaxed);
    }
    return cublas_;
  }

  /// cuDNN handle bound to `stream()`, created on the first call (loading cuDNN is slow and
  /// most elementwise-only programs never need it) after checking cuDNN's version.
  [[nodiscard]] cudnnHandle_t cudnn() {
    std::call_once(cudnn_once_, [this] {
      for (const auto& v : detail::check_cudnn()) detail::require_compatible(v);
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

  /// The numerics settings of this device's library calls (change them between steps, not
  /// while another thread issues work on the device).
  [[nodiscard]] cuda::settings& settings() noexcept { return settings_; }
  [[nodiscard]] const cuda::settings& settings() const noexcept { return settings_; }

  /// Blocks until all work issued on `stream()` has finished.
  void synchronize() const { LTL_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

 private:
  explicit context(int device_index) : index_(device_index) {
    device_guard g(index_);
    LTL_CUDA_CHECK(cudaStreamCreate(&stream_));
    const cudaError_t st = cudaStreamCreateWithFlags(&copy_stream_, cudaStreamNonBlocking);
    if (st != cudaSuccess) {
      (void)cudaStreamDestroy(stream_);
      LTL_CUDA_CHECK(st);
    }
  }

  int index_;
  cudaStream_t stream_ = nullptr;
  cudaStream_t copy_stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  std::atomic<int> cublas_math_{-1};  ///< the math mode last set on cublas_ (-1: none yet)
  cudnnHandle_t cudnn_ = nullptr;
  std::once_flag cublas_once_;
  std::once_flag cudnn_once_;
  std::mutex cudnn_mu_;
  cuda::settings settings_;
};

}  // namespace ltl::cuda
