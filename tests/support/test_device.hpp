#pragma once
// ltl::testing::device: a device that is not the CPU type but runs the CPU's kernels.
//
// It exists to prove at compile time that code above the backends is generic over the device:
// a model, loss or optimiser instantiated for `testing::device` compiles only if every kernel it
// calls is reached through the device's namespace (argument-dependent lookup), never through
// `ltl::cpu::` or an `is_same_v<D, cpu::device>` shortcut. At run time it gives the CPU's
// results bit for bit, so tests compare the two devices exactly.
//
// Memory is host memory from the CPU's allocator, so tensors of the two device types can share
// it: each kernel here re-types its operands as CPU tensors with tensor::view_as_device (a view
// of the same storage, no copy), calls the CPU kernel, and re-types the results the same way.
// In-place kernels (accumulate, gemm's output, batch norm's running statistics, sgd_update,
// one_hot_into, the fused loss's gradient) therefore write into the caller's memory, as they
// do on the CPU. Moving a tensor between the devices with `to<>()` copies (both are host
// devices: the primary device_transfer's memcpy).
//
// Every kernel of backends/contract/kernels.hpp is here; the static_assert at the end checks
// that the set is complete (`ltl::compute_device<ltl::testing::device>`).

#include <ltlearn/backends/contract/kernels.hpp>
#include <ltlearn/backends/cpu/kernel_set.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace ltl::testing {

/// Host memory under a device type of its own (see the file comment).
struct device {
  static constexpr const char* name = "test";
  static constexpr bool is_host = true;
  static void* allocate(std::size_t bytes) { return cpu::device::allocate(bytes); }
  static void deallocate(void* p, std::size_t bytes) noexcept { cpu::device::deallocate(p, bytes); }
  static void copy(void* dst, const void* src, std::size_t bytes) { cpu::device::copy(dst, src, bytes); }
  static void zero(void* dst, std::size_t bytes) { cpu::device::zero(dst, bytes); }
};

template <class T>
using test_tensor = tensor<T, device>;
template <class T>
using cpu_tensor = tensor<T, cpu::device>;

/// The CPU view of a test-device tensor (same memory).
template <class T>
cpu_tensor<T> as_cpu(const test_tensor<T>& t) {
  return t.template view_as_device<cpu::device>();
}
/// The test-device view of a CPU tensor (same memory).
template <class T>
test_tensor<T> as_test(const cpu_tensor<T>& t) {
  return t.template view_as_device<device>();
}

// ---- elementwise ----------------------------------------------------------------------------
template <class T>
test_tensor<T> add(const test_tensor<T>& a, const test_tensor<T>& b) { return as_test(cpu::add(as_cpu(a), as_cpu(b))); }
template <class T>
test_tensor<T> sub(const test_tensor<T>& a, const test_tensor<T>& b) { return as_test(cpu::sub(as_cpu(a), as_cpu(b))); }
template <class T>
test_tensor<T> mul(const test_tensor<T>& a, const test_tensor<T>& b) { return as_test(cpu::mul(as_cpu(a), as_cpu(b))); }
template <class T>
test_tensor<T> div(const test_tensor<T>& a, const test_tensor<T>& b) { return as_test(cpu::div(as_cpu(a), as_cpu(b))); }
template <class T>
void accumulate(test_tensor<T>& dst, const test_tensor<T>& src) {
  auto d = as_cpu(dst);
  cpu::accumulate(d, as_cpu(src));
}
template <class T>
test_tensor<T> affine(const test_tensor<T>& x, T alpha, T beta) { return as_test(cpu::affine(as_cpu(x), alpha, beta)); }
template <class T>
test_tensor<T> relu_forward(const test_tensor<T>& x) { return as_test(cpu::relu_forward(as_cpu(x))); }
template <class T>
test_tensor<T> relu_backward(const test_tensor<T>& dy, const test_tensor<T>& y) {
  return as_test(cpu::relu_backward(as_cpu(dy), as_cpu(y)));
}
template <class T>
test_tensor<T> exp_forward(const test_tensor<T>& x) { return as_test(cpu::exp_forward(as_cpu(x))); }
template <class T>
test_tensor<T> log_forward(const test_tensor<T>& x) { return as_test(cpu::log_forward(as_cpu(x))); }
template <class T>
test_tensor<T> pow_forward(const test_tensor<T>& x, T p) { return as_test(cpu::pow_forward(as_cpu(x), p)); }
template <class T>
test_tensor<T> pow_backward(const test_tensor<T>& dy, const test_tensor<T>& x, T p) {
  return as_test(cpu::pow_backward(as_cpu(dy), as_cpu(x), p));
}
template <class T>
test_tensor<T> leaky_relu_forward(const test_tensor<T>& x, T slope) {
  return as_test(cpu::leaky_relu_forward(as_cpu(x), slope));
}
template <class T>
test_tensor<T> leaky_relu_backward(const test_tensor<T>& dy, const test_tensor<T>& x, T slope) {
  return as_test(cpu::leaky_relu_backward(as_cpu(dy), as_cpu(x), slope));
}

