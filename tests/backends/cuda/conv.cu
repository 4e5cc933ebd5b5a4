// Tests of the CUDA core: the caching allocator's logic (on a fake memory source), the library
// version rule, the cuDNN convolution plan decisions ([cuda-host], no GPU needed), and cuDNN
// convolution against the CPU backend, out of memory and bad operands ([cuda], skipped with
// the reason printed when no GPU is usable).
//
// Tolerances of the [cuda] comparisons (cuDNN, FMA math, vs the CPU's im2col + GEMM): every
// element within tol·max(1, max |reference|) with tol = 1e-4 for float (the two sides sum the
// same products in different orders; sums of up to a few hundred products of U(−1, 1) values)
// and 1e-12 for double. Each GPU op is run twice and must give the same bits.
#include <ltlearn/cuda.hpp>
#include <ltlearn/backends/cpu/kernel_set.hpp>

#include "support/cuda_skip.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

using ltl::index_t;
using ltl::shape;
namespace cuda = ltl::cuda;
using gpu = ltl::cuda::device;
using Catch::Matchers::Contains;

namespace {

// ---- a fake memory source: capacity per device, streams and events under the test's control ----
struct fake_source {
  struct event {
    int id;
    int device;
    cuda::stream_id stream;
  };
  std::map<int, std::size_t> capacity;  // per device; absent: unlimited
  std::map<int, std::size_t> used;
  std::uintptr_t next = 0x10000;
  int tries = 0, frees = 0, syncs = 0, next_event = 0;
  std::set<int> done_events, destroyed_events;
  std::vector<event> recorded;
  bool fail_hard = false;  // next try_allocate throws a non-OOM cuda_error

  const char* name() const { return "fake_malloc"; }
  void* try_allocate(int device, std::size_t bytes) {
    ++tries;
    if (fail_hard) throw ltl::cuda_error("fake_malloc: device lost");
    auto cap = capacity.find(device);
    if (cap != capacity.end() && used[device] + bytes > cap->second) return nullptr;
    used[device] += bytes;
    void* p = reinterpret_cast<void*>(next);
    next += std::max<std::size_t>(bytes, 256) + 256;
    return p;
  }
  void deallocate(int device, void*, std::size_t bytes) noexcept {
    ++frees;
    used[device] -= bytes;
  }
  event record(int device, cuda::stream_id s) {
    recorded.push_back({next_event, device, s});
    return {next_event++, device, s};
  }
  bool done(int, const event& e) { return done_events.count(e.id) > 0; }
  void destroy(int, const event& e) noexcept { destroyed_events.insert(e.id); }
  void synchronize(int) {
    ++syncs;
    for (const auto& e : recorded) done_events.insert(e.id);
  }
};
using fake_pool = cuda::block_pool<fake_source>;

const cuda::stream_id stream_a = nullptr;  // the compute stream
const cuda::stream_id stream_b = reinterpret_cast<cuda::stream_id>(std::uintptr_t{0xb0});

template <class E, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  FAIL("expected an error");
  return {};
}

template <class T>
ltl::tensor<T> random_tensor(const shape& s, std::uint64_t seed) {
  ltl::rng g(seed);
  ltl::tensor<T> t(s);
  for (index_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<T>(g.uniform(-1, 1));
  return t;
}

/// Every element of device tensor `got` within tol·max(1, max|want|) of host tensor `want`.
template <class T>
void require_near(const ltl::tensor<T, gpu>& got, const ltl::tensor<T>& want) {
  const double tol = std::is_same_v<T, float> ? 1e-4 : 1e-12;
  REQUIRE(got.sizes() == want.sizes());
  const auto g = got.to_vector(), w = want.to_vector();
  double scale = 1;
  for (T v : w) scale = std::max(scale, std::abs(static_cast<double>(v)));
  double worst = 0;
  std::size_t at = 0;
  for (std::size_t i = 0; i < g.size(); ++i) {
    const double d = std::abs(static_cast<double>(g[i]) - static_cast<double>(w[i]));
    if (d > worst) worst = d, at = i;
  }
  INFO("worst element " << at << ": |difference| " << worst << ", allowed " << tol * scale);
  REQUIRE(worst <= tol * scale);
}

/// The geometries the parity tests cover: 3×3, stride 2, 1×1 (also strided), grouped,
/// depthwise, dilated, asymmetric, 7×7 stem.
struct conv_case {
  const char* name;
  shape x, w;
  ltl::conv2d_options opt;
};
std::vector<conv_case> conv_cases() {
  return {
      {"3x3 stride 1 pad 1", {2, 3, 8, 8}, {4, 3, 3, 3}, {.padding = 1}},
      {"3x3 stride 2 pad 1", {2, 4, 9, 9}, {6, 4, 3, 3}, {.stride = 2, .padding = 1}},
      {"1x1", {3, 8, 5, 5}, {5, 8, 1, 1}, {}},
      {"1x1 stride 2", {2, 8, 6, 6}, {4, 8, 1, 1}, {.stride = 2}},
      {"grouped (4 groups)", {2, 8, 7, 7}, {8, 2, 3, 3}, {.padding = 1, .groups = 4}},
      {"depthwise", {2, 8, 6, 6}, {8, 1, 3, 3}, {.padding = 1, .groups = 8}},
      {"dilated", {1, 3, 10, 10}, {4, 3, 3, 3}, {.padding = 2, .dilation = 2}},
      {"asymmetric", {2, 3, 9, 7}, {4, 3, 3, 2}, {.stride = {2, 1}, .padding = {1, 0}, .dilation = {1, 2}}},
      {"7x7 stride 2 pad 3", {1, 3, 16, 16}, {8, 3, 7, 7}, {.stride = 2, .padding = 3}},
  };
}

}  // namespace

