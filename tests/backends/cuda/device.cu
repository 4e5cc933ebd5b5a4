// Tests of the CUDA backend. The first group runs everywhere (no GPU needed): the device
// concept, the availability probe, error reporting, shape checks on empty device tensors and
// the host-side index-space logic. The [cuda] group compares every device kernel with the CPU
// backend and is skipped, with the reason printed, when no GPU is usable.
#include <ltlearn/cuda.hpp>
// The CPU kernel set, for the parity comparisons and the compute_device<cpu> statement below.
#include <ltlearn/backends/cpu/kernel_set.hpp>

#include <catch2/catch.hpp>

#include "support/cuda_skip.hpp"  // LTL_REQUIRE_GPU
#include "support/random_tensor.hpp"

#include <array>
#include <cmath>
#include <string>
#include <vector>

using ltl::index_t;
using ltl::shape;
namespace cuda = ltl::cuda;
using gpu = ltl::cuda::device;
using cpu = ltl::cpu::device;

using ltl_test::random_tensor;

namespace {

template <class T>
void require_close(const std::vector<T>& got, const std::vector<T>& want, double rel = std::is_same_v<T, float> ? 1e-5 : 1e-12) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i);
    REQUIRE(static_cast<double>(got[i]) == Approx(static_cast<double>(want[i])).epsilon(rel).margin(rel));
  }
}

/// Device tensor `d` holds the same shape and values as host tensor `h`.
template <class T>
void require_same(const ltl::tensor<T, gpu>& d, const ltl::tensor<T, cpu>& h) {
  REQUIRE(d.sizes() == h.sizes());
  REQUIRE(d.is_contiguous());
  require_close(d.to_vector(), h.to_vector());
}

/// The same values bit for bit.
template <class T>
void require_bitwise(const ltl::tensor<T, gpu>& a, const ltl::tensor<T, gpu>& b) {
  REQUIRE(a.sizes() == b.sizes());
  const auto va = a.to_vector(), vb = b.to_vector();
  REQUIRE(std::memcmp(va.data(), vb.data(), va.size() * sizeof(T)) == 0);
}

/// `op()` run twice on the device gives the same bits both times, and the CPU's values `h`.
template <class F, class T>
void require_same_twice(F op, const ltl::tensor<T, cpu>& h) {
  const auto first = op();
  require_bitwise(op(), first);
  require_same(first, h);
}

// ---- device-generic model code: one definition, instantiated for both devices ----

/// Gradients and loss of one step of a two-layer MLP, copied back to the host.
struct step_result {
  float loss = 0;
  std::vector<float> gw1, gb1, gw2, gb2;
};

/// loss = mean((relu(x·w1 + b1)·w2ᵀ + b2)²); x [N, I], w1 [I, H], b1 [H], w2 [O, H], b2 [O].
/// Written once for any device D: only the tensors' device type differs.
template <class D>
ltl::variable<float, D> mlp_loss(const ltl::variable<float, D>& x, const ltl::variable<float, D>& w1,
                                 const ltl::variable<float, D>& b1, const ltl::variable<float, D>& w2,
                                 const ltl::variable<float, D>& b2) {
  auto h = ltl::relu(ltl::add(ltl::matmul(x, w1), b1));
  auto y = ltl::linear(h, w2, b2);
  return ltl::mean(ltl::mul(y, y));
}

template <class D>
step_result mlp_step(const std::vector<ltl::tensor<float>>& host) {
  std::vector<ltl::variable<float, D>> v;
  for (std::size_t i = 0; i < host.size(); ++i) v.emplace_back(host[i].template to<D>(), i > 0);
  auto loss = mlp_loss<D>(v[0], v[1], v[2], v[3], v[4]);
  loss.backward();
  return {loss.value().item(), v[1].grad().to_vector(), v[2].grad().to_vector(), v[3].grad().to_vector(),
          v[4].grad().to_vector()};
}

std::vector<ltl::tensor<float>> mlp_inputs() {
  return {random_tensor<float>({6, 5}, 1), random_tensor<float>({5, 8}, 2), random_tensor<float>({8}, 3),
          random_tensor<float>({3, 8}, 4), random_tensor<float>({3}, 5)};
}

// The proof that model code needs no change: the same template compiles for both devices.
template step_result mlp_step<cpu>(const std::vector<ltl::tensor<float>>&);
template step_result mlp_step<gpu>(const std::vector<ltl::tensor<float>>&);

}  // namespace

// ================================ runs without a GPU ================================