// ---- reductions, GEMM ------------------------------------------------------------------------
template <class T>
test_tensor<T> sum_dims_keep(const test_tensor<T>& x, const std::vector<bool>& reduce) {
  return as_test(cpu::sum_dims_keep(as_cpu(x), reduce));
}
template <class T>
test_tensor<T> sum_to(const test_tensor<T>& g, const shape& target) { return as_test(cpu::sum_to(as_cpu(g), target)); }
template <class T>
void gemm(const test_tensor<T>& a, const test_tensor<T>& b, test_tensor<T>& c, T alpha, T beta) {
  auto cc = as_cpu(c);
  cpu::gemm(as_cpu(a), as_cpu(b), cc, alpha, beta);
}
template <class T>
test_tensor<T> matmul(const test_tensor<T>& a, const test_tensor<T>& b) { return as_test(cpu::matmul(as_cpu(a), as_cpu(b))); }

// ---- softmax family --------------------------------------------------------------------------
template <class T>
test_tensor<T> softmax_forward(const test_tensor<T>& x, int dim) { return as_test(cpu::softmax_forward(as_cpu(x), dim)); }
template <class T>
test_tensor<T> log_softmax_forward(const test_tensor<T>& x, int dim) {
  return as_test(cpu::log_softmax_forward(as_cpu(x), dim));
}
template <class T>
test_tensor<T> softmax_backward(const test_tensor<T>& g, const test_tensor<T>& y, int dim) {
  return as_test(cpu::softmax_backward(as_cpu(g), as_cpu(y), dim));
}
template <class T>
test_tensor<T> log_softmax_backward(const test_tensor<T>& g, const test_tensor<T>& y, int dim) {
  return as_test(cpu::log_softmax_backward(as_cpu(g), as_cpu(y), dim));
}
template <class T>
std::pair<test_tensor<T>, test_tensor<T>> l2_normalize_forward(const test_tensor<T>& x, int dim, T eps) {
  auto [y, norms] = cpu::l2_normalize_forward(as_cpu(x), dim, eps);
  return {as_test(y), as_test(norms)};
}
template <class T>
test_tensor<T> l2_normalize_backward(const test_tensor<T>& g, const test_tensor<T>& y, const test_tensor<T>& norms,
                                     int dim, T eps) {
  return as_test(cpu::l2_normalize_backward(as_cpu(g), as_cpu(y), as_cpu(norms), dim, eps));
}