// ================================ [cuda-host]: no GPU needed ================================

TEST_CASE("block pool: reuse on the same device and stream only, with in-use/cached/peak bytes", "[cuda-host]") {
  fake_pool pool;
  void* a = pool.allocate(0, stream_a, 1000);  // bucket 1024
  REQUIRE(pool.stats(0).bytes_in_use == 1024);
  REQUIRE(pool.stats(0).peak_bytes_in_use == 1024);
  pool.release(a);
  REQUIRE(pool.stats(0).bytes_in_use == 0);
  REQUIRE(pool.stats(0).bytes_cached == 1024);
  // Same device, stream and bucket: the cached block.
  void* again = pool.allocate(0, stream_a, 900);
  REQUIRE(again == a);
  REQUIRE(pool.stats(0).cache_hits == 1);
  REQUIRE(pool.stats(0).bytes_cached == 0);
  // Another stream or another device never gets it.
  pool.release(again);
  void* on_b = pool.allocate(0, stream_b, 1000);
  void* on_dev1 = pool.allocate(1, stream_a, 1000);
  REQUIRE(on_b != a);
  REQUIRE(on_dev1 != a);
  REQUIRE(pool.stats(0).bytes_in_use == 1024);
  REQUIRE(pool.stats(0).bytes_cached == 1024);
  REQUIRE(pool.stats(1).bytes_in_use == 1024);
  REQUIRE(pool.stats().bytes_in_use == 2048);
  REQUIRE(pool.stats().peak_bytes_in_use == 2048);
  REQUIRE(pool.source().tries == 3);
  pool.release(on_b);
  pool.release(on_dev1);
  pool.reset_peak();
  REQUIRE(pool.stats().peak_bytes_in_use == 0);
  pool.empty_cache();
  REQUIRE(pool.stats().bytes_cached == 0);
  REQUIRE(pool.source().frees == 3);
  REQUIRE(pool.source().used[0] == 0);
  REQUIRE(pool.source().used[1] == 0);
}

TEST_CASE("block pool: a block used on a second stream waits for that stream's event", "[cuda-host]") {
  fake_pool pool;
  void* p = pool.allocate(0, stream_a, 4096);
  pool.record_stream(p, stream_b);
  pool.record_stream(p, stream_a);  // its own stream: nothing to wait for
  pool.release(p);
  REQUIRE(pool.pending_blocks() == 1);
  REQUIRE(pool.source().recorded.size() == 1);
  REQUIRE(pool.source().recorded[0].stream == stream_b);
  REQUIRE(pool.stats(0).bytes_cached == 4096);
  // The event has not completed: a new request of the same size gets a fresh block.
  void* q = pool.allocate(0, stream_a, 4096);
  REQUIRE(q != p);
  pool.release(q);
  // Once it has, the block is back on its owner's free list (and the event destroyed).
  pool.source().done_events.insert(0);
  void* r1 = pool.allocate(0, stream_a, 4096);
  void* r2 = pool.allocate(0, stream_a, 4096);
  REQUIRE(std::set<void*>{r1, r2} == std::set<void*>{p, q});
  REQUIRE(pool.pending_blocks() == 0);
  REQUIRE(pool.source().destroyed_events.count(0) == 1);
  REQUIRE_THROWS_AS(pool.record_stream(reinterpret_cast<void*>(std::uintptr_t{8}), stream_b), ltl::value_error);
  pool.release(r1);
  pool.release(r2);
}

TEST_CASE("block pool: out of memory frees the cache, retries once, then names the bytes", "[cuda-host]") {
  fake_pool pool;
  pool.source().capacity[0] = 4 << 20;  // 4 MiB
  void* cached = pool.allocate(0, stream_b, 1 << 20);
  pool.release(cached);  // 1 MiB cached on stream b
  void* held = pool.allocate(0, stream_a, 2 << 20);
  // 2 MiB more does not fit beside the cached MiB: the cache goes, the retry succeeds.
  const int tries_before = pool.source().tries;
  void* fits = pool.allocate(0, stream_a, 2 << 20);
  REQUIRE(fits != nullptr);
  REQUIRE(pool.source().tries == tries_before + 2);
  REQUIRE(pool.out_of_memory_retries() == 1);
  REQUIRE(pool.stats(0).bytes_cached == 0);
  REQUIRE(pool.stats(0).bytes_in_use == (4u << 20));
  // Nothing left: one retry, then out_of_memory_error with the numbers.
  const int tries_now = pool.source().tries;
  const std::string msg = error_of<cuda::out_of_memory_error>([&] { (void)pool.allocate(0, stream_a, 3000000); });
  REQUIRE(pool.source().tries == tries_now + 2);
  REQUIRE(pool.out_of_memory_retries() == 2);
  REQUIRE_THAT(msg, Contains("fake_malloc of 3145728 bytes on device 0"));
  REQUIRE_THAT(msg, Contains("requested 3000000 bytes"));
  REQUIRE_THAT(msg, Contains("in use 4194304 bytes"));
  REQUIRE_THAT(msg, Contains("cached 0 bytes"));
  REQUIRE_THAT(msg, Contains("peak 4194304 bytes"));
  // out_of_memory_error is a cuda_error, so `catch (const ltl::cuda_error&)` sees it.
  REQUIRE_THROWS_AS(pool.allocate(0, stream_a, 3000000), ltl::cuda_error);
  REQUIRE(pool.stats(0).bytes_in_use == (4u << 20));
  pool.release(held);
  pool.release(fits);
}

