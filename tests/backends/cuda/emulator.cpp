// The emulated CUDA device itself (support/cuda_emu, test_cuda_emu only): barriers, shared
// memory and thread coordinates behave as on a GPU, and the mistakes a GPU punishes — a
// divergent barrier, a host pointer handed to a kernel, a bad launch configuration, a launch
// on another device's stream, a copy of the wrong kind, a missing barrier — fail here too, so
// that the [cuda] cases that pass on it mean something.

#include <catch2/catch.hpp>
#include <ltlearn/cuda.hpp>
#include <numeric>
#include <vector>

namespace {

using ltl::cuda::kernels::block_size;

// Thread t of each block writes t + 1, then (after the barrier) thread 0 sums the block's
// values in shared memory: the barrier must have waited for every thread.
template <bool Barrier>
__global__ void block_total(int* out) {
  __shared__ int v[block_size];
  const int t = static_cast<int>(threadIdx.x);
  v[t] = t + 1 + static_cast<int>(blockIdx.x) * 1000;
  if constexpr (Barrier) __syncthreads();
  if (t == 0) {
    int s = 0;
    for (int i = 0; i < static_cast<int>(blockDim.x); ++i) s += v[i];
    out[blockIdx.x] = s;
  }
}

// The library's block reduction: every thread gets the block's total.
__global__ void tree_total(const double* x, double* out) {
  __shared__ double scratch[block_size];
  const double total = ltl::cuda::kernels::block_sum(x[blockIdx.x * blockDim.x + threadIdx.x], scratch);
  out[blockIdx.x * blockDim.x + threadIdx.x] = total;
}

// Threads below `stop` exit before the barrier that the others reach.
__global__ void divergent(int* out, int stop) {
  if (static_cast<int>(threadIdx.x) < stop) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

__global__ void write_one(int* out) { out[threadIdx.x] = 1; }

template <class T>
T* device_alloc(std::size_t n) {
  void* p = nullptr;
  REQUIRE(cudaMalloc(&p, n * sizeof(T)) == cudaSuccess);
  return static_cast<T*>(p);
}

template <class T>
std::vector<T> read_back(const T* p, std::size_t n) {
  std::vector<T> h(n);
  REQUIRE(cudaMemcpyAsync(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost, nullptr) == cudaSuccess);
  return h;
}

struct order_guard {
  explicit order_guard(bool reverse) { ltl_emu::reverse_thread_order(reverse); }
  ~order_guard() { ltl_emu::reverse_thread_order(false); }
  order_guard(const order_guard&) = delete;
  order_guard& operator=(const order_guard&) = delete;
};

}  // namespace

TEST_CASE("emulated device: __syncthreads waits for the whole block, in either thread order", "[cuda-emu]") {
  const bool reverse = GENERATE(false, true);
  const order_guard order(reverse);
  int* out = device_alloc<int>(3);
  ltl_emu::launch([](auto&&... a) { block_total<true>(a...); }, 3, block_size).named("block_total")(out);
  REQUIRE(cudaGetLastError() == cudaSuccess);
  const auto got = read_back(out, 3);
  for (int b = 0; b < 3; ++b) CHECK(got[static_cast<std::size_t>(b)] == block_size * (block_size + 1) / 2 + 256000 * b);
  REQUIRE(cudaFree(out) == cudaSuccess);
}

TEST_CASE("emulated device: a missing barrier shows in one of the two thread orders", "[cuda-emu]") {
  // Without the barrier, thread 0 sums before the others wrote (in increasing order) or after
  // (in decreasing order): the two orders disagree, which is how ctest's second run of every
  // case finds a missing __syncthreads.
  std::vector<int> results;
  for (const bool reverse : {false, true}) {
    const order_guard order(reverse);
    int* out = device_alloc<int>(1);
    ltl_emu::launch([](auto&&... a) { block_total<false>(a...); }, 1, block_size).named("block_total")(out);
    REQUIRE(cudaGetLastError() == cudaSuccess);
    results.push_back(read_back(out, 1)[0]);
    REQUIRE(cudaFree(out) == cudaSuccess);
  }
  REQUIRE(results[0] != results[1]);
  REQUIRE(results[1] == block_size * (block_size + 1) / 2);
}

TEST_CASE("emulated device: the library's block_sum gives every thread the block's total", "[cuda-emu]") {
  const bool reverse = GENERATE(false, true);
  const order_guard order(reverse);
  const std::size_t n = 2 * block_size;
  std::vector<double> x(n);
  std::iota(x.begin(), x.end(), 1.0);
  double* dx = device_alloc<double>(n);
  double* dy = device_alloc<double>(n);
  REQUIRE(cudaMemcpyAsync(dx, x.data(), n * sizeof(double), cudaMemcpyHostToDevice, nullptr) == cudaSuccess);
  ltl_emu::launch([](auto&&... a) { tree_total(a...); }, 2, block_size)
      .named("tree_total")(static_cast<const double*>(dx), dy);
  REQUIRE(cudaGetLastError() == cudaSuccess);
  const auto y = read_back(dy, n);
  const double b0 = block_size * (block_size + 1) / 2.0, b1 = b0 + block_size * double(block_size);
  for (std::size_t i = 0; i < n; ++i) REQUIRE(y[i] == (i < block_size ? b0 : b1));
  REQUIRE(cudaFree(dx) == cudaSuccess);
  REQUIRE(cudaFree(dy) == cudaSuccess);
}

TEST_CASE("emulated device: the mistakes a GPU punishes are launch errors", "[cuda-emu]") {
  int* out = device_alloc<int>(block_size);
  SECTION("a barrier some threads never reach") {
    ltl_emu::launch([](auto&&... a) { divergent(a...); }, 1, 64).named("divergent")(out, 10);
    REQUIRE(cudaGetLastError() == cudaErrorLaunchFailure);
    // The library's launch check turns it into a cuda_error naming the kernel.
    ltl_emu::launch([](auto&&... a) { divergent(a...); }, 1, 64).named("divergent")(out, 10);
    REQUIRE_THROWS_WITH(ltl::cuda::detail::check_launch("divergent"),
                        Catch::Contains("divergent") && Catch::Contains("launch failure"));
    // All threads leaving before the barrier, or none, is fine.
    ltl_emu::launch([](auto&&... a) { divergent(a...); }, 1, 64).named("divergent")(out, 0);
    ltl_emu::launch([](auto&&... a) { divergent(a...); }, 1, 64).named("divergent")(out, 64);
    REQUIRE(cudaGetLastError() == cudaSuccess);
  }
  SECTION("host memory handed to a kernel") {
    std::vector<int> host(block_size);
    ltl_emu::launch([](auto&&... a) { write_one(a...); }, 1, 32).named("write_one")(host.data());
    REQUIRE(cudaGetLastError() == cudaErrorIllegalAddress);
    REQUIRE(host[0] == 0);
  }
  SECTION("a bad launch configuration") {
    ltl_emu::launch([](auto&&... a) { write_one(a...); }, 1, 2048).named("write_one")(out);
    REQUIRE(cudaGetLastError() == cudaErrorInvalidConfiguration);
    ltl_emu::launch([](auto&&... a) { write_one(a...); }, 0, 32).named("write_one")(out);
    REQUIRE(cudaGetLastError() == cudaErrorInvalidConfiguration);
  }
  SECTION("a launch on another device's stream, and that device's memory") {
    REQUIRE(cudaSetDevice(1) == cudaSuccess);
    cudaStream_t s1 = nullptr;
    REQUIRE(cudaStreamCreate(&s1) == cudaSuccess);
    REQUIRE(cudaSetDevice(0) == cudaSuccess);
    ltl_emu::launch([](auto&&... a) { write_one(a...); }, 1, 32, 0, s1).named("write_one")(out);
    REQUIRE(cudaGetLastError() == cudaErrorInvalidResourceHandle);
    std::vector<int> h(4);
    REQUIRE(cudaMemcpyAsync(h.data(), out, 16, cudaMemcpyDeviceToHost, s1) == cudaErrorInvalidValue);
    REQUIRE(cudaGetLastError() == cudaErrorInvalidValue);
    REQUIRE(cudaStreamDestroy(s1) == cudaSuccess);
  }
  SECTION("copies of the wrong kind or beyond the allocation") {
    std::vector<int> h(2 * block_size);
    REQUIRE(cudaMemcpyAsync(h.data(), out, 16, cudaMemcpyHostToDevice, nullptr) == cudaErrorInvalidValue);
    REQUIRE(cudaMemcpyAsync(h.data(), out, h.size() * sizeof(int), cudaMemcpyDeviceToHost, nullptr) ==
            cudaErrorInvalidValue);
    REQUIRE(cudaMemsetAsync(h.data(), 0, 16, nullptr) == cudaErrorInvalidValue);
    (void)cudaGetLastError();
  }
  SECTION("allocations beyond the device's memory") {
    std::size_t free_bytes = 0, total = 0;
    REQUIRE(cudaMemGetInfo(&free_bytes, &total) == cudaSuccess);
    void* p = nullptr;
    REQUIRE(cudaMalloc(&p, total + 1) == cudaErrorMemoryAllocation);
    REQUIRE(cudaGetLastError() == cudaErrorMemoryAllocation);
    const std::size_t before = ltl_emu::device_bytes_in_use(0);
    REQUIRE(cudaMalloc(&p, 1000) == cudaSuccess);
    REQUIRE(ltl_emu::device_bytes_in_use(0) == before + 1000);
    REQUIRE(cudaFree(p) == cudaSuccess);
    REQUIRE(ltl_emu::device_bytes_in_use(0) == before);
  }
  REQUIRE(cudaFree(out) == cudaSuccess);
}

TEST_CASE("emulated device: the backend's ops launch kernels on it", "[cuda-emu]") {
  const std::size_t before = ltl_emu::launches();
  const auto x = ltl::tensor<float, ltl::cuda::device>::ones({3, 5});
  const auto y = ltl::cuda::affine(x, 2.0f, 1.0f);
  REQUIRE(y.to_vector() == std::vector<float>(15, 3.0f));
  REQUIRE(ltl_emu::launches() > before);
}