// ---- batch norm ------------------------------------------------------------------------------
template <class T>
batch_norm_forward_result<T, device> batch_norm2d_forward(const test_tensor<T>& x, const test_tensor<T>& weight,
                                                          const test_tensor<T>& bias, test_tensor<T>& running_mean,
                                                          test_tensor<T>& running_var, const batch_norm_options& opt,
                                                          const test_tensor<T>& residual = {}) {
  auto rm = as_cpu(running_mean), rv = as_cpu(running_var);  // updated in place, in shared memory
  auto r = cpu::batch_norm2d_forward(as_cpu(x), as_cpu(weight), as_cpu(bias), rm, rv, opt, as_cpu(residual));
  return {as_test(r.y), as_test(r.mean), as_test(r.invstd)};
}
template <class T>
batch_norm_backward_result<T, device> batch_norm2d_backward(const test_tensor<T>& dy, const test_tensor<T>& x,
                                                            const test_tensor<T>& weight, const test_tensor<T>& mean,
                                                            const test_tensor<T>& invstd, bool training,
                                                            std::array<bool, 3> need,
                                                            const test_tensor<T>& relu_out = {},
                                                            bool need_masked = false) {
  auto r = cpu::batch_norm2d_backward(as_cpu(dy), as_cpu(x), as_cpu(weight), as_cpu(mean), as_cpu(invstd), training,
                                      need, as_cpu(relu_out), need_masked);
  return {as_test(r.dx), as_test(r.dweight), as_test(r.dbias), as_test(r.dmasked)};
}

// ---- pooling ---------------------------------------------------------------------------------
template <class T>
max_pool2d_result<T, device> max_pool2d_forward(const test_tensor<T>& x, const pool2d_options& opt) {
  auto r = cpu::max_pool2d_forward(as_cpu(x), opt);
  return {as_test(r.y), as_test(r.indices)};
}
template <class T>
test_tensor<T> max_pool2d_backward(const test_tensor<T>& dy, const test_tensor<std::int64_t>& indices,
                                   const shape& x_shape) {
  return as_test(cpu::max_pool2d_backward(as_cpu(dy), as_cpu(indices), x_shape));
}
template <class T>
test_tensor<T> avg_pool2d_forward(const test_tensor<T>& x, const pool2d_options& opt) {
  return as_test(cpu::avg_pool2d_forward(as_cpu(x), opt));
}
template <class T>
test_tensor<T> avg_pool2d_backward(const test_tensor<T>& dy, const shape& x_shape, const pool2d_options& opt) {
  return as_test(cpu::avg_pool2d_backward(as_cpu(dy), x_shape, opt));
}
template <class T>
test_tensor<T> global_avg_pool_forward(const test_tensor<T>& x) { return as_test(cpu::global_avg_pool_forward(as_cpu(x))); }
template <class T>
test_tensor<T> global_avg_pool_backward(const test_tensor<T>& dy, const shape& x_shape) {
  return as_test(cpu::global_avg_pool_backward(as_cpu(dy), x_shape));
}

// ---- convolution -----------------------------------------------------------------------------
template <class T>
test_tensor<T> conv2d_forward(const test_tensor<T>& x, const test_tensor<T>& w, const test_tensor<T>& bias,
                              const conv2d_options& opt) {
  return as_test(cpu::conv2d_forward(as_cpu(x), as_cpu(w), as_cpu(bias), opt));
}
template <class T>
test_tensor<T> conv2d_forward_epilogue(const test_tensor<T>& x, const test_tensor<T>& w, const conv2d_options& opt,
                                       const test_tensor<T>& scale, const test_tensor<T>& shift,
                                       const test_tensor<T>& residual, bool relu) {
  return as_test(cpu::conv2d_forward_epilogue(as_cpu(x), as_cpu(w), opt, as_cpu(scale), as_cpu(shift),
                                              as_cpu(residual), relu));
}
template <class T>
test_tensor<T> conv2d_backward_input(const test_tensor<T>& dy, const test_tensor<T>& w, const shape& x_shape,
                                     const conv2d_options& opt) {
  return as_test(cpu::conv2d_backward_input(as_cpu(dy), as_cpu(w), x_shape, opt));
}
template <class T>
test_tensor<T> conv2d_backward_weight(const test_tensor<T>& dy, const test_tensor<T>& x, const shape& w_shape,
                                      const conv2d_options& opt) {
  return as_test(cpu::conv2d_backward_weight(as_cpu(dy), as_cpu(x), w_shape, opt));
}
template <class T>
test_tensor<T> conv2d_backward_bias(const test_tensor<T>& dy) { return as_test(cpu::conv2d_backward_bias(as_cpu(dy))); }