TEST_CASE("block pool: out of memory waits for pending blocks before freeing them", "[cuda-host]") {
  fake_pool pool;
  pool.source().capacity[0] = 1 << 20;
  void* p = pool.allocate(0, stream_a, 1 << 20);
  pool.record_stream(p, stream_b);
  pool.release(p);  // pending on stream b's event
  void* q = pool.allocate(0, stream_a, 512 << 10);  // needs the pending MiB freed
  REQUIRE(q != nullptr);
  REQUIRE(pool.source().syncs == 1);
  REQUIRE(pool.pending_blocks() == 0);
  REQUIRE(pool.source().frees == 1);
  pool.release(q);
}

TEST_CASE("block pool: a failing source leaves the counters as they were", "[cuda-host]") {
  fake_pool pool;
  pool.source().fail_hard = true;
  REQUIRE_THROWS_WITH(pool.allocate(0, stream_a, 64), Contains("device lost"));
  const auto st = pool.stats(0);
  REQUIRE(st.requests == 1);
  REQUIRE(st.bytes_in_use == 0);
  REQUIRE(st.peak_bytes_in_use == 0);
  REQUIRE(pool.out_of_memory_retries() == 0);
}

TEST_CASE("library version rule: same major required, older minor noted", "[cuda-host]") {
  using V = cuda::library_version;
  REQUIRE(cuda::decode_version_10000(91900) == V{9, 19, 0});
  REQUIRE(cuda::decode_version_10000(130103) == V{13, 1, 3});
  REQUIRE(cuda::decode_cuda_version(13000) == V{13, 0, 0});
  REQUIRE(cuda::decode_cuda_version(12080) == V{12, 8, 0});
  const auto same = cuda::check_library_version("cuDNN", {9, 19, 0}, {9, 19, 0});
  REQUIRE(same.ok);
  REQUIRE(same.message.empty());
  const auto newer = cuda::check_library_version("cuDNN", {9, 19, 0}, {9, 21, 1});
  REQUIRE(newer.ok);
  REQUIRE(newer.message.empty());
  const auto older = cuda::check_library_version("cuDNN", {9, 19, 0}, {9, 1, 0});
  REQUIRE(older.ok);
  REQUIRE_THAT(older.message, Contains("9.1.0") && Contains("older") && Contains("9.19.0"));
  const auto other_major = cuda::check_library_version("cuDNN", {9, 19, 0}, {8, 9, 7}, "install cuDNN 9");
  REQUIRE_FALSE(other_major.ok);
  REQUIRE_THAT(other_major.message, Contains("cuDNN found at run time is version 8.9.7") && Contains("9.19.0") &&
                                        Contains("major") && Contains("install cuDNN 9"));
  REQUIRE_FALSE(cuda::check_library_version("cuBLAS", {13, 1, 0}, {14, 0, 0}).ok);
  // This build: the compiled-in versions pass against themselves.
  REQUIRE(cuda::check_library_version("cuDNN", cuda::decode_version_10000(CUDNN_VERSION),
                                      {CUDNN_MAJOR, CUDNN_MINOR, CUDNN_PATCHLEVEL})
              .message.empty());
}

TEST_CASE("cuDNN descriptor arguments of a geometry", "[cuda-host]") {
  const auto g = ltl::make_conv2d_geometry(
      {2, 6, 9, 7}, {4, 3, 3, 2}, {.stride = {2, 1}, .padding = {1, 0}, .dilation = {1, 2}, .groups = 2});
  const cuda::conv_descriptor_args a = cuda::make_descriptor_args(g, "conv2d");
  // Ho = (9 + 2·1 − 1·(3 − 1) − 1) / 2 + 1 = 5, Wo = (7 + 0 − 2·(2 − 1) − 1) / 1 + 1 = 5.
  const cuda::conv_descriptor_args want{.n = 2, .c = 6, .h = 9, .w = 7, .k = 4, .c_per_group = 3, .r = 3, .s = 2,
                                        .pad_h = 1, .pad_w = 0, .stride_h = 2, .stride_w = 1, .dilation_h = 1,
                                        .dilation_w = 2, .groups = 2, .out_h = 5, .out_w = 5};
  REQUIRE(a == want);
  const auto huge = ltl::make_conv2d_geometry({70000, 64, 224, 224}, {64, 64, 3, 3}, {.padding = 1});
  const std::string msg = error_of<ltl::shape_error>([&] { (void)cuda::make_descriptor_args(huge, "conv2d"); });
  REQUIRE_THAT(msg, Contains("conv2d") && Contains("input elements") && Contains("32-bit"));
}

