// The emulated CUDA device of emu.hpp: kernel grids on fibers, and the parts of the CUDA
// runtime, cuBLAS and cuDNN that ltlearn calls, implemented on the CPU with the documented
// semantics and argument checks (device pointers, extents, the stream's device, workspace).
// Linked instead of libcudart, libcublas and libcudnn into the emulated test binary.

#include "support/cuda_emu/emu.hpp"

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <string>
#include <vector>

// ---- opaque handles ---------------------------------------------------------------------------
struct CUstream_st {
  int device;
};
struct CUevent_st {
  int device;
};
struct cublasContext {
  int device;
  cudaStream_t stream = nullptr;
  cublasMath_t math = CUBLAS_DEFAULT_MATH;
};
struct cudnnContext {
  int device;
  cudaStream_t stream = nullptr;
};
struct cudnnTensorStruct {
  bool set = false;
  cudnnDataType_t dtype = CUDNN_DATA_FLOAT;
  int n = 0, c = 0, h = 0, w = 0;
};
struct cudnnFilterStruct {
  bool set = false;
  cudnnDataType_t dtype = CUDNN_DATA_FLOAT;
  int k = 0, c = 0, r = 0, s = 0;
};
struct cudnnConvolutionStruct {
  bool set = false;
  int pad_h = 0, pad_w = 0, stride_h = 1, stride_w = 1, dil_h = 1, dil_w = 1, groups = 1;
  cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  cudnnDataType_t compute = CUDNN_DATA_FLOAT;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

namespace ltl_emu {
namespace {

// ---- the device's state ---------------------------------------------------------------------
struct allocation {
  std::size_t bytes;
  int device;  // -1: pinned host memory
};

struct device_state {
  std::mutex mu;
  std::map<std::uintptr_t, allocation> blocks;  // by start address
  std::size_t in_use[8] = {};
  std::size_t capacity = std::size_t{4} << 30;
  int devices = 2;
  std::atomic<std::size_t> launches{0};
  std::atomic<bool> reverse{false};
};

device_state& state() {
  static auto* s = [] {
    auto* d = new device_state();
    if (const char* e = std::getenv("LTL_EMU_DEVICES")) d->devices = std::clamp(std::atoi(e), 0, 8);
    if (const char* e = std::getenv("LTL_EMU_THREAD_ORDER")) d->reverse = std::string(e) == "reverse";
    return d;
  }();
  return *s;
}

thread_local int current_device = 0;
thread_local cudaError_t sticky = cudaSuccess;  // cudaGetLastError's error
thread_local std::string cudnn_last;            // cudnnGetLastErrorString's message

cudaError_t fail(cudaError_t e) {
  sticky = e;
  return e;
}

/// The allocation holding [p, p + bytes), or nullptr. Pointers one past an allocation's end
/// count as inside it when bytes is 0.
const allocation* find(const void* p, std::size_t bytes) {
  auto& s = state();
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  auto it = s.blocks.upper_bound(a);
  if (it == s.blocks.begin()) return nullptr;
  --it;
  if (a + bytes > it->first + it->second.bytes || (bytes == 0 && a > it->first + it->second.bytes)) return nullptr;
  return &it->second;
}

/// True when [p, p + bytes) is device memory of `device`.
bool on_device(const void* p, std::size_t bytes, int device) {
  std::lock_guard lock(state().mu);
  const allocation* a = find(p, bytes);
  return a && a->device == device;
}

bool is_device_pointer(const void* p) {
  std::lock_guard lock(state().mu);
  const allocation* a = find(p, 0);
  return a && a->device >= 0;
}

int stream_device(cudaStream_t s) { return s ? s->device : current_device; }

// ---- kernels on fibers ------------------------------------------------------------------------
// A fiber switch saves the callee-saved registers on the running stack and moves to the other
// stack: on x86-64 by hand (glibc's swapcontext also saves the signal mask, a system call per
// switch, which made barrier-heavy kernels ten times slower), elsewhere with ucontext.
#if defined(__x86_64__)
extern "C" void ltl_emu_switch(void** save_sp, void* next_sp);
asm(R"(
  .text
  .globl ltl_emu_switch
  .type ltl_emu_switch, @function
ltl_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size ltl_emu_switch, .-ltl_emu_switch
)");
struct context {
  void* sp = nullptr;
};
inline void switch_context(context& from, context& to) { ltl_emu_switch(&from.sp, to.sp); }
/// Makes `c` start `entry` on [stack, stack + bytes) at its first switch.
inline void prepare(context& c, char* stack, std::size_t bytes, void (*entry)()) {
  auto top = reinterpret_cast<std::uintptr_t>(stack + bytes) & ~std::uintptr_t{15};
  auto** sp = reinterpret_cast<void**>(top);
  *--sp = nullptr;                              // entry's "return address": rsp ≡ 8 (mod 16) on entry
  *--sp = reinterpret_cast<void*>(entry);       // where ltl_emu_switch's ret goes
  for (int i = 0; i < 6; ++i) *--sp = nullptr;  // rbp, rbx, r12-r15
  c.sp = sp;
}
#else
struct context {
  ucontext_t uc{};
};
inline void switch_context(context& from, context& to) { swapcontext(&from.uc, &to.uc); }
inline void prepare(context& c, char* stack, std::size_t bytes, void (*entry)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = bytes;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
}
#endif

constexpr std::size_t fiber_stack = std::size_t{256} << 10;

struct fiber {
  context ctx;
  std::unique_ptr<char[]> stack;
  int thread = -1;  // the emulated thread it runs, -1 between threads
  enum { running, waiting, finished } status = running;
};

struct block_run {
  const std::function<void()>* body = nullptr;
  std::vector<thread_coords> coords;
  std::vector<int> order;  // thread numbers in start order
  std::size_t next = 0;    // the next thread of `order` to start
  context scheduler;
  fiber* running = nullptr;
  std::string error;
};

thread_local std::vector<std::unique_ptr<fiber>> fiber_pool;
thread_local block_run* run = nullptr;
thread_local thread_coords* coords_now = nullptr;
thread_local thread_coords host_coords{};

void fiber_main() {
  block_run& r = *run;
  fiber& f = *r.running;
  while (r.next < r.order.size()) {
    f.thread = r.order[r.next++];
    coords_now = &r.coords[static_cast<std::size_t>(f.thread)];
    try {
      (*r.body)();
    } catch (const std::exception& e) {
      if (r.error.empty()) r.error = std::string("a kernel thread threw: ") + e.what();
    } catch (...) {
      if (r.error.empty()) r.error = "a kernel thread threw";
    }
    f.thread = -1;
  }
  f.status = fiber::finished;
  switch_context(f.ctx, r.scheduler);
}

/// Resumes fiber `f` (or starts it) until it waits at a barrier or has no thread left.
void resume(block_run& r, fiber& f) {
  r.running = &f;
  f.status = fiber::running;
  if (f.thread >= 0) coords_now = &r.coords[static_cast<std::size_t>(f.thread)];
  switch_context(r.scheduler, f.ctx);
  r.running = nullptr;
}

/// Fiber `i` of this host thread's pool (made on first use), set to start fiber_main.
fiber& fresh_fiber(std::size_t i) {
  while (fiber_pool.size() <= i) {
    auto f = std::make_unique<fiber>();
    f->stack.reset(new char[fiber_stack]);
    fiber_pool.push_back(std::move(f));
  }
  fiber& f = *fiber_pool[i];
  prepare(f.ctx, f.stack.get(), fiber_stack, fiber_main);
  f.thread = -1;
  f.status = fiber::running;
  return f;
}

/// Runs one block; an empty string when it completed, else what went wrong.
std::string run_block(block_run& r) {
  r.next = 0;
  std::size_t used = 0;
  std::vector<fiber*> waiting;
  // Start threads until all have started: a fiber runs threads one after another until one
  // waits at a barrier, and then the next fiber takes the threads after it.
  while (r.next < r.order.size()) {
    fiber& f = fresh_fiber(used++);
    resume(r, f);
    if (f.status == fiber::waiting) waiting.push_back(&f);
  }
  const std::size_t n = r.order.size();
  while (!waiting.empty()) {
    if (waiting.size() != n)
      return std::to_string(waiting.size()) + " of " + std::to_string(n) +
             " threads wait at __syncthreads() while the others have exited (divergent barrier)";
    std::vector<fiber*> now;
    now.swap(waiting);
    // Release in the start order, so that a reversed order stays reversed.
    for (fiber* f : now) {
      resume(r, *f);
      if (f->status == fiber::waiting) waiting.push_back(f);
    }
  }
  return r.error;
}

}  // namespace

thread_coords& current() noexcept { return coords_now ? *coords_now : host_coords; }

void sync_threads() {
  block_run* r = run;
  if (!r || !r->running) return;  // host code: nothing to wait for
  fiber& f = *r->running;
  f.status = fiber::waiting;
  switch_context(f.ctx, r->scheduler);  // resume() points coords_now at this thread again
}

void run_grid(const char* kernel, dim3 grid, dim3 block, std::size_t shared_bytes, cudaStream_t stream,
              const std::function<void()>& body) {
  auto& s = state();
  const unsigned long long threads = 1ull * block.x * block.y * block.z;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || threads == 0 || threads > 1024 || block.z > 64 || grid.y > 65535 ||
      grid.z > 65535 || shared_bytes > 48 * 1024) {
    std::fprintf(stderr, "[cuda emulation] invalid launch configuration of %s\n", kernel);
    fail(cudaErrorInvalidConfiguration);
    return;
  }
  if (current_device >= s.devices) {
    fail(cudaErrorNoDevice);
    return;
  }
  if (stream_device(stream) != current_device) {
    std::fprintf(stderr, "[cuda emulation] %s launched on a stream of device %d while device %d is current\n", kernel,
                 stream_device(stream), current_device);
    fail(cudaErrorInvalidResourceHandle);
    return;
  }
  s.launches.fetch_add(1);
  block_run r;
  r.body = &body;
  block_run* outer = run;
  run = &r;
  r.coords.resize(threads);
  r.order.resize(threads);
  std::iota(r.order.begin(), r.order.end(), 0);
  if (s.reverse.load()) std::reverse(r.order.begin(), r.order.end());
  std::string error;
  for (unsigned bz = 0; bz < grid.z && error.empty(); ++bz)
    for (unsigned by = 0; by < grid.y && error.empty(); ++by)
      for (unsigned bx = 0; bx < grid.x && error.empty(); ++bx) {
        for (unsigned z = 0, t = 0; z < block.z; ++z)
          for (unsigned y = 0; y < block.y; ++y)
            for (unsigned x = 0; x < block.x; ++x, ++t) r.coords[t] = {dim3(x, y, z), dim3(bx, by, bz), block, grid};
        error = run_block(r);
      }
  run = outer;
  coords_now = nullptr;
  if (!error.empty()) {
    std::fprintf(stderr, "[cuda emulation] kernel %s failed: %s\n", kernel, error.c_str());
    fail(cudaErrorLaunchFailure);
  }
}

void reverse_thread_order(bool on) noexcept { state().reverse = on; }
void set_device_memory(std::size_t bytes) noexcept { state().capacity = bytes; }
std::size_t device_bytes_in_use(int device) noexcept {
  std::lock_guard lock(state().mu);
  return device >= 0 && device < 8 ? state().in_use[device] : 0;
}
std::size_t launches() noexcept { return state().launches.load(); }

bool check_kernel_pointer(const void* p, int index, const char* kernel) {
  if (!p || is_device_pointer(p)) return true;
  std::fprintf(stderr, "[cuda emulation] argument %d of kernel %s is not device memory\n", index, kernel);
  fail(cudaErrorIllegalAddress);
  return false;
}

}  // namespace ltl_emu

