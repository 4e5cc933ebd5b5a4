// backends/cuda/loss.hpp (one read-back per call, the labels checked on the device) and
// backends/cuda/context.hpp (cuBLAS math mode from settings::allow_tf32). [cuda-host] cases run
// everywhere; [cuda] cases skip, with the reason printed, without a GPU.
#include "support/cuda_skip.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

using ltl::index_t;
using ltl::shape;
namespace cuda = ltl::cuda;
namespace kn = ltl::cuda::kernels;

namespace {
/// Runs `f`, requires it to throw E, and returns the message.
template <class E, class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (...) {
    FAIL("another exception type");
  }
  FAIL("no exception");
  return {};
}
}  // namespace

TEST_CASE("the fused loss's read-back status gives the CPU's errors, label first", "[cuda-host][loss]") {
  kn::loss_status ok{.loss = 1.25, .wsum = 3.0, .inv_wsum = 1.0 / 3.0, .bad_pos = -1, .bad_label = 0};
  REQUIRE(cuda::detail::fused_loss_result(ok, 5) == 1.25);
  // The message is the CPU kernel's, from the same check function.
  kn::loss_status bad = ok;
  bad.bad_pos = 1;
  bad.bad_label = 4;
  const auto m = message_of<ltl::value_error>([&] { (void)cuda::detail::fused_loss_result(bad, 4); });
  REQUIRE(m.find("fused_loss: label 4 at position 1 is outside [0, 4)") != std::string::npos);
  const auto cpu_m = message_of<ltl::value_error>([] {
    const auto z = ltl::tensor<float>::zeros(shape{3, 4});
    const auto y = ltl::tensor<std::int64_t>::from({3}, {0, 4, 1});
    (void)ltl::cpu::fused_loss(z, y, ltl::loss_terms{}, static_cast<ltl::tensor<float>*>(nullptr));
  });
  REQUIRE(cpu_m == m);
  // A huge label survives the read-back exactly (it travels as an integer).
  bad.bad_label = std::int64_t{1} << 60;
  REQUIRE(message_of<ltl::value_error>([&] { (void)cuda::detail::fused_loss_result(bad, 4); })
              .find("label 1152921504606846976 at position 1") != std::string::npos);
  // With good labels, a non-positive normaliser is the next error; a bad label comes first.
  kn::loss_status zero = ok;
  zero.wsum = 0;
  REQUIRE(message_of<ltl::value_error>([&] { (void)cuda::detail::fused_loss_result(zero, 5); })
              .find("fused_loss: the labels' weights sum to 0") != std::string::npos);
  zero.bad_pos = 0;
  zero.bad_label = -1;
  REQUIRE(message_of<ltl::value_error>([&] { (void)cuda::detail::fused_loss_result(zero, 5); })
              .find("label -1 at position 0") != std::string::npos);
}

namespace {
constexpr cuda::settings settings_with(bool tf32, bool deterministic, std::size_t workspace) {
  cuda::settings s;
  s.allow_tf32 = tf32;
  s.deterministic = deterministic;
  s.max_workspace_bytes = workspace;
  return s;
}
}  // namespace

TEST_CASE("allow_tf32 maps to cuBLAS's TF32 math mode, else to its FP32-accurate default", "[cuda-host][settings]") {
  STATIC_REQUIRE(cuda::detail::cublas_math_mode(cuda::settings{}) == CUBLAS_DEFAULT_MATH);
  STATIC_REQUIRE(cuda::detail::cublas_math_mode(settings_with(true, true, 1 << 20)) == CUBLAS_TF32_TENSOR_OP_MATH);
  // Determinism and the workspace limit do not touch the math mode.
  STATIC_REQUIRE(cuda::detail::cublas_math_mode(settings_with(false, false, 0)) == CUBLAS_DEFAULT_MATH);
  STATIC_REQUIRE(cuda::detail::cublas_math_mode(settings_with(true, false, 0)) == CUBLAS_TF32_TENSOR_OP_MATH);
}