TEST_CASE("conv plan keys separate every setting that changes the plan", "[cuda-host]") {
  const auto g = ltl::make_conv2d_geometry({2, 4, 8, 8}, {4, 4, 3, 3}, {.padding = 1});
  const auto g2 = ltl::make_conv2d_geometry({2, 4, 8, 8}, {4, 4, 3, 3}, {.padding = 1, .dilation = {1, 2}});
  const cuda::settings def;
  REQUIRE_FALSE(def.allow_tf32);
  REQUIRE(def.deterministic);
  const auto k = cuda::make_plan_key(g, CUDNN_DATA_FLOAT, ltl::conv2d_pass::forward, def);
  REQUIRE(k == cuda::make_plan_key(g, CUDNN_DATA_FLOAT, ltl::conv2d_pass::forward, def));
  std::vector<cuda::conv_plan_key> others{
      cuda::make_plan_key(g2, CUDNN_DATA_FLOAT, ltl::conv2d_pass::forward, def),
      cuda::make_plan_key(g, CUDNN_DATA_DOUBLE, ltl::conv2d_pass::forward, def),
      cuda::make_plan_key(g, CUDNN_DATA_FLOAT, ltl::conv2d_pass::backward_input, def),
      cuda::make_plan_key(g, CUDNN_DATA_FLOAT, ltl::conv2d_pass::backward_weight, def),
      cuda::make_plan_key(g, CUDNN_DATA_FLOAT, ltl::conv2d_pass::forward, {.allow_tf32 = true}),
      cuda::make_plan_key(g, CUDNN_DATA_FLOAT, ltl::conv2d_pass::forward, {.deterministic = false}),
      cuda::make_plan_key(g, CUDNN_DATA_FLOAT, ltl::conv2d_pass::forward, {.max_workspace_bytes = 1 << 20}),
  };
  std::set<cuda::conv_plan_key> all(others.begin(), others.end());
  all.insert(k);
  REQUIRE(all.size() == others.size() + 1);
  // TF32 does not apply to double: the same plan either way.
  REQUIRE(cuda::make_plan_key(g, CUDNN_DATA_DOUBLE, ltl::conv2d_pass::forward, {.allow_tf32 = true}) ==
          cuda::make_plan_key(g, CUDNN_DATA_DOUBLE, ltl::conv2d_pass::forward, def));
  REQUIRE(cuda::conv_math_type(def, CUDNN_DATA_FLOAT) == CUDNN_FMA_MATH);
  REQUIRE(cuda::conv_math_type({.allow_tf32 = true}, CUDNN_DATA_FLOAT) == CUDNN_TENSOR_OP_MATH);
  REQUIRE(cuda::conv_math_type({.allow_tf32 = true}, CUDNN_DATA_DOUBLE) == CUDNN_FMA_MATH);
}

TEST_CASE("algorithm choice filters cuDNN's ranked candidates by the settings", "[cuda-host]") {
  using C = cuda::conv_candidate;
  const C fast_nondet{.algo = 4, .determinism = CUDNN_NON_DETERMINISTIC};
  const C unsupported{.algo = 6, .status = CUDNN_STATUS_NOT_SUPPORTED};
  const C big{.algo = 5, .memory = std::size_t{2} << 30};
  const C tf32{.algo = 1, .math = CUDNN_TENSOR_OP_MATH};
  const C converting{.algo = 2, .math = CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION};
  const C plain{.algo = 0, .memory = 1024};
  const std::vector<C> ranked{fast_nondet, unsupported, big, tf32, converting, plain};
  const cuda::settings def;
  // Defaults: deterministic, FMA, 1 GiB workspace → the last one.
  REQUIRE(cuda::choose_candidate(ranked, def, CUDNN_DATA_FLOAT)->algo == 0);
  // Non-determinism allowed: the first.
  REQUIRE(cuda::choose_candidate(ranked, {.deterministic = false}, CUDNN_DATA_FLOAT)->algo == 4);
  // A larger workspace limit admits the big one.
  REQUIRE(cuda::choose_candidate(ranked, {.max_workspace_bytes = std::size_t{4} << 30}, CUDNN_DATA_FLOAT)->algo == 5);
  // TF32 opted in: the tensor-core candidate; for double, tensor cores are FP64 and allowed anyway.
  REQUIRE(cuda::choose_candidate({tf32, plain}, {.allow_tf32 = true}, CUDNN_DATA_FLOAT)->algo == 1);
  REQUIRE(cuda::choose_candidate({tf32, plain}, def, CUDNN_DATA_DOUBLE)->algo == 1);
  REQUIRE(cuda::choose_candidate({converting, plain}, def, CUDNN_DATA_DOUBLE)->algo == 0);
  // Down-converting math (FP16/BF16 inside) is never chosen, not even with TF32 opted in.
  REQUIRE(cuda::choose_candidate({converting, plain}, {.allow_tf32 = true}, CUDNN_DATA_FLOAT)->algo == 0);
  REQUIRE(cuda::choose_candidate({converting, plain}, {.allow_tf32 = true}, CUDNN_DATA_DOUBLE)->algo == 0);
  // Nothing usable: no choice, and a message that says why for each candidate.
  const std::vector<C> none{fast_nondet, unsupported, tf32};
  REQUIRE_FALSE(cuda::choose_candidate(none, def, CUDNN_DATA_FLOAT).has_value());
  const auto g = ltl::make_conv2d_geometry({1, 2, 5, 5}, {3, 2, 3, 3}, {});
  const std::string msg = cuda::no_candidate_message("conv2d_backward_weight", g, none, def, CUDNN_DATA_FLOAT);
  REQUIRE_THAT(msg, Contains("conv2d_backward_weight") && Contains("input [1, 2, 5, 5]") &&
                        Contains("algorithm 4: not deterministic") && Contains("algorithm 6: not supported") &&
                        Contains("algorithm 1: tensor-core math (TF32) not allowed"));
  // Candidates the heuristics offered but the workspace query turned down say why too, rather
  // than "usable".
  const std::string msg2 = cuda::no_candidate_message("conv2d_forward", g, {plain, converting}, def, CUDNN_DATA_FLOAT,
                                                      {{0, "needs 2048 bytes of workspace, over the limit"}});
  REQUIRE_THAT(msg2, Contains("algorithm 0: needs 2048 bytes of workspace, over the limit") &&
                         Contains("algorithm 2: down-converting tensor-core math never allowed"));
  REQUIRE_THAT(cuda::no_candidate_message("conv2d_forward", g, {plain}, def, CUDNN_DATA_FLOAT),
               Contains("algorithm 0: usable"));
  // "Not supported" is a category of codes in cuDNN 9; other failures are errors.
  REQUIRE(cuda::cudnn_not_supported(CUDNN_STATUS_NOT_SUPPORTED));
  REQUIRE(cuda::cudnn_not_supported(CUDNN_STATUS_NOT_SUPPORTED_SHAPE));
  REQUIRE(cuda::cudnn_not_supported(CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH));
  REQUIRE_FALSE(cuda::cudnn_not_supported(CUDNN_STATUS_BAD_PARAM));
  REQUIRE_FALSE(cuda::cudnn_not_supported(CUDNN_STATUS_SUCCESS));
  REQUIRE_FALSE(cuda::cudnn_not_supported(CUDNN_STATUS_EXECUTION_FAILED));
  // The perf structs of the three passes map onto candidates field by field.
  cudnnConvolutionBwdFilterAlgoPerf_t perf{};
  perf.algo = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1;
  perf.status = CUDNN_STATUS_SUCCESS;
  perf.memory = 77;
  perf.determinism = CUDNN_NON_DETERMINISTIC;
  perf.mathType = CUDNN_FMA_MATH;
  const C c = cuda::to_candidate(perf);
  REQUIRE(c.algo == 1);
  REQUIRE(c.memory == 77);
  REQUIRE(c.determinism == CUDNN_NON_DETERMINISTIC);
}