using ltl_emu::current_device;
using ltl_emu::fail;
using ltl_emu::state;

// ---- the CUDA runtime -------------------------------------------------------------------------
extern "C" {

cudaError_t cudaGetLastError() {
  const cudaError_t e = ltl_emu::sticky;
  ltl_emu::sticky = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return ltl_emu::sticky; }

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess:
      return "cudaSuccess";
    case cudaErrorInvalidValue:
      return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation:
      return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration:
      return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice:
      return "cudaErrorInvalidDevice";
    case cudaErrorNoDevice:
      return "cudaErrorNoDevice";
    case cudaErrorInvalidResourceHandle:
      return "cudaErrorInvalidResourceHandle";
    case cudaErrorIllegalAddress:
      return "cudaErrorIllegalAddress";
    case cudaErrorLaunchFailure:
      return "cudaErrorLaunchFailure";
    case cudaErrorNotReady:
      return "cudaErrorNotReady";
    default:
      return "cudaErrorUnknown";
  }
}
const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorInvalidConfiguration:
      return "invalid configuration argument";
    case cudaErrorInvalidDevice:
      return "invalid device ordinal";
    case cudaErrorNoDevice:
      return "no CUDA-capable device is detected";
    case cudaErrorInvalidResourceHandle:
      return "invalid resource handle";
    case cudaErrorIllegalAddress:
      return "an illegal memory access was encountered";
    case cudaErrorLaunchFailure:
      return "unspecified launch failure";
    case cudaErrorNotReady:
      return "device not ready";
    default:
      return "unknown error";
  }
}