TEST_CASE("cuda::device is a device tag", "[cuda-host]") {
  static_assert(ltl::device<gpu>, "cuda::device must satisfy ltl::device");
  static_assert(!gpu::is_host);
  static_assert(ltl::device<ltl::cpu::device>);
  STATIC_REQUIRE(std::is_same_v<ltl::tensor<float, gpu>::device_type, gpu>);
  REQUIRE(std::string(gpu::name) == "cuda");
  // Zero-byte requests touch no device, so they work without a GPU.
  REQUIRE_NOTHROW(gpu::copy(nullptr, nullptr, 0));
  REQUIRE_NOTHROW(gpu::zero(nullptr, 0));
}

TEST_CASE("availability probe never throws and explains itself", "[cuda-host]") {
  bool ok = true;
  REQUIRE_NOTHROW(ok = cuda::available());
  REQUIRE(ok == cuda::available());  // cached, stable
  const std::string reason = cuda::unavailable_reason();
  if (ok) {
    REQUIRE(reason.empty());
  } else {
    INFO("reason: " << reason);
    REQUIRE_FALSE(reason.empty());
    WARN("no usable GPU here: " << reason);
  }
}

TEST_CASE("status checks name the call, the location and the library's message", "[cuda-host]") {
  using Catch::Matchers::Contains;
  REQUIRE_NOTHROW([] { LTL_CUDA_CHECK(cudaSuccess); }());
  REQUIRE_NOTHROW([] { LTL_CUBLAS_CHECK(CUBLAS_STATUS_SUCCESS); }());
  REQUIRE_NOTHROW([] { LTL_CUDNN_CHECK(CUDNN_STATUS_SUCCESS); }());

  const auto runtime = [] { LTL_CUDA_CHECK(cudaErrorInvalidValue); };
  REQUIRE_THROWS_AS(runtime(), ltl::cuda_error);
  REQUIRE_THROWS_AS(runtime(), ltl::device_error);
  REQUIRE_THROWS_WITH(runtime(), Contains("cudaErrorInvalidValue failed at") && Contains("backends/cuda/device.cu:") &&
                                     Contains("invalid argument"));

  const auto blas = [] { LTL_CUBLAS_CHECK(CUBLAS_STATUS_NOT_INITIALIZED); };
  REQUIRE_THROWS_AS(blas(), ltl::cuda_error);
  REQUIRE_THROWS_WITH(blas(), Contains("CUBLAS_STATUS_NOT_INITIALIZED") && Contains("backends/cuda/device.cu:"));

  const auto dnn = [] { LTL_CUDNN_CHECK(CUDNN_STATUS_BAD_PARAM); };
  REQUIRE_THROWS_AS(dnn(), ltl::cuda_error);
  REQUIRE_THROWS_WITH(dnn(), Contains("CUDNN_STATUS_BAD_PARAM") && Contains("backends/cuda/device.cu:"));
}

TEST_CASE("device memory without a GPU fails with a cuda_error naming cudaMalloc", "[cuda-host]") {
  using Catch::Matchers::Contains;
  auto& alloc = ltl::caching_allocator<gpu>::instance();
  const auto before = alloc.stats();
  if (cuda::available()) {
    ltl::tensor<float, gpu> t(shape{4, 4});
    REQUIRE(t.data() != nullptr);
    REQUIRE(reinterpret_cast<std::uintptr_t>(t.data()) % gpu::alignment == 0);
    REQUIRE(alloc.stats().bytes_in_use == before.bytes_in_use + 64);
    return;
  }
  REQUIRE_THROWS_AS((ltl::tensor<float, gpu>(shape{4, 4})), ltl::cuda_error);
  REQUIRE_THROWS_WITH((ltl::tensor<float, gpu>(shape{4, 4})), Contains("cudaMalloc of 64 bytes"));
  REQUIRE_THROWS_AS(ltl::tensor<float>::ones({3}).to<gpu>(), ltl::cuda_error);
  REQUIRE_THROWS_AS(cuda::context::current(), ltl::cuda_error);
  const auto after = alloc.stats();
  REQUIRE(after.bytes_in_use == before.bytes_in_use);
  REQUIRE(after.requests == before.requests + 3);
}