TEST_CASE("cuDNN failures carry the call, the status and cuDNN's own message", "[cuda-host]") {
  cudnnTensorDescriptor_t d = nullptr;
  if (cudnnCreateTensorDescriptor(&d) != CUDNN_STATUS_SUCCESS) {
    WARN("cuDNN cannot create a descriptor here; only the status part is checked");
    REQUIRE_THROWS_WITH([] { LTL_CUDNN_CHECK(CUDNN_STATUS_BAD_PARAM); }(), Contains("CUDNN_STATUS_BAD_PARAM"));
    return;
  }
  const std::string msg = error_of<ltl::cuda_error>(
      [&] { LTL_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, -1, 2, 3, 4)); });
  (void)cudnnDestroyTensorDescriptor(d);
  // cuDNN 9 says which parameter it rejected (its last-error string; cuDNN 9.x: "(n <= 0) || (c <=
  // 0) || …"), and the message carries it.
  REQUIRE_THAT(msg, Contains("cudnnSetTensor4dDescriptor") && Contains("CUDNN_STATUS_BAD_PARAM") &&
                        Contains("; cuDNN: "));
  // Raised inside an op, the message names the op too.
  {
    const cuda::op_scope scope("conv2d_forward");
    const std::string in_op = error_of<ltl::cuda_error>([] { LTL_CUDNN_CHECK(CUDNN_STATUS_BAD_PARAM); });
    REQUIRE_THAT(in_op, Contains("(in op conv2d_forward)"));
  }
  REQUIRE(cuda::detail::current_op() == nullptr);  // the scope's label ends with it
}

TEST_CASE("conv kernels check shapes and options before touching the GPU", "[cuda-host]") {
  using DT = ltl::tensor<float, gpu>;
  STATIC_REQUIRE(ltl::conv_kernels<gpu, float> && ltl::conv_kernels<gpu, double>);
  // Zero-element tensors own no device memory: none of this needs a GPU (hence Cout = 0).
  const DT x(shape{0, 3, 5, 5}), w(shape{0, 3, 3, 3}), bad_w(shape{0, 2, 3, 3});
  REQUIRE(conv2d_forward(x, w, DT(), ltl::conv2d_options{.padding = 1}).sizes() == shape{0, 0, 5, 5});
  const std::string msg =
      error_of<ltl::shape_error>([&] { (void)conv2d_forward(x, bad_w, DT(), ltl::conv2d_options{}); });
  REQUIRE_THAT(msg, Contains("conv2d") && Contains("input channels"));
  REQUIRE_THROWS_AS(conv2d_forward(x, w, DT(shape{1, 0}), ltl::conv2d_options{}), ltl::shape_error);  // not [Cout]
  REQUIRE_THROWS_WITH(conv2d_forward(x, w, DT(), ltl::conv2d_options{.algorithm = ltl::conv2d_algorithm::direct3x3}),
                      Contains("conv2d") && Contains("direct3x3") && Contains("automatic"));
  REQUIRE_THROWS_WITH(conv2d_backward_input(DT(shape{0, 4, 2, 2}), w, shape{0, 3, 5, 5}, ltl::conv2d_options{}),
                      Contains("conv2d_backward") && Contains("does not match the output shape"));
  REQUIRE_THROWS_WITH(conv2d_backward_bias(DT(shape{0, 4})), Contains("conv2d_backward"));
}

// ================================ [cuda]: on a GPU ================================

