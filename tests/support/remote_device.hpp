#pragma once
// ltl::testing::remote::device: a device whose memory the host cannot read, running the CPU's
// kernels.
//
// ltl::testing::device (test_device.hpp) proves that code above the backends reaches kernels
// through the device type, but its memory is host memory, so code that reads a device tensor's
// elements on the host (`t.data()[i]`, a host loop over a D-tensor) still works there and breaks
// only on a GPU. This device is not a host device (`is_host = false`) and its addresses are
// not host addresses: allocate returns the CPU block's address with bit 62 set, a non-canonical
// address on x86-64 and AArch64, so a host dereference faults at once (SIGSEGV) instead of
// reading plausible numbers. Only the code here, which plays the part of the device, clears
// the bit.
//
// Its kernels behave like a discrete accelerator's driver would: each copies its operands to
// CPU tensors (device_transfer, as a download), runs the CPU kernel there, and uploads the
// results; in-place kernels (accumulate, gemm's output, batch norm's running statistics,
// one_hot_into, the fused loss's outputs, sgd_update) copy their written operands back into
// the caller's tensors. Results are the CPU's bit for bit: the CPU kernels see the same values, and
// transposed operands as transposed views (see host()), as they pick their paths by layout.
// The tensor hooks of a non-host device (fill_device, strided_copy) and the transfers to and
// from cpu::device are here too; there is no transfer to ltl::testing::device.
//
// Like a GPU's, its uploads normalise image bytes where they arrive (host_upload::normalized,
// the normalizes_bytes concept): the bytes cross as bytes and the "device" turns them into
// floats, so loaders hand it byte batches, as they do a GPU; normalized() counts its calls
// (byte_uploads) for tests to see which path a run took.

#include <ltlearn/backends/contract/kernels.hpp>
#include <ltlearn/backends/contract/upload.hpp>
#include <ltlearn/backends/cpu/kernel_set.hpp>
#include <ltlearn/data/batch.hpp>
#include <ltlearn/detail/strided.hpp>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <utility>
#include <vector>

namespace ltl::testing::remote {

/// Host memory behind addresses the host cannot dereference (see the file comment).
struct device {
  static constexpr const char* name = "remote";
  static constexpr bool is_host = false;
  /// Set in every address this device hands out; the CPU block's address without it.
  static constexpr std::uintptr_t tag = std::uintptr_t{1} << 62;

  static void* allocate(std::size_t bytes) { return tagged(cpu::device::allocate(bytes)); }
  static void deallocate(void* p, std::size_t bytes) noexcept { cpu::device::deallocate(untagged(p), bytes); }
  static void copy(void* dst, const void* src, std::size_t bytes) {
    if (bytes) std::memcpy(untagged(dst), untagged(src), bytes);
  }
  static void zero(void* dst, std::size_t bytes) {
    if (bytes) std::memset(untagged(dst), 0, bytes);
  }

  /// The host address behind a device address (null stays null).
  template <class P>
  static P* untagged(P* p) noexcept {
    if (!p) return p;
    const auto a = reinterpret_cast<std::uintptr_t>(p);
    // An untagged address here is a host pointer handed to the device: a bug in the caller.
    if (!(a & tag)) {
      std::fputs("ltl::testing::remote::device: a host address was used as a device address\n", stderr);
      std::abort();
    }
    return reinterpret_cast<P*>(a & ~tag);
  }
  /// The device address of a host block.
  static void* tagged(void* p) noexcept { return reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(p) | tag); }
};

}  // namespace ltl::testing::remote

namespace ltl {
/// Upload: host memory to the remote test device.
template <>
struct device_transfer<testing::remote::device, cpu::device> {
  static void copy(void* dst, const void* src, std::size_t bytes) {
    if (bytes) std::memcpy(testing::remote::device::untagged(dst), src, bytes);
  }
};
/// Download: the remote test device's memory to the host.
template <>
struct device_transfer<cpu::device, testing::remote::device> {
  static void copy(void* dst, const void* src, std::size_t bytes) {
    if (bytes) std::memcpy(dst, testing::remote::device::untagged(src), bytes);
  }
};
}  // namespace ltl