TEST_CASE("empty device tensors: kernels dispatch by ADL and check shapes without a GPU", "[cuda-host]") {
  using DT = ltl::tensor<float, gpu>;
  // Zero-element tensors own no device memory, so none of this touches the (absent) GPU.
  const DT a(shape{0, 3}), b(shape{0, 4}), m(shape{3, 0});
  // Unqualified calls on device tensors find ltl::cuda's kernels by argument-dependent lookup.
  REQUIRE(add(a, a).sizes() == shape{0, 3});
  REQUIRE(mul(a, DT(shape{0, 1})).sizes() == shape{0, 3});
  REQUIRE_THROWS_AS(add(a, b), ltl::shape_error);
  REQUIRE_THROWS_AS(sub(a, b), ltl::shape_error);
  REQUIRE(affine(a, 2.0f, 1.0f).sizes() == shape{0, 3});
  REQUIRE(relu_forward(a).sizes() == shape{0, 3});
  REQUIRE_THROWS_AS(relu_backward(a, b), ltl::shape_error);
  REQUIRE(exp_forward(a).sizes() == shape{0, 3});
  REQUIRE(log_forward(a).sizes() == shape{0, 3});
  REQUIRE(pow_forward(a, 2.0f).sizes() == shape{0, 3});
  REQUIRE(leaky_relu_forward(a, 0.1f).sizes() == shape{0, 3});
  REQUIRE_THROWS_AS(pow_backward(a, b, 2.0f), ltl::shape_error);
  REQUIRE_THROWS_AS(leaky_relu_backward(a, b, 0.1f), ltl::shape_error);
  DT acc(shape{0, 3});
  REQUIRE_NOTHROW(accumulate(acc, a));
  REQUIRE_THROWS_AS(accumulate(acc, b), ltl::shape_error);
  REQUIRE(matmul(a, m).sizes() == shape{0, 0});
  REQUIRE(matmul(DT(shape{2, 0}), DT(shape{0, 0})).sizes() == shape{2, 0});
  REQUIRE_THROWS_AS(matmul(a, b), ltl::shape_error);
  DT c(shape{0, 5});
  REQUIRE_THROWS_AS(gemm(a, m, c, 1.0f, 0.0f), ltl::shape_error);
  REQUIRE_THROWS_AS(sum_dims_keep(a, {true}), ltl::shape_error);
  REQUIRE_THROWS_AS(sum_to(a, shape{2, 3}), ltl::shape_error);
  REQUIRE(sum_to(a, shape{0, 3}).sizes() == shape{0, 3});
  // The tensor hooks: fill_ and copy_ of views.
  DT e(shape{0, 3});
  REQUIRE_NOTHROW(e.fill_(1.0f));
  REQUIRE_NOTHROW(e.t().copy_(a.t()));
  REQUIRE_THROWS_AS(e.copy_(b), ltl::shape_error);
  // Transfers of nothing, and the differentiable ops on device variables.
  REQUIRE(ltl::tensor<float>(shape{0, 2}).to<gpu>().to<cpu>().sizes() == shape{0, 2});
  const ltl::variable<float, gpu> va(a, true), vb(b, true);
  REQUIRE(ltl::add(va, va).sizes() == shape{0, 3});
  REQUIRE_THROWS_AS(ltl::add(va, vb), ltl::shape_error);
  REQUIRE_THROWS_AS(ltl::matmul(va, vb), ltl::shape_error);
}

TEST_CASE("the CUDA backend is a complete compute device", "[cuda-host]") {
  // backends/cuda/kernel_set.hpp asserts the same at compile time, area by area; here the
  // statement is visible in the test report too.
  STATIC_REQUIRE(ltl::elementwise_kernels<gpu, float> && ltl::gemm_kernels<gpu, double>);
  STATIC_REQUIRE(ltl::conv_kernels<gpu, float>);  // cuDNN (backends/cuda/conv.hpp)
  STATIC_REQUIRE(ltl::compute_device<gpu>);
  STATIC_REQUIRE(ltl::compute_device<cpu>);
}