TEMPLATE_TEST_CASE("cuDNN convolution matches the CPU and repeats bit for bit", "[cuda]", float, double) {
  LTL_REQUIRE_GPU();
  using T = TestType;
  using GT = ltl::tensor<T, gpu>;
  std::uint64_t seed = 100;
  for (const auto& c : conv_cases()) {
    INFO("geometry " << c.name);
    const auto g = ltl::make_conv2d_geometry(c.x, c.w, c.opt);
    auto cpu_opt = c.opt;
    cpu_opt.algorithm = ltl::conv2d_algorithm::im2col_gemm;  // the plain-arithmetic reference
    const auto x = random_tensor<T>(c.x, ++seed), w = random_tensor<T>(c.w, ++seed);
    const auto b = random_tensor<T>({c.w[0]}, ++seed), dy = random_tensor<T>(g.output_shape(), ++seed);
    const auto scale = random_tensor<T>({c.w[0]}, ++seed), res = random_tensor<T>(g.output_shape(), ++seed);
    const GT dx_ = x.template to<gpu>(), dw_ = w.template to<gpu>(), db_ = b.template to<gpu>();
    const GT ddy = dy.template to<gpu>(), dscale = scale.template to<gpu>(), dres = res.template to<gpu>();

    const GT y1 = conv2d_forward(dx_, dw_, db_, c.opt), y2 = conv2d_forward(dx_, dw_, db_, c.opt);
    require_near(y1, ltl::cpu::conv2d_forward(x, w, b, cpu_opt));
    REQUIRE(y1.to_vector() == y2.to_vector());

    const GT e1 = conv2d_forward_epilogue(dx_, dw_, c.opt, dscale, db_, dres, true);
    const GT e2 = conv2d_forward_epilogue(dx_, dw_, c.opt, dscale, db_, dres, true);
    require_near(e1, ltl::cpu::conv2d_forward_epilogue(x, w, cpu_opt, scale, b, res, true));
    REQUIRE(e1.to_vector() == e2.to_vector());

    const GT gi1 = conv2d_backward_input(ddy, dw_, c.x, c.opt), gi2 = conv2d_backward_input(ddy, dw_, c.x, c.opt);
    require_near(gi1, ltl::cpu::conv2d_backward_input(dy, w, c.x, cpu_opt));
    REQUIRE(gi1.to_vector() == gi2.to_vector());

    const GT gw1 = conv2d_backward_weight(ddy, dx_, c.w, c.opt), gw2 = conv2d_backward_weight(ddy, dx_, c.w, c.opt);
    require_near(gw1, ltl::cpu::conv2d_backward_weight(dy, x, c.w, cpu_opt));
    REQUIRE(gw1.to_vector() == gw2.to_vector());

    const GT gb1 = conv2d_backward_bias(ddy), gb2 = conv2d_backward_bias(ddy);
    require_near(gb1, ltl::cpu::conv2d_backward_bias(dy));
    REQUIRE(gb1.to_vector() == gb2.to_vector());
  }
}

TEST_CASE("the plan cache makes one plan per pass and geometry", "[cuda]") {
  LTL_REQUIRE_GPU();
  using GT = ltl::tensor<float, gpu>;
  auto& engine = cuda::conv_engine_for(cuda::context::current());
  // A geometry no other test uses.
  const GT x = random_tensor<float>({1, 5, 11, 13}, 1).to<gpu>(), w = random_tensor<float>({3, 5, 2, 4}, 2).to<gpu>();
  const ltl::conv2d_options opt{.stride = {1, 2}, .padding = {0, 1}};
  const std::size_t before = engine.cached_plans();
  const GT y = conv2d_forward(x, w, GT(), opt);
  (void)conv2d_backward_input(y, w, x.sizes(), opt);
  (void)conv2d_backward_weight(y, x, w.sizes(), opt);
  REQUIRE(engine.cached_plans() == before + 3);
  (void)conv2d_forward(x, w, GT(), opt);
  (void)conv2d_backward_weight(y, x, w.sizes(), opt);
  REQUIRE(engine.cached_plans() == before + 3);
  // Another setting is another plan.
  const ltl_test::settings_guard restore;
  auto& s = cuda::context::current().settings();
  s.max_workspace_bytes = 0;
  (void)conv2d_forward(x, w, GT(), opt);
  s = restore.saved;
  REQUIRE(engine.cached_plans() == before + 4);
}

TEST_CASE("a convolution whose workspace cannot be allocated runs the plan's next algorithm", "[cuda]") {
  LTL_REQUIRE_GPU();
#if !defined(LTL_CUDA_EMULATION)
  WARN("SKIPPED: needs the emulated device (tests/support/cuda_emu), whose memory a test can cap");
#else
  using GT = ltl::tensor<float, gpu>;
  auto& engine = cuda::conv_engine_for(cuda::context::current());
  const GT x = random_tensor<float>({2, 3, 9, 7}, 11).to<gpu>(), w = random_tensor<float>({4, 3, 3, 3}, 12).to<gpu>();
  const ltl::conv2d_options opt{.padding = {1, 1}};
  const GT y_want = conv2d_forward(x, w, GT(), opt);
  const GT dw_want = conv2d_backward_weight(y_want, x, w.sizes(), opt);
  const ltl::conv2d_geometry g = ltl::make_conv2d_geometry(x.sizes(), w.sizes(), opt);
  GT y(y_want.sizes()), dw(w.sizes());
  const auto before = engine.workspace_fallbacks();
  struct capacity_guard {  // gives the emulated device its memory back, however the case ends
    std::size_t total = 0;
    capacity_guard() {
      std::size_t free_bytes = 0;
      REQUIRE(cudaMemGetInfo(&free_bytes, &total) == cudaSuccess);
    }
    capacity_guard(const capacity_guard&) = delete;
    capacity_guard& operator=(const capacity_guard&) = delete;
    ~capacity_guard() { ltl_emu::set_device_memory(total); }
  } restore;
  // Not one byte more than is in use: every cudaMalloc fails, so the first choices' workspaces
  // (the emulated heuristics rank an FMA algorithm with a 4096-byte workspace first) cannot be had.
  cuda::device_pool().empty_cache();
  ltl_emu::set_device_memory(ltl_emu::device_bytes_in_use(0));
  engine.forward(g, CUDNN_DATA_FLOAT, x.data(), w.data(), y.data());
  engine.backward_filter(g, CUDNN_DATA_FLOAT, x.data(), y_want.data(), dw.data());
  REQUIRE(engine.workspace_fallbacks() == before + 2);
  REQUIRE(y.to_vector() == y_want.to_vector());  // the emulated algorithms compute alike
  REQUIRE(dw.to_vector() == dw_want.to_vector());
  // With memory again, the first choice runs.
  ltl_emu::set_device_memory(restore.total);
  engine.forward(g, CUDNN_DATA_FLOAT, x.data(), w.data(), y.data());
  REQUIRE(engine.workspace_fallbacks() == before + 2);
#endif
}

