#pragma once
// A test-only CUDA device on the CPU: the CUDA backend's own sources, compiled by the host
// compiler and run against an emulated CUDA runtime, cuBLAS and cuDNN (runtime.cpp), so that
// every [cuda] test exercises the backend's kernels, launch configurations, allocator, streams,
// uploads, cuDNN plans and training steps on a machine without a GPU.
//
// How: the build force-includes this header into the CUDA test sources (compiled as C++ with
// LTL_CUDA_EMULATION defined) and puts first on their include path copies of the backend
// headers in which every launch `k<<<grid, block, shmem, stream>>>(args)` is rewritten to
// `::ltl_emu::launch([&](auto&&... a) { k(a...); }, grid, block, shmem, stream).named("k")(args)`
// (tests/support/cuda_emu/rewrite.cmake). A launch runs the blocks of the grid one at a time
// and a block's threads one after another on a fiber; a thread that reaches __syncthreads()
// parks its fiber and the next thread starts on a new one, and once every thread of the block
// has arrived they resume in the same order (a barrier that only some threads reach before
// the others exit is a launch failure). __shared__ variables are one per host thread and
// kernel (blocks run one at a time); threadIdx & co. are the running thread's. Streams and
// events are synchronous; device memory is host memory that the runtime tracks (device, size),
// so that launches, copies, cuBLAS and cuDNN calls check their pointers.
//
// The emulated machine has two devices (LTL_EMU_DEVICES), 4 GiB each (set_device_memory), and
// runs a block's threads in increasing order, or decreasing with LTL_EMU_THREAD_ORDER=reverse:
// ctest runs every case both ways, so that a missing barrier (a thread reading a value another
// thread of its block writes in the same phase) shows as a difference.
//
// What it cannot show: timing, overlap of streams, races a GPU's scheduling exposes beyond the
// two orders, nvcc's code generation, and cuBLAS's and cuDNN's own numerics and algorithm lists
// (the emulated heuristics offer a TF32, a non-deterministic and two FMA candidates, one of them
// with a workspace, so that the plan's filtering runs).

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstddef>
#include <functional>
#include <type_traits>
#include <typeinfo>

// From here on the translation unit is the host side of a .cu file, as nvcc compiles it: the
// library's headers take the paths they take under nvcc (scalar CPU loss, no vector extensions).
// (What ltlearn::cuda adds for nvcc, likewise: Eigen host-only, fmt's compile-time checks on.)
#define __CUDACC__ 1
#if !defined(EIGEN_NO_CUDA)
#define EIGEN_NO_CUDA
#endif
#if !defined(FMT_USE_CONSTEXPR)
#define FMT_USE_CONSTEXPR 1
#endif

namespace ltl_emu {

/// The running emulated thread's coordinates.
struct thread_coords {
  dim3 thread_idx, block_idx, block_dim, grid_dim;
};
/// The coordinates of the emulated thread now running on this host thread.
thread_coords& current() noexcept;
/// __syncthreads(): waits until every thread of the block has arrived.
void sync_threads();
/// Runs `body` once per thread of `grid` × `block` (see the file comment); `kernel` names it in
/// messages. A bad configuration sets the sticky launch error that cudaGetLastError returns, as
/// the runtime does.
void run_grid(const char* kernel, dim3 grid, dim3 block, std::size_t shared_bytes, cudaStream_t stream,
              const std::function<void()>& body);

/// True when `p` is null or device memory; else sets the launch error (cudaErrorIllegalAddress).
bool check_kernel_pointer(const void* p, int index, const char* kernel);

/// A pending launch: called with the kernel's arguments, it runs the grid (unless a pointer
/// argument is not device memory: then it sets the launch error and runs nothing).
template <class K>
struct launcher {
  K kernel;
  dim3 grid, block;
  std::size_t shared_bytes;
  cudaStream_t stream;
  const char* name = nullptr;  ///< for messages; the lambda's type name otherwise
  /// The same launch, named `kernel_name` in the emulator's messages.
  launcher named(const char* kernel_name) const {
    launcher l = *this;
    l.name = kernel_name;
    return l;
  }
  template <class... A>
  void operator()(A&&... args) const {
    const char* what = name ? name : typeid(K).name();
    int i = 0;
    if (!(check_argument(args, i++, what) && ...)) return;
    run_grid(what, grid, block, shared_bytes, stream, [&] { kernel(args...); });
  }
  /// A pointer argument must be null or device memory (a kernel cannot read host memory).
  template <class A>
  static bool check_argument(const A& a, int index, const char* what) {
    if constexpr (std::is_pointer_v<A>) return check_kernel_pointer(static_cast<const void*>(a), index, what);
    return true;
  }
};
template <class K>
launcher<K> launch(K kernel, dim3 grid, dim3 block, std::size_t shared_bytes = 0, cudaStream_t stream = nullptr) {
  return {kernel, grid, block, shared_bytes, stream};
}

/// Test controls of the emulated device.
/// Runs the threads of each block in reverse order (last thread first) from now on.
void reverse_thread_order(bool on) noexcept;
/// Device memory the emulated GPU has (cudaMalloc beyond it fails with cudaErrorMemoryAllocation).
void set_device_memory(std::size_t bytes) noexcept;
/// Bytes cudaMalloc'ed and not yet freed on device `device`.
std::size_t device_bytes_in_use(int device) noexcept;
/// Launches (grids) run so far.
std::size_t launches() noexcept;

}  // namespace ltl_emu

// The kernel-side built-ins. Device intrinsics that round one operation on its own are the
// plain host operation (the host compiler contracts nothing across a function call's result).
inline float __fmul_rn(float a, float b) { return a * b; }
inline double __dmul_rn(double a, double b) { return a * b; }

#undef __shared__
#define __shared__ static thread_local
#define threadIdx (::ltl_emu::current().thread_idx)
#define blockIdx (::ltl_emu::current().block_idx)
#define blockDim (::ltl_emu::current().block_dim)
#define gridDim (::ltl_emu::current().grid_dim)
#define __syncthreads() ::ltl_emu::sync_threads()