TEST_CASE("strided index spaces merge chained dimensions", "[cuda-host]") {
  namespace k = ltl::cuda::kernels;
  // Contiguous [2, 3, 4] is one flat run.
  auto s = k::make_space<1>(shape{2, 3, 4}, {shape{12, 4, 1}});
  REQUIRE(s.rank == 1);
  REQUIRE(s.sizes[0] == 24);
  REQUIRE(s.strides[0][0] == 1);
  // A transposed [3, 2] view of a [2, 3] matrix cannot merge.
  s = k::make_space<1>(shape{3, 2}, {shape{1, 3}});
  REQUIRE(s.rank == 2);
  REQUIRE((s.sizes[0] == 3 && s.sizes[1] == 2 && s.strides[0][0] == 1 && s.strides[0][1] == 3));
  // Size-1 dimensions vanish whatever their stride; a rank-0 space has one position.
  s = k::make_space<1>(shape{1, 5, 1}, {shape{99, 1, 7}});
  REQUIRE((s.rank == 1 && s.sizes[0] == 5 && s.strides[0][0] == 1));
  REQUIRE(k::make_space<1>(shape{}, {shape{}}).rank == 0);
  // Two operands: contiguous out [2, 3, 4] with a [3, 4] operand broadcast over dim 0 keeps the
  // broadcast dimension apart but merges the trailing two.
  auto s2 = k::make_space<2>(shape{2, 3, 4}, {shape{12, 4, 1}, shape{0, 4, 1}});
  REQUIRE(s2.rank == 2);
  REQUIRE((s2.sizes[0] == 2 && s2.sizes[1] == 12));
  REQUIRE((s2.strides[0][0] == 12 && s2.strides[0][1] == 1 && s2.strides[1][0] == 0 && s2.strides[1][1] == 1));
  REQUIRE(k::grid_for(1) == 1);
  REQUIRE(k::grid_for(257) == 2);
  REQUIRE(k::grid_for(ltl::index_t{1} << 40) == k::max_grid);
}

namespace {
/// Host tensor views with awkward layouts, each of shape `s` = [4, 3, 5] or broadcast to it.
std::vector<ltl::tensor<float>> awkward_views() {
  const auto base = random_tensor<float>({5, 3, 4}, 51);
  const auto wide = random_tensor<float>({4, 3, 9}, 52);
  return {
      random_tensor<float>({4, 3, 5}, 53),                       // contiguous
      base.transpose(0, 2),                                      // fully permuted
      wide.narrow(2, 2, 5),                                      // row stride 9, not 5
      random_tensor<float>({3, 1}, 54).expand(shape{4, 3, 5}),   // broadcast: strides 0, 1, 0
      random_tensor<float>({4, 1, 5}, 55).expand(shape{4, 3, 5}),
      random_tensor<float>({4, 2, 3, 5}, 56).select(1, 1),       // offset view
  };
}
}  // namespace

TEST_CASE("kernel index spaces visit the elements the CPU's strided loop visits", "[cuda-host]") {
  namespace k = ltl::cuda::kernels;
  const shape s{4, 3, 5};
  const auto views = awkward_views();
  for (std::size_t i = 0; i < views.size(); ++i) {
    for (std::size_t j = 0; j < views.size(); ++j) {
      INFO("views " << i << " and " << j);
      const std::array<shape, 2> st{views[i].strides(), views[j].strides()};
      // The offsets the CPU's strided loop visits, by definition: position p in row-major order
      // of s, and per operand the sum over dimensions of index times stride.
      std::vector<std::array<ltl::index_t, 2>> want;
      for (ltl::index_t p = 0; p < s.numel(); ++p) {
        std::array<ltl::index_t, 2> o{0, 0};
        ltl::index_t rem = p;
        for (int d = s.size() - 1; d >= 0; --d) {
          const ltl::index_t at = rem % s[d];
          rem /= s[d];
          for (std::size_t k = 0; k < 2; ++k) o[k] += at * st[k][d];
        }
        want.push_back(o);
      }
      const auto space = k::make_space<2>(s, st);
      REQUIRE(space.rank <= 3);
      for (ltl::index_t p = 0; p < s.numel(); ++p) {
        ltl::index_t off[2];
        space.offsets(p, off);
        REQUIRE(off[0] == want[static_cast<std::size_t>(p)][0]);
        REQUIRE(off[1] == want[static_cast<std::size_t>(p)][1]);
      }
    }
  }
}

TEST_CASE("reduction plans sum the elements the CPU sums", "[cuda-host]") {
  // Runs the per-thread reduction kernel's loop on the host over the device plan.
  for (const auto& x : awkward_views()) {
    for (int mask = 0; mask < 8; ++mask) {
      const std::vector<bool> m{(mask & 1) != 0, (mask & 2) != 0, (mask & 4) != 0};
      INFO("mask " << mask);
      // plan_reduction is the host-side setup of the CUDA reduction kernel; without a GPU its plan
      // is reachable only directly (with one, the [cuda] sum_dims_keep test runs the kernel).
      const auto p = ltl::cuda::detail::plan_reduction(x.sizes(), x.strides(), m);
      const auto want = ltl::cpu::sum_dims_keep(x, m);
      REQUIRE(p.out_shape == want.sizes());
      REQUIRE(p.n_out == want.numel());
      std::vector<float> got;
      for (ltl::index_t o = 0; o < p.n_out; ++o) {
        double acc = 0;
        for (ltl::index_t j = 0; j < p.n_in; ++j) acc += x.data()[p.kept.offset(o) + p.red.offset(j)];
        got.push_back(static_cast<float>(acc));
      }
      require_close(got, want.to_vector());
    }
  }
  REQUIRE_THROWS_AS(ltl::cuda::detail::plan_reduction(shape{2, 3}, shape{3, 1}, {true}), ltl::shape_error);
}