TEST_CASE("context: streams, settings and the library checks", "[cuda]") {
  LTL_REQUIRE_GPU();
  auto& ctx = cuda::context::current();
  REQUIRE(ctx.copy_stream() != nullptr);
  REQUIRE(ctx.copy_stream() != ctx.stream());
  REQUIRE(ctx.cublas() == ctx.cublas());
  REQUIRE(ctx.cudnn() != nullptr);
  REQUIRE_FALSE(ctx.settings().allow_tf32);
  REQUIRE(ctx.settings().deterministic);
  // The library version checks run inside the public entry points and throw a cuda_error unless
  // every verdict is ok: the CUDA runtime's and cuBLAS's when the first context is made, cuDNN's
  // on the first cudnn(). Both returned, so every check passed.
  REQUIRE_NOTHROW(cuda::context::current());
  REQUIRE_NOTHROW(ctx.cudnn());
}

TEST_CASE("device out of memory: cache freed, one retry, error with the bytes", "[cuda]") {
  LTL_REQUIRE_GPU();
  std::size_t free_bytes = 0, total = 0;
  REQUIRE(cudaMemGetInfo(&free_bytes, &total) == cudaSuccess);
  auto& pool = cuda::device_pool();
  const auto retries = pool.out_of_memory_retries();
  const index_t elems = static_cast<index_t>(total / sizeof(float)) * 2;  // twice the device
  const std::string msg =
      error_of<cuda::out_of_memory_error>([&] { ltl::tensor<float, gpu> t(shape{elems}); });
  REQUIRE(pool.out_of_memory_retries() == retries + 1);
  REQUIRE_THAT(msg, Contains("cudaMalloc of") && Contains("out of memory") && Contains("requested") &&
                        Contains("in use") && Contains("cached 0 bytes") && Contains("peak"));
  // The device still works afterwards.
  REQUIRE(ltl::tensor<float, gpu>::ones({4}).to_vector() == std::vector<float>(4, 1.0f));
}

TEST_CASE("conv kernels reject operands that are not on the current device", "[cuda]") {
  LTL_REQUIRE_GPU();
  float host[4] = {1, 2, 3, 4};
  REQUIRE_THROWS_WITH(cuda::require_device_memory(host, "conv2d", "input"),
                      Contains("conv2d") && Contains("input") && Contains("not CUDA device memory"));
  const auto dev = ltl::tensor<float, gpu>::ones({4});
  REQUIRE_NOTHROW(cuda::require_device_memory(dev.data(), "conv2d", "input"));
  // Shapes that do not match are shape errors naming the op, on real device tensors too.
  const auto x = ltl::tensor<float, gpu>::ones({1, 2, 4, 4}), w = ltl::tensor<float, gpu>::ones({3, 2, 3, 3});
  REQUIRE_THROWS_WITH(conv2d_backward_weight(ltl::tensor<float, gpu>::ones({1, 3, 3, 3}), x, w.sizes(),
                                             ltl::conv2d_options{}),
                      Contains("conv2d_backward") && Contains("[1, 3, 3, 3]"));
}