// ---- indexing --------------------------------------------------------------------------------
template <class T>
test_tensor<T> index_select_forward(const test_tensor<T>& x, int dim, const test_tensor<std::int64_t>& indices) {
  return as_test(cpu::index_select_forward(as_cpu(x), dim, as_cpu(indices)));
}
template <class T>
test_tensor<T> index_select_backward(const test_tensor<T>& g, int dim, const test_tensor<std::int64_t>& indices,
                                     const shape& x_shape) {
  return as_test(cpu::index_select_backward(as_cpu(g), dim, as_cpu(indices), x_shape));
}
template <class T>
test_tensor<T> gather_forward(const test_tensor<T>& x, const test_tensor<std::int64_t>& labels) {
  return as_test(cpu::gather_forward(as_cpu(x), as_cpu(labels)));
}
template <class T>
test_tensor<T> gather_backward(const test_tensor<T>& g, const test_tensor<std::int64_t>& labels, index_t classes) {
  return as_test(cpu::gather_backward(as_cpu(g), as_cpu(labels), classes));
}
template <class T>
void one_hot_into(test_tensor<T>& out, const test_tensor<std::int64_t>& labels) {
  auto o = as_cpu(out);
  cpu::one_hot_into(o, as_cpu(labels));
}
template <class T>
test_tensor<T> lerp_mix_forward(const test_tensor<T>& a, const test_tensor<T>& b, const test_tensor<T>& lambda,
                                const test_tensor<std::int64_t>& perm) {
  return as_test(cpu::lerp_mix_forward(as_cpu(a), as_cpu(b), as_cpu(lambda), as_cpu(perm)));
}
template <class T>
test_tensor<T> lerp_mix_backward_a(const test_tensor<T>& g, const test_tensor<T>& lambda) {
  return as_test(cpu::lerp_mix_backward_a(as_cpu(g), as_cpu(lambda)));
}
template <class T>
test_tensor<T> lerp_mix_backward_b(const test_tensor<T>& g, const test_tensor<T>& lambda,
                                   const test_tensor<std::int64_t>& perm) {
  return as_test(cpu::lerp_mix_backward_b(as_cpu(g), as_cpu(lambda), as_cpu(perm)));
}
template <class T>
test_tensor<T> shortcut_a_forward(const test_tensor<T>& x, index_t out_channels, index_t stride) {
  return as_test(cpu::shortcut_a_forward(as_cpu(x), out_channels, stride));
}
template <class T>
test_tensor<T> shortcut_a_backward(const test_tensor<T>& g, const shape& x_shape, index_t stride) {
  return as_test(cpu::shortcut_a_backward(as_cpu(g), x_shape, stride));
}
template <class T>
index_t argmax_matches(const test_tensor<T>& logits, const test_tensor<std::int64_t>& labels) {
  return cpu::argmax_matches(as_cpu(logits), as_cpu(labels));
}

// ---- fused loss, optimiser -------------------------------------------------------------------
template <class T>
double fused_loss(const test_tensor<T>& z, const test_tensor<std::int64_t>& y, const loss_terms& terms,
                  test_tensor<T>* dz, test_tensor<T>* row_loss = nullptr, const test_tensor<T>* sample_w = nullptr) {
  // The CPU kernel writes through dz / row_loss: views of the caller's memory.
  cpu_tensor<T> dzc = dz ? as_cpu(*dz) : cpu_tensor<T>(), rowc = row_loss ? as_cpu(*row_loss) : cpu_tensor<T>();
  const cpu_tensor<T> swc = sample_w ? as_cpu(*sample_w) : cpu_tensor<T>();
  return cpu::fused_loss(as_cpu(z), as_cpu(y), terms, dz ? &dzc : nullptr, row_loss ? &rowc : nullptr,
                         sample_w ? &swc : nullptr);
}
template <class T>
void sgd_update(test_tensor<T>& w, const test_tensor<T>& g, test_tensor<T>& buf, const sgd_step<T>& s) {
  auto wc = as_cpu(w), bc = as_cpu(buf);
  cpu::sgd_update(wc, as_cpu(g), bc, s);
}

static_assert(compute_device<device>, "ltl::testing::device lacks a kernel of backends/contract/kernels.hpp");

}  // namespace ltl::testing