namespace {
/// Column-major BLAS GEMM by definition, with cuBLAS's argument checks as REQUIREs:
/// C(m×n) = alpha·op(A)·op(B) + beta·C.
template <class T>
void reference_blas_gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, T alpha, const T* A,
                         int lda, const T* B, int ldb, T beta, T* C, int ldc) {
  REQUIRE(lda >= std::max(1, ta == CUBLAS_OP_N ? m : k));
  REQUIRE(ldb >= std::max(1, tb == CUBLAS_OP_N ? k : n));
  REQUIRE(ldc >= std::max(1, m));
  for (int j = 0; j < n; ++j) {
    for (int i = 0; i < m; ++i) {
      double acc = 0;
      for (int l = 0; l < k; ++l) {
        const T a = ta == CUBLAS_OP_N ? A[i + l * lda] : A[l + i * lda];
        const T b = tb == CUBLAS_OP_N ? B[l + j * ldb] : B[j + l * ldb];
        acc += static_cast<double>(a) * static_cast<double>(b);
      }
      T& c = C[i + j * ldc];
      c = static_cast<T>(alpha * acc + (beta == T(0) ? T(0) : beta * c));
    }
  }
}
}  // namespace

TEMPLATE_TEST_CASE("the cuBLAS call plan computes row-major A·B without copying views", "[cuda-host]", float,
                   double) {
  using T = TestType;
  using HT = ltl::tensor<T>;
  // Each operand in four layouts: row-major, transposed view, narrowed (ld > cols), no unit stride.
  auto layouts = [](index_t r, index_t c, std::uint64_t seed) {
    return std::vector<HT>{random_tensor<T>({r, c}, seed), random_tensor<T>({c, r}, seed + 1).t(),
                           random_tensor<T>({r, c + 4}, seed + 2).narrow(1, 3, c),
                           random_tensor<T>({r, c, 2}, seed + 3).select(2, 1)};
  };
  for (auto [M, K, N] : {std::array<index_t, 3>{5, 7, 3}, {1, 7, 1}, {5, 1, 3}, {1, 1, 1}, {6, 4, 1}}) {
    const auto as = layouts(M, K, 60), bs = layouts(K, N, 70);
    for (std::size_t i = 0; i < as.size(); ++i) {
      for (std::size_t j = 0; j < bs.size(); ++j) {
        INFO("M K N = " << M << " " << K << " " << N << ", layouts " << i << " and " << j);
        const auto& a = as[i];
        const auto& b = bs[j];
        // plan_gemm is gemm's host-side setup (operand order, transposes, packing); without a GPU
        // only the plan is reachable (with one, the [cuda] gemm test calls cuBLAS through gemm).
        const auto plan = ltl::cuda::detail::plan_gemm(a, b);
        // Views with a unit stride (or a single row/column) are read in place.
        REQUIRE(plan.packed_a.defined() == (i == 3 && M > 1 && K > 1));
        REQUIRE(plan.packed_b.defined() == (j == 3 && K > 1 && N > 1));
        auto c = random_tensor<T>({M, N}, 80);
        auto want = c.clone();
        ltl::cpu::gemm(a, b, want, T(1.5), T(0.25));
        reference_blas_gemm<T>(plan.first.op, plan.second.op, plan.m, plan.n, plan.k, T(1.5), plan.first.ptr,
                               plan.first.ld, plan.second.ptr, plan.second.ld, T(0.25), c.data(), plan.ldc);
        require_close(c.to_vector(), want.to_vector(), std::is_same_v<T, float> ? 1e-5 : 1e-12);
      }
    }
  }
}

TEST_CASE("the device-generic MLP step runs on the CPU", "[cuda-host]") {
  const auto r = mlp_step<cpu>(mlp_inputs());
  REQUIRE(std::isfinite(r.loss));
  REQUIRE(r.loss > 0);
  REQUIRE(r.gw1.size() == 40);
  REQUIRE(r.gb2.size() == 3);
}

// ================================ needs a GPU ([cuda]) ================================