TEST_CASE("the cuBLAS handle follows allow_tf32 when the settings change", "[cuda][settings]") {
  LTL_REQUIRE_GPU();
  auto& ctx = cuda::context::current();
  const bool before = ctx.settings().allow_tf32;
  auto mode_now = [&] {
    cublasMath_t m{};
    LTL_CUBLAS_CHECK(cublasGetMathMode(ctx.cublas(), &m));
    return m;
  };
  ctx.settings().allow_tf32 = false;
  REQUIRE(mode_now() == CUBLAS_DEFAULT_MATH);
  ctx.settings().allow_tf32 = true;
  REQUIRE(mode_now() == CUBLAS_TF32_TENSOR_OP_MATH);
  ctx.settings().allow_tf32 = false;
  REQUIRE(mode_now() == CUBLAS_DEFAULT_MATH);
  ctx.settings().allow_tf32 = before;
}

TEST_CASE("the GPU fused loss checks labels on the device and forms Σw in the CPU's order", "[cuda][loss]") {
  LTL_REQUIRE_GPU();
  using gpu = cuda::device;
  // Class weights with many distinct bits, so that another summation order would show.
  const index_t B = 600, C = 300;
  ltl::rng g(11);
  ltl::tensor<double> z(shape{B, C});
  for (index_t i = 0; i < z.numel(); ++i) z.data()[i] = g.uniform(-2, 2);
  std::vector<std::int64_t> yv;
  for (index_t i = 0; i < B; ++i) yv.push_back(static_cast<std::int64_t>((i * 37) % C));
  const auto y = ltl::tensor<std::int64_t>::from({B}, yv);
  ltl::loss_terms t;
  for (index_t c = 0; c < C; ++c) t.weights.push_back(1.0 / (3.0 + static_cast<double>(c)) + 1e-3 * g.uniform(0, 1));
  // The value only depends on Σw through 1/Σw, the same bits on both sides when Σw is.
  double wsum = 0;
  for (auto v : yv) wsum += t.weights[static_cast<std::size_t>(v)];
  ltl::tensor<double> row_cpu(shape{B});
  (void)ltl::cpu::fused_loss(z, y, t, static_cast<ltl::tensor<double>*>(nullptr), &row_cpu);
  const auto zd = z.to<gpu>();
  const auto yd = y.to<gpu>();
  ltl::tensor<double, gpu> row_gpu(shape{B});
  const double got = cuda::fused_loss(zd, yd, t, static_cast<ltl::tensor<double, gpu>*>(nullptr), &row_gpu);
  // The loss is (rows summed in sum_fixed_order's order)·(1/Σw) with the CPU's Σw.
  const auto rows = row_gpu.to_vector();
  REQUIRE(got == kn::sum_fixed_order_host(rows.data(), B) * (1.0 / wsum));
  // A bad label anywhere (here the last) throws the CPU's error after one read-back.
  auto ybad = yv;
  ybad.back() = C;
  const auto m = message_of<ltl::value_error>([&] {
    (void)cuda::fused_loss(zd, ltl::tensor<std::int64_t>::from({B}, ybad).to<gpu>(), t,
                           static_cast<ltl::tensor<double, gpu>*>(nullptr));
  });
  REQUIRE(m.find("label 300 at position 599 is outside [0, 300)") != std::string::npos);
  // Several bad labels: the first is named, as on the CPU.
  ybad[10] = -5;
  REQUIRE(message_of<ltl::value_error>([&] {
            (void)cuda::fused_loss(zd, ltl::tensor<std::int64_t>::from({B}, ybad).to<gpu>(), t,
                                   static_cast<ltl::tensor<double, gpu>*>(nullptr));
          }).find("label -5 at position 10") != std::string::npos);
  // A given normaliser (data parallel) replaces Σw.
  ltl::loss_terms tn = t;
  tn.normalizer = 1234.5;
  const double with_norm = cuda::fused_loss(zd, yd, tn, static_cast<ltl::tensor<double, gpu>*>(nullptr), &row_gpu);
  const auto rows2 = row_gpu.to_vector();
  REQUIRE(with_norm == kn::sum_fixed_order_host(rows2.data(), B) * (1.0 / 1234.5));
}