namespace ltl::testing::remote {

template <class T>
using remote_tensor = tensor<T, device>;
template <class T>
using cpu_tensor = tensor<T, cpu::device>;

/// A host copy of a device tensor (undefined stays undefined): the download before a kernel.
/// A transposed (permuted dense) view arrives as the same view of a dense host copy, because
/// CPU kernels choose their paths by layout (gemm reads a transposed operand as column-major)
/// and the results must stay the CPU's bit for bit.
template <class T>
cpu_tensor<T> host(const remote_tensor<T>& t) {
  if (!t.defined()) return {};
  remote_tensor<T> v = t;
  std::vector<std::pair<int, int>> swaps;  // transposes that sort the strides descending
  for (int i = 0; i < v.dim(); ++i) {
    int largest = i;
    for (int j = i + 1; j < v.dim(); ++j)
      if (v.strides()[j] > v.strides()[largest]) largest = j;
    if (largest != i) {
      v = v.transpose(i, largest);
      swaps.emplace_back(i, largest);
    }
  }
  if (swaps.empty() || !v.is_contiguous()) return t.template to<cpu::device>();
  cpu_tensor<T> h = v.template to<cpu::device>();
  for (auto it = swaps.rbegin(); it != swaps.rend(); ++it) h = h.transpose(it->first, it->second);
  return h;
}
/// A device copy of a kernel's host result (undefined stays undefined): the upload after it.
template <class T>
remote_tensor<T> back(const cpu_tensor<T>& t) {
  return t.defined() ? t.template to<device>() : remote_tensor<T>();
}
/// Uploads the host copy `h` an in-place kernel wrote into the device tensor it came from.
template <class T>
void write_back(remote_tensor<T>& dst, const cpu_tensor<T>& h) {
  dst.copy_(back(h));
}

// ---- tensor hooks of a non-host device ------------------------------------------------------
/// tensor::fill_ on this device.
template <class T>
void fill_device(remote_tensor<T>& t, T v) {
  T* p = device::untagged(t.data());
  detail::strided_for<1>(t.sizes(), {t.strides()}, 0, t.numel(), [&](const auto& o) { p[o[0]] = v; });
}
/// tensor::copy_ on this device between views of one shape with any strides.
template <class T>
void strided_copy(remote_tensor<T>& dst, const remote_tensor<T>& src) {
  T* d = device::untagged(dst.data());
  const T* s = device::untagged(src.data());
  detail::strided_for<2>(dst.sizes(), {dst.strides(), src.strides()}, 0, dst.numel(),
                         [&](const auto& o) { d[o[0]] = s[o[1]]; });
}

// ---- elementwise ----------------------------------------------------------------------------
template <class T>
remote_tensor<T> add(const remote_tensor<T>& a, const remote_tensor<T>& b) { return back(cpu::add(host(a), host(b))); }
template <class T>
remote_tensor<T> sub(const remote_tensor<T>& a, const remote_tensor<T>& b) { return back(cpu::sub(host(a), host(b))); }
template <class T>
remote_tensor<T> mul(const remote_tensor<T>& a, const remote_tensor<T>& b) { return back(cpu::mul(host(a), host(b))); }
template <class T>
remote_tensor<T> div(const remote_tensor<T>& a, const remote_tensor<T>& b) { return back(cpu::div(host(a), host(b))); }
template <class T>
void accumulate(remote_tensor<T>& dst, const remote_tensor<T>& src) {
  auto d = host(dst);
  cpu::accumulate(d, host(src));
  write_back(dst, d);
}
template <class T>
remote_tensor<T> affine(const remote_tensor<T>& x, T alpha, T beta) { return back(cpu::affine(host(x), alpha, beta)); }
template <class T>
remote_tensor<T> relu_forward(const remote_tensor<T>& x) { return back(cpu::relu_forward(host(x))); }
template <class T>
remote_tensor<T> relu_backward(const remote_tensor<T>& dy, const remote_tensor<T>& y) {
  return back(cpu::relu_backward(host(dy), host(y)));
}
template <class T>
remote_tensor<T> exp_forward(const remote_tensor<T>& x) { return back(cpu::exp_forward(host(x))); }
template <class T>
remote_tensor<T> log_forward(const remote_tensor<T>& x) { return back(cpu::log_forward(host(x))); }
template <class T>
remote_tensor<T> pow_forward(const remote_tensor<T>& x, T p) { return back(cpu::pow_forward(host(x), p)); }
template <class T>
remote_tensor<T> pow_backward(const remote_tensor<T>& dy, const remote_tensor<T>& x, T p) {
  return back(cpu::pow_backward(host(dy), host(x), p));
}
template <class T>
remote_tensor<T> leaky_relu_forward(const remote_tensor<T>& x, T slope) {
  return back(cpu::leaky_relu_forward(host(x), slope));
}
template <class T>
remote_tensor<T> leaky_relu_backward(const remote_tensor<T>& dy, const remote_tensor<T>& x, T slope) {
  return back(cpu::leaky_relu_backward(host(dy), host(x), slope));
}

// ---- reductions, GEMM ------------------------------------------------------------------------
template <class T>
remote_tensor<T> sum_dims_keep(const remote_tensor<T>& x, const std::vector<bool>& reduce) {
  return back(cpu::sum_dims_keep(host(x), reduce));
}
template <class T>
remote_tensor<T> sum_to(const remote_tensor<T>& g, const shape& target) { return back(cpu::sum_to(host(g), target)); }
template <class T>
void gemm(const remote_tensor<T>& a, const remote_tensor<T>& b, remote_tensor<T>& c, T alpha, T beta) {
  auto cc = host(c);
  cpu::gemm(host(a), host(b), cc, alpha, beta);
  write_back(c, cc);
}
template <class T>
remote_tensor<T> matmul(const remote_tensor<T>& a, const remote_tensor<T>& b) { return back(cpu::matmul(host(a), host(b))); }

// ---- softmax family --------------------------------------------------------------------------
template <class T>
remote_tensor<T> softmax_forward(const remote_tensor<T>& x, int dim) { return back(cpu::softmax_forward(host(x), dim)); }
template <class T>
remote_tensor<T> log_softmax_forward(const remote_tensor<T>& x, int dim) {
  return back(cpu::log_softmax_forward(host(x), dim));
}
template <class T>
remote_tensor<T> softmax_backward(const remote_tensor<T>& g, const remote_tensor<T>& y, int dim) {
  return back(cpu::softmax_backward(host(g), host(y), dim));
}
template <class T>
remote_tensor<T> log_softmax_backward(const remote_tensor<T>& g, const remote_tensor<T>& y, int dim) {
  return back(cpu::log_softmax_backward(host(g), host(y), dim));
}
template <class T>
std::pair<remote_tensor<T>, remote_tensor<T>> l2_normalize_forward(const remote_tensor<T>& x, int dim, T eps) {
  auto [y, norms] = cpu::l2_normalize_forward(host(x), dim, eps);
  return {back(y), back(norms)};
}
template <class T>
remote_tensor<T> l2_normalize_backward(const remote_tensor<T>& g, const remote_tensor<T>& y, const remote_tensor<T>& norms,
                                     int dim, T eps) {
  return back(cpu::l2_normalize_backward(host(g), host(y), host(norms), dim, eps));
}

// ---- batch norm ------------------------------------------------------------------------------
template <class T>
batch_norm_forward_result<T, device> batch_norm2d_forward(const remote_tensor<T>& x, const remote_tensor<T>& weight,
                                                          const remote_tensor<T>& bias, remote_tensor<T>& running_mean,
                                                          remote_tensor<T>& running_var, const batch_norm_options& opt,
                                                          const remote_tensor<T>& residual = {}) {
  auto rm = host(running_mean), rv = host(running_var);  // updated in place on the host copies
  auto r = cpu::batch_norm2d_forward(host(x), host(weight), host(bias), rm, rv, opt, host(residual));
  write_back(running_mean, rm);
  write_back(running_var, rv);
  return {back(r.y), back(r.mean), back(r.invstd)};
}
template <class T>
batch_norm_backward_result<T, device> batch_norm2d_backward(const remote_tensor<T>& dy, const remote_tensor<T>& x,
                                                            const remote_tensor<T>& weight, const remote_tensor<T>& mean,
                                                            const remote_tensor<T>& invstd, bool training,
                                                            std::array<bool, 3> need,
                                                            const remote_tensor<T>& relu_out = {},
                                                            bool need_masked = false) {
  auto r = cpu::batch_norm2d_backward(host(dy), host(x), host(weight), host(mean), host(invstd), training,
                                      need, host(relu_out), need_masked);
  return {back(r.dx), back(r.dweight), back(r.dbias), back(r.dmasked)};
}

// ---- pooling ---------------------------------------------------------------------------------
template <class T>
max_pool2d_result<T, device> max_pool2d_forward(const remote_tensor<T>& x, const pool2d_options& opt) {
  auto r = cpu::max_pool2d_forward(host(x), opt);
  return {back(r.y), back(r.indices)};
}
template <class T>
remote_tensor<T> max_pool2d_backward(const remote_tensor<T>& dy, const remote_tensor<std::int64_t>& indices,
                                   const shape& x_shape) {
  return back(cpu::max_pool2d_backward(host(dy), host(indices), x_shape));
}
template <class T>
remote_tensor<T> avg_pool2d_forward(const remote_tensor<T>& x, const pool2d_options& opt) {
  return back(cpu::avg_pool2d_forward(host(x), opt));
}
template <class T>
remote_tensor<T> avg_pool2d_backward(const remote_tensor<T>& dy, const shape& x_shape, const pool2d_options& opt) {
  return back(cpu::avg_pool2d_backward(host(dy), x_shape, opt));
}
template <class T>
remote_tensor<T> global_avg_pool_forward(const remote_tensor<T>& x) { return back(cpu::global_avg_pool_forward(host(x))); }
template <class T>
remote_tensor<T> global_avg_pool_backward(const remote_tensor<T>& dy, const shape& x_shape) {
  return back(cpu::global_avg_pool_backward(host(dy), x_shape));
}

// ---- convolution -----------------------------------------------------------------------------
template <class T>
remote_tensor<T> conv2d_forward(const remote_tensor<T>& x, const remote_tensor<T>& w, const remote_tensor<T>& bias,
                              const conv2d_options& opt) {
  return back(cpu::conv2d_forward(host(x), host(w), host(bias), opt));
}
template <class T>
remote_tensor<T> conv2d_forward_epilogue(const remote_tensor<T>& x, const remote_tensor<T>& w, const conv2d_options& opt,
                                       const remote_tensor<T>& scale, const remote_tensor<T>& shift,
                                       const remote_tensor<T>& residual, bool relu) {
  return back(cpu::conv2d_forward_epilogue(host(x), host(w), opt, host(scale), host(shift),
                                              host(residual), relu));
}
template <class T>
remote_tensor<T> conv2d_backward_input(const remote_tensor<T>& dy, const remote_tensor<T>& w, const shape& x_shape,
                                     const conv2d_options& opt) {
  return back(cpu::conv2d_backward_input(host(dy), host(w), x_shape, opt));
}
template <class T>
remote_tensor<T> conv2d_backward_weight(const remote_tensor<T>& dy, const remote_tensor<T>& x, const shape& w_shape,
                                      const conv2d_options& opt) {
  return back(cpu::conv2d_backward_weight(host(dy), host(x), w_shape, opt));
}
template <class T>
remote_tensor<T> conv2d_backward_bias(const remote_tensor<T>& dy) { return back(cpu::conv2d_backward_bias(host(dy))); }

// ---- indexing --------------------------------------------------------------------------------
template <class T>
remote_tensor<T> index_select_forward(const remote_tensor<T>& x, int dim, const remote_tensor<std::int64_t>& indices) {
  return back(cpu::index_select_forward(host(x), dim, host(indices)));
}
template <class T>
remote_tensor<T> index_select_backward(const remote_tensor<T>& g, int dim, const remote_tensor<std::int64_t>& indices,
                                     const shape& x_shape) {
  return back(cpu::index_select_backward(host(g), dim, host(indices), x_shape));
}
template <class T>
remote_tensor<T> gather_forward(const remote_tensor<T>& x, const remote_tensor<std::int64_t>& labels) {
  return back(cpu::gather_forward(host(x), host(labels)));
}
template <class T>
remote_tensor<T> gather_backward(const remote_tensor<T>& g, const remote_tensor<std::int64_t>& labels, index_t classes) {
  return back(cpu::gather_backward(host(g), host(labels), classes));
}
template <class T>
void one_hot_into(remote_tensor<T>& out, const remote_tensor<std::int64_t>& labels) {
  auto o = host(out);
  cpu::one_hot_into(o, host(labels));
  write_back(out, o);
}
template <class T>
remote_tensor<T> lerp_mix_forward(const remote_tensor<T>& a, const remote_tensor<T>& b, const remote_tensor<T>& lambda,
                                const remote_tensor<std::int64_t>& perm) {
  return back(cpu::lerp_mix_forward(host(a), host(b), host(lambda), host(perm)));
}
template <class T>
remote_tensor<T> lerp_mix_backward_a(const remote_tensor<T>& g, const remote_tensor<T>& lambda) {
  return back(cpu::lerp_mix_backward_a(host(g), host(lambda)));
}
template <class T>
remote_tensor<T> lerp_mix_backward_b(const remote_tensor<T>& g, const remote_tensor<T>& lambda,
                                   const remote_tensor<std::int64_t>& perm) {
  return back(cpu::lerp_mix_backward_b(host(g), host(lambda), host(perm)));
}
template <class T>
remote_tensor<T> shortcut_a_forward(const remote_tensor<T>& x, index_t out_channels, index_t stride) {
  return back(cpu::shortcut_a_forward(host(x), out_channels, stride));
}
template <class T>
remote_tensor<T> shortcut_a_backward(const remote_tensor<T>& g, const shape& x_shape, index_t stride) {
  return back(cpu::shortcut_a_backward(host(g), x_shape, stride));
}
template <class T>
index_t argmax_matches(const remote_tensor<T>& logits, const remote_tensor<std::int64_t>& labels) {
  return cpu::argmax_matches(host(logits), host(labels));
}

// ---- fused loss, optimiser -------------------------------------------------------------------
template <class T>
double fused_loss(const remote_tensor<T>& z, const remote_tensor<std::int64_t>& y, const loss_terms& terms,
                  remote_tensor<T>* dz, remote_tensor<T>* row_loss = nullptr, const remote_tensor<T>* sample_w = nullptr) {
  // The CPU kernel writes into host copies of dz / row_loss, which go back afterwards.
  cpu_tensor<T> dzc = dz ? host(*dz) : cpu_tensor<T>(), rowc = row_loss ? host(*row_loss) : cpu_tensor<T>();
  const cpu_tensor<T> swc = sample_w ? host(*sample_w) : cpu_tensor<T>();
  const double loss = cpu::fused_loss(host(z), host(y), terms, dz ? &dzc : nullptr, row_loss ? &rowc : nullptr,
                                      sample_w ? &swc : nullptr);
  if (dz) write_back(*dz, dzc);
  if (row_loss) write_back(*row_loss, rowc);
  return loss;
}
template <class T>
void sgd_update(remote_tensor<T>& w, const remote_tensor<T>& g, remote_tensor<T>& buf, const sgd_step<T>& s) {
  auto wc = host(w), bc = host(buf);
  cpu::sgd_update(wc, host(g), bc, s);
  write_back(w, wc);
  write_back(buf, bc);
}

static_assert(compute_device<device>, "ltl::testing::remote::device lacks a kernel of backends/contract/kernels.hpp");
}  // namespace ltl::testing::remote

namespace ltl {
/// Uploads to the remote test device, normalising image bytes on the "device" (file comment).
template <>
struct host_upload<testing::remote::device> {
  using remote = testing::remote::device;
  template <class T>
  static tensor<T, remote> to_device(const tensor<T, host_device>& host) {
    return host.template to<remote>();
  }
  /// The bytes go up as bytes; the device's "kernel" (a download, data::to_floats, an upload,
  /// as every kernel here) turns them into the normalised floats.
  static tensor<float, remote> normalized(const tensor<std::uint8_t, host_device>& pixels,
                                          std::span<const double> mean, std::span<const double> stddev) {
    byte_uploads.fetch_add(1);
    const tensor<std::uint8_t, remote> on_device = pixels.contiguous().template to<remote>();
    const data::byte_images b{testing::remote::host(on_device),
                              data::normalize{{mean.begin(), mean.end()}, {stddev.begin(), stddev.end()}}};
    return testing::remote::back(data::to_floats<float>(b));
  }
  /// Calls of normalized() so far (all threads).
  static inline std::atomic<long> byte_uploads{0};
};
}  // namespace ltl