TEST_CASE("every kernel area refuses an operand on another GPU, naming the op and both devices", "[cuda]") {
  LTL_REQUIRE_GPU();
  int count = 0;
  REQUIRE(cudaGetDeviceCount(&count) == cudaSuccess);
  if (count < 2) {
    WARN("SKIPPED: a second GPU is needed (" << count << " visible)");
    return;
  }
  using DT = ltl::tensor<float, gpu>;
  using LT = ltl::tensor<std::int64_t, gpu>;
  REQUIRE(cuda::device::current_index() == 0);
  const auto labels_h = ltl::tensor<std::int64_t>::from({2}, {0, 2});
  // Device 0 (current) and device 1 twins of each operand.
  const DT a0 = DT::ones({2, 3}), x0 = DT::ones({2, 2, 4, 4}), w0 = DT::ones({3, 2, 3, 3}), c0 = DT::ones({2});
  const LT y0 = labels_h.to<gpu>();
  DT a1, x1, c1;
  LT y1;
  {
    const cuda::device_guard on1(1);
    a1 = DT::ones({2, 3}), x1 = DT::ones({2, 2, 4, 4}), c1 = DT::ones({2});
    y1 = labels_h.to<gpu>();
    REQUIRE(a1.device_index() == 1);
    REQUIRE(add(a1, a1).device_index() == 1);  // with its device current, device 1 computes
    // Absent operands (no bias) and empty ones are no device's: not refused.
    const DT w1 = DT::ones({3, 2, 3, 3});
    REQUIRE(conv2d_forward(x1, w1, DT(), ltl::conv2d_options{}).device_index() == 1);
    REQUIRE(add(DT(shape{0, 3}), DT::ones({1, 3})).numel() == 0);
  }
  REQUIRE(a0.device_index() == 0);
  auto refused = [](const char* op, int position, auto f) {
    INFO(op);
    const std::string msg = error_of<ltl::device_error>(f);
    REQUIRE_THAT(msg, Contains(std::string(op) + ": operand " + std::to_string(position) + " is on CUDA device 1") &&
                          Contains("current device 0"));
  };
  refused("add", 2, [&] { (void)add(a0, a1); });
  refused("relu_forward", 1, [&] { (void)relu_forward(a1); });
  refused("accumulate", 2, [&] {
    DT d = a0.clone();
    accumulate(d, a1);
  });
  refused("fill_device", 1, [&] { DT(a1).fill_(2.0f); });
  refused("sum_dims_keep", 1, [&] { (void)sum_dims_keep(a1, {true, false}); });
  refused("matmul", 2, [&] { (void)matmul(a0, a1.t()); });
  refused("softmax_forward", 1, [&] { (void)softmax_forward(a1, 1); });
  refused("batch_norm2d_forward", 1, [&] {
    DT rm = c0.clone(), rv = c0.clone();
    (void)batch_norm2d_forward(x1, c0, c0, rm, rv, ltl::batch_norm_options{.training = true});
  });
  refused("batch_norm2d_forward", 2, [&] {
    DT rm = c0.clone(), rv = c0.clone();
    (void)batch_norm2d_forward(x0, c1, c0, rm, rv, ltl::batch_norm_options{.training = true});
  });
  refused("max_pool2d_forward", 1, [&] { (void)max_pool2d_forward(x1, ltl::pool2d_options{.kernel = 2}); });
  refused("conv2d_forward", 1, [&] { (void)conv2d_forward(x1, w0, DT(), ltl::conv2d_options{}); });
  refused("gather_forward", 2, [&] { (void)gather_forward(a0, y1); });
  refused("argmax_matches", 1, [&] { (void)argmax_matches(a1, y0); });
  refused("fused_loss", 2, [&] { (void)fused_loss(a0, y1, ltl::loss_terms{}, static_cast<DT*>(nullptr)); });
  refused("sgd_update", 2, [&] {
    DT w = c0.clone(), none;
    sgd_update(w, c1, none, ltl::sgd_step<float>{0.1f, 0.0f, 0.0f, 1.0f, false, false});
  });
  // Through the op layer and autograd: the same error, not a fault or a silent peer read.
  refused("matmul", 2, [&] { (void)ltl::matmul(ltl::variable<float, gpu>(a0), ltl::variable<float, gpu>(a1.t())); });
}

TEST_CASE("out of memory inside an op names the op", "[cuda]") {
  LTL_REQUIRE_GPU();
  std::size_t free_bytes = 0, total = 0;
  REQUIRE(cudaMemGetInfo(&free_bytes, &total) == cudaSuccess);
  // [n, 1] + [1, n] broadcasts to n·n floats, twice the device's memory; the operands are small.
  const auto n = static_cast<index_t>(std::sqrt(2.0 * static_cast<double>(total) / sizeof(float))) + 1;
  const auto col = ltl::tensor<float, gpu>::ones({n, 1}), row = ltl::tensor<float, gpu>::ones({1, n});
  const std::string msg = error_of<cuda::out_of_memory_error>([&] { (void)add(col, row); });
  REQUIRE_THAT(msg, Contains("out of memory") && Contains("requested") && Contains("(in op add)"));
  REQUIRE(cuda::detail::current_op() == nullptr);
  REQUIRE(add(col.narrow(0, 0, 2), row.narrow(1, 0, 3)).to_vector() == std::vector<float>(6, 2.0f));
}

TEST_CASE("copy-stream blocks used on the compute stream are reused only after its event", "[cuda]") {
  LTL_REQUIRE_GPU();
  auto& ctx = cuda::context::current();
  auto& pool = cuda::device_pool();
  const int dev = ctx.device_index();
  const std::size_t pending_before = pool.pending_blocks();
  const std::size_t in_use_before = cuda::memory_stats(dev).bytes_in_use;
  void* p = nullptr;
  {
    const cuda::allocation_stream_guard on_copy(dev, ctx.copy_stream());
    {
      ltl::tensor<float, gpu> staged(shape{1000});  // 4000 bytes: a 4096-byte block
      p = staged.data();
      REQUIRE(cuda::memory_stats(dev).bytes_in_use == in_use_before + 4096);
      cuda::record_stream(p, dev, ctx.stream());  // read by compute-stream work from here on
    }
    REQUIRE(pool.pending_blocks() == pending_before + 1);
    ctx.synchronize();  // the compute stream's work is done, so is the event recorded at release
    const ltl::tensor<float, gpu> again(shape{1000});
    REQUIRE(again.data() == p);
    REQUIRE(pool.pending_blocks() == pending_before);
  }
  // Back on the compute stream: the copy stream's cached block is not handed out.
  const ltl::tensor<float, gpu> compute(shape{1000});
  REQUIRE(compute.data() != p);
}