cudaError_t cudaGetDeviceCount(int* count) {
  if (!count) return fail(cudaErrorInvalidValue);
  *count = state().devices;
  return state().devices ? cudaSuccess : fail(cudaErrorNoDevice);
}
cudaError_t cudaGetDevice(int* device) {
  if (!device) return fail(cudaErrorInvalidValue);
  *device = current_device;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
  if (device < 0 || device >= state().devices) return fail(cudaErrorInvalidDevice);
  current_device = device;
  return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* v) {
  if (!v) return fail(cudaErrorInvalidValue);
  *v = CUDART_VERSION;
  return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* v) {
  if (!v) return fail(cudaErrorInvalidValue);
  *v = CUDART_VERSION;
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }

cudaError_t cudaMalloc(void** p, size_t bytes) {
  if (!p) return fail(cudaErrorInvalidValue);
  auto& s = state();
  std::lock_guard lock(s.mu);
  if (current_device >= s.devices) return fail(cudaErrorNoDevice);
  if (bytes > s.capacity - std::min(s.capacity, s.in_use[current_device])) return fail(cudaErrorMemoryAllocation);
  // Real device memory is 256-byte aligned; garbage-filled, as cudaMalloc's is.
  void* q = std::aligned_alloc(256, (std::max<std::size_t>(bytes, 1) + 255) / 256 * 256);
  if (!q) return fail(cudaErrorMemoryAllocation);
  std::memset(q, 0xA5, bytes);
  s.blocks[reinterpret_cast<std::uintptr_t>(q)] = {bytes, current_device};
  s.in_use[current_device] += bytes;
  *p = q;
  return cudaSuccess;
}
cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  auto& s = state();
  std::lock_guard lock(s.mu);
  const auto it = s.blocks.find(reinterpret_cast<std::uintptr_t>(p));
  if (it == s.blocks.end() || it->second.device < 0) return fail(cudaErrorInvalidValue);
  s.in_use[it->second.device] -= it->second.bytes;
  s.blocks.erase(it);
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned int /*flags*/) {
  if (!p) return fail(cudaErrorInvalidValue);
  void* q = std::aligned_alloc(256, (std::max<std::size_t>(bytes, 1) + 255) / 256 * 256);
  if (!q) return fail(cudaErrorMemoryAllocation);
  std::lock_guard lock(state().mu);
  state().blocks[reinterpret_cast<std::uintptr_t>(q)] = {bytes, -1};
  *p = q;
  return cudaSuccess;
}
cudaError_t cudaFreeHost(void* p) {
  if (!p) return cudaSuccess;
  std::lock_guard lock(state().mu);
  const auto it = state().blocks.find(reinterpret_cast<std::uintptr_t>(p));
  if (it == state().blocks.end() || it->second.device >= 0) return fail(cudaErrorInvalidValue);
  state().blocks.erase(it);
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total) {
  auto& s = state();
  std::lock_guard lock(s.mu);
  *total = s.capacity;
  *free_bytes = s.capacity - std::min(s.capacity, s.in_use[current_device]);
  return cudaSuccess;
}
cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* attr, const void* p) {
  if (!attr) return fail(cudaErrorInvalidValue);
  std::lock_guard lock(state().mu);
  const ltl_emu::allocation* a = ltl_emu::find(p, 0);
  *attr = cudaPointerAttributes{};
  if (!a) {
    attr->type = cudaMemoryTypeUnregistered;
    attr->device = -2;
    return cudaSuccess;
  }
  attr->type = a->device >= 0 ? cudaMemoryTypeDevice : cudaMemoryTypeHost;
  attr->device = a->device >= 0 ? a->device : current_device;
  attr->devicePointer = const_cast<void*>(p);
  attr->hostPointer = a->device >= 0 ? nullptr : const_cast<void*>(p);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
  if (bytes == 0) return cudaSuccess;
  if (!dst || !src) return fail(cudaErrorInvalidValue);
  const int dev = ltl_emu::stream_device(stream);
  bool ok = true;
  switch (kind) {
    case cudaMemcpyHostToDevice:
      ok = ltl_emu::on_device(dst, bytes, dev) && !ltl_emu::is_device_pointer(src);
      break;
    case cudaMemcpyDeviceToHost:
      ok = ltl_emu::on_device(src, bytes, dev) && !ltl_emu::is_device_pointer(dst);
      break;
    case cudaMemcpyDeviceToDevice:
      ok = ltl_emu::on_device(dst, bytes, dev) && ltl_emu::is_device_pointer(src);
      break;
    default:
      break;
  }
  if (!ok) {
    std::fprintf(stderr,
                 "[cuda emulation] cudaMemcpyAsync of %zu bytes (kind %d) on a stream of device %d: "
                 "an operand is not memory of the kind the copy names\n",
                 bytes, static_cast<int>(kind), dev);
    return fail(cudaErrorInvalidValue);
  }
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  return cudaMemcpyAsync(dst, src, bytes, kind, nullptr);
}
cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return cudaSuccess;
  if (!ltl_emu::on_device(dst, bytes, ltl_emu::stream_device(stream))) return fail(cudaErrorInvalidValue);
  std::memset(dst, value, bytes);
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* s) {
  if (!s) return fail(cudaErrorInvalidValue);
  *s = new CUstream_st{current_device};
  return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned int /*flags*/) { return cudaStreamCreate(s); }
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  delete s;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t e, unsigned int) {
  return e ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned int /*flags*/) {
  if (!e) return fail(cudaErrorInvalidValue);
  *e = new CUevent_st{current_device};
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* e) { return cudaEventCreateWithFlags(e, 0); }
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  if (!e || e->device != ltl_emu::stream_device(s)) return fail(cudaErrorInvalidResourceHandle);
  return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t e) { return e ? cudaSuccess : fail(cudaErrorInvalidResourceHandle); }