TEST_CASE("host-device round trips and the caching device allocator", "[cuda]") {
  LTL_REQUIRE_GPU();
  const auto h = random_tensor<float>({7, 9}, 11);
  const auto d = h.to<gpu>();
  REQUIRE(d.to_vector() == h.to_vector());
  REQUIRE(ltl::tensor<float, gpu>::scalar(2.5f).item() == 2.5f);
  // A transposed host view goes over contiguous.
  REQUIRE(h.t().to<gpu>().to_vector() == h.t().contiguous().to_vector());
  auto& alloc = ltl::caching_allocator<gpu>::instance();
  const void* first = nullptr;
  { ltl::tensor<float, gpu> a(shape{1000, 37}); first = a.data(); }
  const auto before = alloc.stats();
  { ltl::tensor<float, gpu> b(shape{1000, 37}); REQUIRE(b.data() == first); }
  REQUIRE(alloc.stats().cache_hits == before.cache_hits + 1);
  REQUIRE(ltl::tensor<double, gpu>::zeros({3, 2}).to_vector() == std::vector<double>(6, 0.0));
  REQUIRE(ltl::tensor<float, gpu>::ones({4}).to_vector() == std::vector<float>(4, 1.0f));
  auto& ctx = cuda::context::current();
  REQUIRE(&ctx == &cuda::context::get(ctx.device_index()));
  REQUIRE(ctx.cudnn() != nullptr);
  REQUIRE(ctx.cudnn() == ctx.cudnn());
  REQUIRE_THROWS_AS(cuda::context::get(-1), ltl::device_error);
}

TEMPLATE_TEST_CASE("elementwise kernels match the CPU", "[cuda]", float, double) {
  LTL_REQUIRE_GPU();
  using T = TestType;
  const auto a = random_tensor<T>({4, 5}, 1), b = random_tensor<T>({4, 5}, 2, 0.5, 2);
  const auto row = random_tensor<T>({5}, 3), col = random_tensor<T>({4, 1}, 4);
  const auto c3 = random_tensor<T>({2, 1, 5}, 5), d3 = random_tensor<T>({4, 1}, 6);
  const auto da = a.template to<gpu>(), db = b.template to<gpu>(), drow = row.template to<gpu>();
  const auto dcol = col.template to<gpu>(), dc3 = c3.template to<gpu>(), dd3 = d3.template to<gpu>();

  require_same_twice([&] { return add(da, db); }, ltl::cpu::add(a, b));
  require_same_twice([&] { return add(da, drow); }, ltl::cpu::add(a, row));
  require_same_twice([&] { return add(dcol, drow); }, ltl::cpu::add(col, row));  // [4,1] + [5] -> [4,5]
  require_same_twice([&] { return add(dc3, dd3); }, ltl::cpu::add(c3, d3));      // [2,1,5] + [4,1] -> [2,4,5]
  require_same_twice([&] { return sub(da, drow); }, ltl::cpu::sub(a, row));
  require_same_twice([&] { return mul(da, dcol); }, ltl::cpu::mul(a, col));
  require_same_twice([&] { return div(da, db); }, ltl::cpu::div(a, b));
  require_same_twice([&] { return affine(da, T(2), T(-0.5)); }, ltl::cpu::affine(a, T(2), T(-0.5)));
  // Non-contiguous operands: transposed views.
  require_same_twice([&] { return add(da.t(), db.t()); }, ltl::cpu::add(a.t(), b.t()));
  require_same_twice([&] { return mul(da.t(), drow.unsqueeze(1)); }, ltl::cpu::mul(a.t(), row.unsqueeze(1)));
  require_same_twice([&] { return relu_forward(da.t()); }, ltl::cpu::relu_forward(a.t()));

  const auto y = ltl::cpu::relu_forward(a);
  require_same_twice([&] { return relu_forward(da); }, y);
  require_same_twice([&] { return relu_backward(db, relu_forward(da)); }, ltl::cpu::relu_backward(b, y));

  auto acc_h = a.clone();
  auto acc_d = da.clone();
  ltl::cpu::accumulate(acc_h, row);
  accumulate(acc_d, drow);
  require_same(acc_d, acc_h);
  auto acc_again = da.clone();
  accumulate(acc_again, drow);
  require_bitwise(acc_again, acc_d);
  // Into a non-contiguous destination: the transposed view of a fresh copy.
  auto t_h = a.clone();
  auto t_d = da.clone();
  auto t_hv = t_h.t();
  auto t_dv = t_d.t();
  ltl::cpu::accumulate(t_hv, col.t().contiguous());
  accumulate(t_dv, dcol.t().contiguous());
  require_same(t_d, t_h);
  // exp, log, pow, leaky_relu: the CUDA math library, equal to the host's libm to rounding.
  require_same_twice([&] { return exp_forward(da); }, ltl::cpu::exp_forward(a));
  require_same_twice([&] { return log_forward(db); }, ltl::cpu::log_forward(b));
  require_same_twice([&] { return pow_forward(db, T(1.5)); }, ltl::cpu::pow_forward(b, T(1.5)));
  require_same_twice([&] { return pow_backward(da, db, T(1.5)); }, ltl::cpu::pow_backward(a, b, T(1.5)));
  require_same_twice([&] { return leaky_relu_forward(da.t(), T(0.1)); }, ltl::cpu::leaky_relu_forward(a.t(), T(0.1)));
  require_same_twice([&] { return leaky_relu_backward(db, da, T(0.1)); }, ltl::cpu::leaky_relu_backward(b, a, T(0.1)));
  // A user functor through the generic map/zip.
  const cuda::kernels::affine_fn<T> three_x_plus_one{T(3), T(1)};
  require_same_twice([&] { return cuda::map(da, three_x_plus_one); }, ltl::cpu::affine(a, T(3), T(1)));
  require_same_twice([&] { return cuda::zip(da, drow, cuda::kernels::multiplies{}, "mul"); }, ltl::cpu::mul(a, row));
}