cudaError_t cudaEventSynchronize(cudaEvent_t e) { return e ? cudaSuccess : fail(cudaErrorInvalidResourceHandle); }
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t, cudaEvent_t) {
  *ms = 0;
  return cudaSuccess;
}

}  // extern "C"

// ---- cuBLAS ---------------------------------------------------------------------------------
namespace {
/// C = α·op(A)·op(B) + β·C in column-major storage, summed in k order in T.
template <class T>
cublasStatus_t gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const T* alpha,
                    const T* A, int lda, const T* B, int ldb, const T* beta, T* C, int ldc) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (m < 0 || n < 0 || k < 0 || ldc < std::max(1, m) || lda < std::max(1, ta == CUBLAS_OP_N ? m : k) ||
      ldb < std::max(1, tb == CUBLAS_OP_N ? k : n))
    return CUBLAS_STATUS_INVALID_VALUE;
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  const int dev = ltl_emu::stream_device(h->stream);
  const auto span = [](int rows, int cols, int ld) { return (std::size_t(cols) - 1) * ld + rows; };
  const bool a_ok =
      k == 0 || ltl_emu::on_device(A, sizeof(T) * (ta == CUBLAS_OP_N ? span(m, k, lda) : span(k, m, lda)), dev);
  const bool b_ok =
      k == 0 || ltl_emu::on_device(B, sizeof(T) * (tb == CUBLAS_OP_N ? span(k, n, ldb) : span(n, k, ldb)), dev);
  if (!a_ok || !b_ok || !ltl_emu::on_device(C, sizeof(T) * span(m, n, ldc), dev) || h->device != current_device) {
    std::fprintf(stderr, "[cuda emulation] cublas gemm: an operand is not device memory of the handle's device\n");
    return CUBLAS_STATUS_EXECUTION_FAILED;
  }
  const auto a = [&](int i, int l) {
    return ta == CUBLAS_OP_N ? A[i + std::size_t(l) * lda] : A[l + std::size_t(i) * lda];
  };
  const auto b = [&](int l, int j) {
    return tb == CUBLAS_OP_N ? B[l + std::size_t(j) * ldb] : B[j + std::size_t(l) * ldb];
  };
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) {
      T acc = 0;
      for (int l = 0; l < k; ++l) acc += a(i, l) * b(l, j);
      T& c = C[i + std::size_t(j) * ldc];
      c = *beta == T(0) ? *alpha * acc : *alpha * acc + *beta * c;
    }
  return CUBLAS_STATUS_SUCCESS;
}
}  // namespace

extern "C" {
cublasStatus_t cublasCreate(cublasHandle_t* h) {
  if (!h) return CUBLAS_STATUS_INVALID_VALUE;
  *h = new cublasContext{current_device};
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t h) {
  delete h;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  h->stream = s;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  h->math = m;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasGetMathMode(cublasHandle_t h, cublasMath_t* m) {
  if (!h || !m) return CUBLAS_STATUS_INVALID_VALUE;
  *m = h->math;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasGetProperty(libraryPropertyType type, int* value) {
  switch (type) {
    case MAJOR_VERSION:
      *value = CUBLAS_VER_MAJOR;
      break;
    case MINOR_VERSION:
      *value = CUBLAS_VER_MINOR;
      break;
    case PATCH_LEVEL:
      *value = CUBLAS_VER_PATCH;
      break;
    default:
      return CUBLAS_STATUS_INVALID_VALUE;
  }
  return CUBLAS_STATUS_SUCCESS;
}
const char* cublasGetStatusName(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS:
      return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "CUBLAS_STATUS_EXECUTION_FAILED";
    default:
      return "CUBLAS_STATUS_UNKNOWN";
  }
}
const char* cublasGetStatusString(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS:
      return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "the library was not initialized";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "the GPU program failed to execute";
    default:
      return "unknown error";
  }
}
cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const float* alpha, const float* A, int lda, const float* B, int ldb, const float* beta,
                           float* C, int ldc) {
  return gemm(h, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
cublasStatus_t cublasDgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const double* alpha, const double* A, int lda, const double* B, int ldb, const double* beta,
                           double* C, int ldc) {
  return gemm(h, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
}  // extern "C"

// ---- cuDNN ----------------------------------------------------------------------------------
namespace {

cudnnStatus_t cudnn_fail(cudnnStatus_t st, const std::string& why) {
  ltl_emu::cudnn_last = why;
  return st;
}

std::size_t elem_size(cudnnDataType_t t) { return t == CUDNN_DATA_DOUBLE ? 8 : 4; }

/// The emulated heuristics' candidates of one pass: (algorithm, determinism, math, workspace
/// bytes) in rank order, shaped like a real GPU's answer for float data: first a tensor-core
/// candidate (usable only with TF32 allowed), then, for the filter pass, a non-deterministic
/// one, then deterministic FMA candidates, one of which needs a workspace.
struct emu_candidate {
  int algo;
  cudnnDeterminism_t det;
  cudnnMathType_t math;
  std::size_t workspace;
};
std::vector<emu_candidate> candidates(int pass, cudnnDataType_t dtype) {
  std::vector<emu_candidate> c;
  if (dtype == CUDNN_DATA_FLOAT) c.push_back({1, CUDNN_DETERMINISTIC, CUDNN_TENSOR_OP_MATH, 0});
  if (pass == 2) c.push_back({0, CUDNN_NON_DETERMINISTIC, CUDNN_FMA_MATH, 0});
  c.push_back({pass == 0 ? 2 : 1, CUDNN_DETERMINISTIC, CUDNN_FMA_MATH, 4096});
  c.push_back({pass == 0 ? 0 : 3, CUDNN_DETERMINISTIC, CUDNN_FMA_MATH, 0});
  return c;
}

cudnnStatus_t check_geometry(const cudnnTensorStruct* x, const cudnnFilterStruct* w, const cudnnConvolutionStruct* cv,
                             const cudnnTensorStruct* y) {
  if (!x || !w || !cv || !y || !x->set || !w->set || !cv->set || !y->set)
    return cudnn_fail(CUDNN_STATUS_BAD_PARAM, "a descriptor is null or was never set");
  if (x->dtype != w->dtype || x->dtype != y->dtype || cv->compute != x->dtype)
    return cudnn_fail(CUDNN_STATUS_BAD_PARAM, "the descriptors' data types differ");
  if (cv->mode != CUDNN_CROSS_CORRELATION)
    return cudnn_fail(CUDNN_STATUS_BAD_PARAM, "only cross-correlation is emulated (the library asks for nothing else)");
  if (x->c != w->c * cv->groups || w->k % cv->groups != 0)
    return cudnn_fail(CUDNN_STATUS_BAD_PARAM, "channels do not match the filter and the group count");
  const int oh = (x->h + 2 * cv->pad_h - cv->dil_h * (w->r - 1) - 1) / cv->stride_h + 1;
  const int ow = (x->w + 2 * cv->pad_w - cv->dil_w * (w->s - 1) - 1) / cv->stride_w + 1;
  if (y->n != x->n || y->c != w->k || y->h != oh || y->w != ow)
    return cudnn_fail(CUDNN_STATUS_BAD_PARAM, "the output descriptor is not the convolution's output");
  return CUDNN_STATUS_SUCCESS;
}

/// The heuristics' answer for a pass of the described convolution (after checking it).
template <class P>
cudnnStatus_t perf(int pass, const cudnnTensorStruct* x, const cudnnFilterStruct* w, const cudnnConvolutionStruct* cv,
                   const cudnnTensorStruct* y, int requested, int* returned, P* out) {
  if (const cudnnStatus_t st = check_geometry(x, w, cv, y); st != CUDNN_STATUS_SUCCESS) return st;
  const auto c = candidates(pass, x->dtype);
  int n = 0;
  for (const auto& e : c) {
    if (n >= requested) break;
    P p{};
    p.algo = static_cast<decltype(p.algo)>(e.algo);
    p.status = CUDNN_STATUS_SUCCESS;
    p.time = static_cast<float>(n + 1);
    p.memory = e.workspace;
    p.determinism = e.det;
    p.mathType = e.math;
    out[n++] = p;
  }
  *returned = n;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t workspace_of(int pass, const cudnnTensorStruct* x, const cudnnConvolutionStruct* cv, int algo,
                           std::size_t* bytes) {
  for (const auto& e : candidates(pass, x->dtype))
    if (e.algo == algo && (e.math == cv->math || (e.math == CUDNN_FMA_MATH && cv->math == CUDNN_DEFAULT_MATH) ||
                           (e.math == CUDNN_FMA_MATH && cv->math == CUDNN_TENSOR_OP_MATH))) {
      *bytes = e.workspace;
      return CUDNN_STATUS_SUCCESS;
    }
  return cudnn_fail(CUDNN_STATUS_NOT_SUPPORTED, "the algorithm does not run with this math type");
}

/// cudnnGetConvolution*WorkspaceSize: the geometry checked, then workspace_of.
cudnnStatus_t sized(int pass, const cudnnTensorStruct* x, const cudnnFilterStruct* w, const cudnnConvolutionStruct* cv,
                    const cudnnTensorStruct* y, int algo, std::size_t* bytes) {
  if (const cudnnStatus_t st = check_geometry(x, w, cv, y); st != CUDNN_STATUS_SUCCESS) return st;
  return workspace_of(pass, x, cv, algo, bytes);
}

/// The three passes of one convolution, by loops over the output (forward), the input (data)
/// and the filter (weights); `pass` 0, 1, 2. Checks the operands' device memory and workspace.
template <class T>
cudnnStatus_t conv(int pass, cudnnHandle_t h, const void* alpha_p, const void* beta_p, const cudnnTensorStruct* xd,
                   const void* xv, const cudnnFilterStruct* wd, const void* wv, const cudnnConvolutionStruct* cv,
                   const cudnnTensorStruct* yd, const void* yv, int algo, void* ws, std::size_t ws_bytes) {
  if (const cudnnStatus_t st = check_geometry(xd, wd, cv, yd); st != CUDNN_STATUS_SUCCESS) return st;
  std::size_t need = 0;
  if (const cudnnStatus_t st = workspace_of(pass, xd, cv, algo, &need); st != CUDNN_STATUS_SUCCESS) return st;
  const int dev = ltl_emu::stream_device(h->stream);
  if (need > ws_bytes || (need > 0 && !ltl_emu::on_device(ws, need, dev)))
    return cudnn_fail(CUDNN_STATUS_BAD_PARAM, "the workspace is smaller than the algorithm needs");
  const std::size_t nx = std::size_t(xd->n) * xd->c * xd->h * xd->w, ny = std::size_t(yd->n) * yd->c * yd->h * yd->w;
  const std::size_t nw = std::size_t(wd->k) * wd->c * wd->r * wd->s;
  if (h->device != current_device || !ltl_emu::on_device(xv, nx * sizeof(T), dev) ||
      !ltl_emu::on_device(wv, nw * sizeof(T), dev) || !ltl_emu::on_device(yv, ny * sizeof(T), dev))
    return cudnn_fail(CUDNN_STATUS_EXECUTION_FAILED, "an operand is not device memory of the handle's device");
  const T alpha = *static_cast<const T*>(alpha_p), beta = *static_cast<const T*>(beta_p);
  const T* x = static_cast<const T*>(xv);
  const T* w = static_cast<const T*>(wv);
  const T* y = static_cast<const T*>(yv);
  T* out = const_cast<T*>(pass == 0 ? y : pass == 1 ? x : w);
  // Per image and group, the input patches as a matrix col [Cg·R·S, OH·OW] (im2col, cuDNN's
  // cross-correlation with padding, stride and dilation), then one product per pass:
  //   forward  y_g = W_g · col,  data  col = W_gᵀ · dy_g (scattered back),  filter  dW_g += dy_g · colᵀ.
  using mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using cmap = Eigen::Map<const mat>;
  const int G = cv->groups, kg = wd->k / G, cg = wd->c, R = wd->r, S = wd->s;
  const Eigen::Index patch = Eigen::Index(cg) * R * S, pixels = Eigen::Index(yd->h) * yd->w;
  const std::size_t x_img = std::size_t(xd->c) * xd->h * xd->w, y_img = std::size_t(yd->c) * pixels;
  std::vector<T> acc(pass == 0 ? ny : pass == 1 ? nx : nw, T(0));
  mat col(patch, pixels);
  // Visits (patch row, output pixel, input offset within the group's planes) of the valid taps.
  const auto taps = [&](auto&& f) {
    for (int c = 0; c < cg; ++c)
      for (int r = 0; r < R; ++r)
        for (int s = 0; s < S; ++s) {
          const Eigen::Index row = (Eigen::Index(c) * R + r) * S + s;
          for (int oh = 0; oh < yd->h; ++oh) {
            const int ih = oh * cv->stride_h - cv->pad_h + r * cv->dil_h;
            for (int ow = 0; ow < yd->w; ++ow) {
              const int iw = ow * cv->stride_w - cv->pad_w + s * cv->dil_w;
              const bool inside = ih >= 0 && ih < xd->h && iw >= 0 && iw < xd->w;
              f(row, Eigen::Index(oh) * yd->w + ow, inside, (std::size_t(c) * xd->h + ih) * xd->w + iw);
            }
          }
        }
  };
  for (int n = 0; n < xd->n; ++n)
    for (int g = 0; g < G; ++g) {
      const std::size_t x_off = n * x_img + std::size_t(g) * cg * xd->h * xd->w;
      const std::size_t y_off = n * y_img + std::size_t(g) * kg * pixels;
      const cmap wg(w + std::size_t(g) * kg * patch, kg, patch);
      if (pass != 1)
        taps([&](Eigen::Index row, Eigen::Index px, bool inside, std::size_t xi) {
          col(row, px) = inside ? x[x_off + xi] : T(0);
        });
      if (pass == 0) {
        Eigen::Map<mat>(acc.data() + y_off, kg, pixels).noalias() = wg * col;
      } else if (pass == 1) {
        col.noalias() = wg.transpose() * cmap(y + y_off, kg, pixels);
        taps([&](Eigen::Index row, Eigen::Index px, bool inside, std::size_t xi) {
          if (inside) acc[x_off + xi] += col(row, px);
        });
      } else {
        Eigen::Map<mat>(acc.data() + std::size_t(g) * kg * patch, kg, patch).noalias() +=
            cmap(y + y_off, kg, pixels) * col.transpose();
      }
    }
  for (std::size_t i = 0; i < acc.size(); ++i) out[i] = beta == T(0) ? alpha * acc[i] : alpha * acc[i] + beta * out[i];
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t run_conv(int pass, cudnnHandle_t h, const void* alpha, const void* beta, const cudnnTensorStruct* xd,
                       const void* x, const cudnnFilterStruct* wd, const void* w, const cudnnConvolutionStruct* cv,
                       const cudnnTensorStruct* yd, const void* y, int algo, void* ws, std::size_t ws_bytes) {
  if (!h) return cudnn_fail(CUDNN_STATUS_BAD_PARAM, "null handle");
  if (!xd) return cudnn_fail(CUDNN_STATUS_BAD_PARAM, "null descriptor");
  return xd->dtype == CUDNN_DATA_DOUBLE
             ? conv<double>(pass, h, alpha, beta, xd, x, wd, w, cv, yd, y, algo, ws, ws_bytes)
             : conv<float>(pass, h, alpha, beta, xd, x, wd, w, cv, yd, y, algo, ws, ws_bytes);
}

template <class D>
cudnnStatus_t make_descriptor(D** d) {
  if (!d) return cudnn_fail(CUDNN_STATUS_BAD_PARAM, "null descriptor pointer");
  *d = new D();
  return CUDNN_STATUS_SUCCESS;
}
template <class D>
cudnnStatus_t drop_descriptor(D* d) {
  delete d;
  return CUDNN_STATUS_SUCCESS;
}
/// A 4-d NCHW tensor or filter descriptor's fields (the four sizes positive).
template <class D>
cudnnStatus_t set_4d(D* d, cudnnTensorFormat_t format, cudnnDataType_t t, int a, int b, int c, int e,
                     const char* what) {
  if (!d || format != CUDNN_TENSOR_NCHW || a <= 0 || b <= 0 || c <= 0 || e <= 0)
    return cudnn_fail(CUDNN_STATUS_BAD_PARAM, std::string(what) + ": a dimension is not positive, or not NCHW");
  *d = {true, t, a, b, c, e};
  return CUDNN_STATUS_SUCCESS;
}

}  // namespace

extern "C" {
size_t cudnnGetVersion() { return CUDNN_VERSION; }
size_t cudnnGetCudartVersion() { return CUDART_VERSION; }
const char* cudnnGetErrorString(cudnnStatus_t st) {
  switch (st) {
    case CUDNN_STATUS_SUCCESS:
      return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_BAD_PARAM:
      return "CUDNN_STATUS_BAD_PARAM";
    case CUDNN_STATUS_NOT_SUPPORTED:
      return "CUDNN_STATUS_NOT_SUPPORTED";
    case CUDNN_STATUS_EXECUTION_FAILED:
      return "CUDNN_STATUS_EXECUTION_FAILED";
    default:
      return "CUDNN_STATUS_UNKNOWN";
  }
}
void cudnnGetLastErrorString(char* message, size_t max_size) {
  if (!message || max_size == 0) return;
  std::snprintf(message, max_size, "%s", ltl_emu::cudnn_last.c_str());
  ltl_emu::cudnn_last.clear();
}
cudnnStatus_t cudnnCreate(cudnnHandle_t* h) {
  if (!h) return cudnn_fail(CUDNN_STATUS_BAD_PARAM, "null handle pointer");
  *h = new cudnnContext{current_device};
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroy(cudnnHandle_t h) {
  delete h;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetStream(cudnnHandle_t h, cudaStream_t s) {
  if (!h) return cudnn_fail(CUDNN_STATUS_BAD_PARAM, "null handle");
  h->stream = s;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t* d) { return make_descriptor(d); }
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t d) { return drop_descriptor(d); }
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t format, cudnnDataType_t t,
                                         int n, int c, int h, int w) {
  return set_4d(d, format, t, n, c, h, w, "tensor descriptor");
}
cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t* d) { return make_descriptor(d); }
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t d) { return drop_descriptor(d); }
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t t, cudnnTensorFormat_t format,
                                         int k, int c, int h, int w) {
  return set_4d(d, format, t, k, c, h, w, "filter descriptor");
}
cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t* d) { return make_descriptor(d); }
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t d) { return drop_descriptor(d); }
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int pad_h, int pad_w, int u, int v,
                                              int dil_h, int dil_w, cudnnConvolutionMode_t mode,
                                              cudnnDataType_t compute) {
  if (!d || pad_h < 0 || pad_w < 0 || u <= 0 || v <= 0 || dil_h <= 0 || dil_w <= 0)
    return cudnn_fail(CUDNN_STATUS_BAD_PARAM, "convolution descriptor: negative padding or non-positive stride");
  d->set = true;
  d->pad_h = pad_h, d->pad_w = pad_w, d->stride_h = u, d->stride_w = v, d->dil_h = dil_h, d->dil_w = dil_w;
  d->mode = mode;
  d->compute = compute;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionGroupCount(cudnnConvolutionDescriptor_t d, int groups) {
  if (!d || groups <= 0) return cudnn_fail(CUDNN_STATUS_BAD_PARAM, "group count not positive");
  d->groups = groups;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t m) {
  if (!d) return cudnn_fail(CUDNN_STATUS_BAD_PARAM, "null descriptor");
  d->math = m;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolution2dForwardOutputDim(const cudnnConvolutionDescriptor_t cv,
                                                    const cudnnTensorDescriptor_t x, const cudnnFilterDescriptor_t w,
                                                    int* n, int* c, int* h, int* wo) {
  if (!cv || !x || !w || !cv->set || !x->set || !w->set) return cudnn_fail(CUDNN_STATUS_BAD_PARAM, "unset descriptor");
  if (x->c != w->c * cv->groups) return cudnn_fail(CUDNN_STATUS_BAD_PARAM, "channels do not match the filter");
  *n = x->n;
  *c = w->k;
  *h = (x->h + 2 * cv->pad_h - cv->dil_h * (w->r - 1) - 1) / cv->stride_h + 1;
  *wo = (x->w + 2 * cv->pad_w - cv->dil_w * (w->s - 1) - 1) / cv->stride_w + 1;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionForwardAlgorithmMaxCount(cudnnHandle_t, int* count) {
  *count = 4;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithmMaxCount(cudnnHandle_t, int* count) {
  *count = 4;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(cudnnHandle_t, int* count) {
  *count = 4;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t, const cudnnTensorDescriptor_t x,
                                                     const cudnnFilterDescriptor_t w,
                                                     const cudnnConvolutionDescriptor_t cv,
                                                     const cudnnTensorDescriptor_t y, const int requested,
                                                     int* returned, cudnnConvolutionFwdAlgoPerf_t* out) {
  return perf(0, x, w, cv, y, requested, returned, out);
}
cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t, const cudnnFilterDescriptor_t w,
                                                          const cudnnTensorDescriptor_t dy,
                                                          const cudnnConvolutionDescriptor_t cv,
                                                          const cudnnTensorDescriptor_t dx, const int requested,
                                                          int* returned, cudnnConvolutionBwdDataAlgoPerf_t* out) {
  return perf(1, dx, w, cv, dy, requested, returned, out);
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnnHandle_t, const cudnnTensorDescriptor_t x,
                                                            const cudnnTensorDescriptor_t dy,
                                                            const cudnnConvolutionDescriptor_t cv,
                                                            const cudnnFilterDescriptor_t dw, const int requested,
                                                            int* returned, cudnnConvolutionBwdFilterAlgoPerf_t* out) {
  return perf(2, x, dw, cv, dy, requested, returned, out);
}
cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t, const cudnnTensorDescriptor_t x,
                                                      const cudnnFilterDescriptor_t w,
                                                      const cudnnConvolutionDescriptor_t cv,
                                                      const cudnnTensorDescriptor_t y, cudnnConvolutionFwdAlgo_t algo,
                                                      size_t* bytes) {
  return sized(0, x, w, cv, y, static_cast<int>(algo), bytes);
}
cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t, const cudnnFilterDescriptor_t w,
                                                           const cudnnTensorDescriptor_t dy,
                                                           const cudnnConvolutionDescriptor_t cv,
                                                           const cudnnTensorDescriptor_t dx,
                                                           cudnnConvolutionBwdDataAlgo_t algo, size_t* bytes) {
  return sized(1, dx, w, cv, dy, static_cast<int>(algo), bytes);
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnnHandle_t, const cudnnTensorDescriptor_t x,
                                                             const cudnnTensorDescriptor_t dy,
                                                             const cudnnConvolutionDescriptor_t cv,
                                                             const cudnnFilterDescriptor_t dw,
                                                             cudnnConvolutionBwdFilterAlgo_t algo, size_t* bytes) {
  return sized(2, x, dw, cv, dy, static_cast<int>(algo), bytes);
}
cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t h, const void* alpha, const cudnnTensorDescriptor_t xd,
                                      const void* x, const cudnnFilterDescriptor_t wd, const void* w,
                                      const cudnnConvolutionDescriptor_t cv, cudnnConvolutionFwdAlgo_t algo, void* ws,
                                      size_t ws_bytes, const void* beta, const cudnnTensorDescriptor_t yd, void* y) {
  return run_conv(0, h, alpha, beta, xd, x, wd, w, cv, yd, y, static_cast<int>(algo), ws, ws_bytes);
}
cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t h, const void* alpha, const cudnnFilterDescriptor_t wd,
                                           const void* w, const cudnnTensorDescriptor_t dyd, const void* dy,
                                           const cudnnConvolutionDescriptor_t cv, cudnnConvolutionBwdDataAlgo_t algo,
                                           void* ws, size_t ws_bytes, const void* beta,
                                           const cudnnTensorDescriptor_t dxd, void* dx) {
  return run_conv(1, h, alpha, beta, dxd, dx, wd, w, cv, dyd, dy, static_cast<int>(algo), ws, ws_bytes);
}
cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t h, const void* alpha, const cudnnTensorDescriptor_t xd,
                                             const void* x, const cudnnTensorDescriptor_t dyd, const void* dy,
                                             const cudnnConvolutionDescriptor_t cv,
                                             cudnnConvolutionBwdFilterAlgo_t algo, void* ws, size_t ws_bytes,
                                             const void* beta, const cudnnFilterDescriptor_t dwd, void* dw) {
  return run_conv(2, h, alpha, beta, xd, x, dwd, dw, cv, dyd, dy, static_cast<int>(algo), ws, ws_bytes);
}
}  // extern "C"