TEMPLATE_TEST_CASE("fill_ and copy_ on strided device views", "[cuda]", float, double) {
  LTL_REQUIRE_GPU();
  using T = TestType;
  const auto h = random_tensor<T>({6, 4}, 21);
  auto hh = h.clone();
  auto d = h.template to<gpu>();
  hh.narrow(1, 1, 2).fill_(T(7));
  d.narrow(1, 1, 2).fill_(T(7));
  require_same(d, hh);
  hh.t().select(0, 3).fill_(T(-1));  // column 3, stride 4
  d.t().select(0, 3).fill_(T(-1));
  require_same(d, hh);
  // Strided sources: clone of a transposed view, copy_ from a broadcast (stride-0) view.
  require_same(d.t().clone(), hh.t().clone());
  require_same(d.t().contiguous(), hh.t().contiguous());
  const auto r = random_tensor<T>({4}, 22);
  hh.copy_(r.unsqueeze(0).expand(hh.sizes()));
  d.copy_(r.template to<gpu>().unsqueeze(0).expand(d.sizes()));
  require_same(d, hh);
  // The same writes again give the same bits.
  auto again = h.template to<gpu>();
  again.narrow(1, 1, 2).fill_(T(7));
  again.t().select(0, 3).fill_(T(-1));
  again.copy_(r.template to<gpu>().unsqueeze(0).expand(again.sizes()));
  require_bitwise(again, d);
  // Strided destination and source at once.
  auto dst_h = ltl::tensor<T>::zeros({4, 6});
  auto dst_d = ltl::tensor<T, gpu>::zeros({4, 6});
  dst_h.narrow(1, 0, 3).copy_(h.narrow(0, 2, 3).t());
  dst_d.narrow(1, 0, 3).copy_(h.template to<gpu>().narrow(0, 2, 3).t());
  require_same(dst_d, dst_h);
}

TEMPLATE_TEST_CASE("cuBLAS gemm matches Eigen for every operand layout", "[cuda]", float, double) {
  LTL_REQUIRE_GPU();
  using T = TestType;
  const auto a = random_tensor<T>({5, 7}, 31), at = random_tensor<T>({7, 5}, 32);
  const auto b = random_tensor<T>({7, 3}, 33), bt = random_tensor<T>({3, 7}, 34);
  const auto wide = random_tensor<T>({5, 10}, 35);  // narrowed to [5, 7]: leading dimension 10
  const auto da = a.template to<gpu>(), dat = at.template to<gpu>(), db = b.template to<gpu>();
  const auto dbt = bt.template to<gpu>(), dwide = wide.template to<gpu>();

  require_same_twice([&] { return matmul(da, db); }, ltl::cpu::matmul(a, b));
  require_same_twice([&] { return matmul(dat.t(), db); }, ltl::cpu::matmul(at.t(), b));
  require_same_twice([&] { return matmul(da, dbt.t()); }, ltl::cpu::matmul(a, bt.t()));
  require_same_twice([&] { return matmul(dat.t(), dbt.t()); }, ltl::cpu::matmul(at.t(), bt.t()));
  require_same_twice([&] { return matmul(dwide.narrow(1, 2, 7), db); }, ltl::cpu::matmul(wide.narrow(1, 2, 7), b));
  require_same_twice([&] { return matmul(db.t(), dwide.narrow(1, 2, 7).t()); },
                     ltl::cpu::matmul(b.t(), wide.narrow(1, 2, 7).t()));
  // Vectors as matrices: [1, 7]·[7, 1] and [5, 1]·[1, 3].
  require_same_twice([&] { return matmul(da.narrow(0, 1, 1), db.narrow(1, 0, 1)); },
                     ltl::cpu::matmul(a.narrow(0, 1, 1), b.narrow(1, 0, 1)));
  require_same_twice([&] { return matmul(da.narrow(1, 0, 1), db.narrow(0, 0, 1)); },
                     ltl::cpu::matmul(a.narrow(1, 0, 1), b.narrow(0, 0, 1)));

  // alpha and beta, and the empty inner dimension.
  auto c_h = random_tensor<T>({5, 3}, 36);
  auto c_d = c_h.template to<gpu>(), c_again = c_h.template to<gpu>();
  ltl::cpu::gemm(a, bt.t(), c_h, T(2), T(0.5));
  gemm(da, dbt.t(), c_d, T(2), T(0.5));
  require_same(c_d, c_h);
  gemm(da, dbt.t(), c_again, T(2), T(0.5));
  require_bitwise(c_again, c_d);
  ltl::cpu::gemm(ltl::tensor<T>(shape{5, 0}), ltl::tensor<T>(shape{0, 3}), c_h, T(1), T(3));
  gemm(ltl::tensor<T, gpu>(shape{5, 0}), ltl::tensor<T, gpu>(shape{0, 3}), c_d, T(1), T(3));
  require_same(c_d, c_h);
}

TEMPLATE_TEST_CASE("sum_dims_keep and sum_to match the CPU", "[cuda]", float, double) {
  LTL_REQUIRE_GPU();
  using T = TestType;
  const auto x = random_tensor<T>({3, 4, 5}, 41);
  const auto dx = x.template to<gpu>();
  for (int mask = 0; mask < 8; ++mask) {
    const std::vector<bool> m{(mask & 1) != 0, (mask & 2) != 0, (mask & 4) != 0};
    INFO("mask " << mask);
    require_same_twice([&] { return sum_dims_keep(dx, m); }, ltl::cpu::sum_dims_keep(x, m));
    require_same_twice([&] { return sum_dims_keep(dx.transpose(0, 2), m); },
                       ltl::cpu::sum_dims_keep(x.transpose(0, 2), m));
  }
  // Long reductions take the block-per-output kernel.
  const auto big = random_tensor<T>({3, 5000}, 42);
  const auto dbig = big.template to<gpu>();
  require_same_twice([&] { return sum_dims_keep(dbig, {false, true}); }, ltl::cpu::sum_dims_keep(big, {false, true}));
  const std::vector<bool> rows{true, false};
  require_same_twice([&] { return sum_dims_keep(dbig.t(), rows); }, ltl::cpu::sum_dims_keep(big.t(), rows));
  require_same_twice([&] { return sum_dims_keep(dbig, {true, true}); }, ltl::cpu::sum_dims_keep(big, {true, true}));
  require_same_twice([&] { return sum_to(dx, shape{4, 1}); }, ltl::cpu::sum_to(x, shape{4, 1}));
  require_same_twice([&] { return sum_to(dx, shape{5}); }, ltl::cpu::sum_to(x, shape{5}));
  require_same_twice([&] { return sum_to(dx, shape{}); }, ltl::cpu::sum_to(x, shape{}));
}

TEST_CASE("the device-generic MLP step gives the CPU's loss and gradients on CUDA", "[cuda]") {
  LTL_REQUIRE_GPU();
  const auto in = mlp_inputs();
  const auto want = mlp_step<cpu>(in);
  const auto got = mlp_step<gpu>(in);
  REQUIRE(got.loss == Approx(want.loss).epsilon(1e-5));
  require_close(got.gw1, want.gw1, 1e-4);
  require_close(got.gb1, want.gb1, 1e-4);
  require_close(got.gw2, want.gw2, 1e-4);
  require_close(got.gb2, want.gb2, 1e-4);
  // A second backward into the same leaves accumulates (the accumulate kernel).
  std::vector<ltl::variable<float, gpu>> v;
  for (std::size_t i = 0; i < in.size(); ++i) v.emplace_back(in[i].to<gpu>(), i > 0);
  mlp_loss<gpu>(v[0], v[1], v[2], v[3], v[4]).backward();
  mlp_loss<gpu>(v[0], v[1], v[2], v[3], v[4]).backward();
  std::vector<float> twice = want.gw1;
  for (auto& g : twice) g *= 2;
  require_close(v[1].grad().to_vector(), twice, 1e-4);
}
