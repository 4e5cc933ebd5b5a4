#pragma once
// Archetypes of backends/contract/kernels.hpp: the per-area kernel concepts, kernel_set and
// compute_device. The archetype device `kernel_device<Area, Drop>` is a device whose memory the
// host cannot address (so tensor_kernels asks for its hooks); its kernels are free function
// templates in this namespace, found by argument-dependent lookup on tensor<T, kernel_device>
// exactly as the ops layer finds a backend's. Kernel i of area `Area` is removed when bit i of
// `Drop` is set; kernels of other areas are always present. The kernels are declared, never
// defined: the concepts only check the calls, and nothing here is run.
#include "support/archetype.hpp"

#include <ltlearn/backends/contract/kernels.hpp>
#include <ltlearn/backends/cpu/kernel_set.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <utility>
#include <vector>

namespace ltl_test::kernels {

/// The areas of backends/contract/kernels.hpp, in the order of the file (a namespace of their own:
/// some share a kernel's name).
namespace area {
enum : unsigned { none, tensor_hooks, elementwise, reduction, gemm, softmax, batch_norm, pooling, conv, indexing, loss, optimiser };
}

/// A non-host device tag: the memory requirements of ltl::device, no kernels of its own.
template <unsigned Area = area::none, unsigned Drop = 0>
struct kernel_device {
  static constexpr const char* name = "kernel archetype";
  static constexpr bool is_host = false;
  static void* allocate(std::size_t n) { return ::operator new(n); }
  static void deallocate(void* p, std::size_t) { ::operator delete(p); }
  static void copy(void* dst, const void* src, std::size_t n) { std::memcpy(dst, src, n); }
  static void zero(void* p, std::size_t n) { std::memset(p, 0, n); }
};

/// A tensor on the archetype device.
template <class T, unsigned A, unsigned Dr>
using kt = ltl::tensor<T, kernel_device<A, Dr>>;

/// Whether kernel `Bit` of area `Area` is present on kernel_device<A, Dr>.
template <unsigned A, unsigned Dr, unsigned Area, unsigned Bit>
inline constexpr bool has = A != Area || keep<Dr, Bit>;

// The kernels, one declaration per requirement of each concept (same order, same bit).
#define LTL_ARCHETYPE_KERNEL(area_, bit_)      \
  template <class T, unsigned A, unsigned Dr> \
    requires has<A, Dr, area::area_, bit_>

// tensor_kernels: 0 fill_device, 1 strided_copy
LTL_ARCHETYPE_KERNEL(tensor_hooks, 0) void fill_device(kt<T, A, Dr>&, T);
LTL_ARCHETYPE_KERNEL(tensor_hooks, 1) void strided_copy(kt<T, A, Dr>&, const kt<T, A, Dr>&);

// elementwise_kernels: 0 add … 13 leaky_relu_backward
LTL_ARCHETYPE_KERNEL(elementwise, 0) kt<T, A, Dr> add(const kt<T, A, Dr>&, const kt<T, A, Dr>&);
LTL_ARCHETYPE_KERNEL(elementwise, 1) kt<T, A, Dr> sub(const kt<T, A, Dr>&, const kt<T, A, Dr>&);
LTL_ARCHETYPE_KERNEL(elementwise, 2) kt<T, A, Dr> mul(const kt<T, A, Dr>&, const kt<T, A, Dr>&);
LTL_ARCHETYPE_KERNEL(elementwise, 3) kt<T, A, Dr> div(const kt<T, A, Dr>&, const kt<T, A, Dr>&);
LTL_ARCHETYPE_KERNEL(elementwise, 4) void accumulate(kt<T, A, Dr>&, const kt<T, A, Dr>&);
LTL_ARCHETYPE_KERNEL(elementwise, 5) kt<T, A, Dr> affine(const kt<T, A, Dr>&, T, T);
LTL_ARCHETYPE_KERNEL(elementwise, 6) kt<T, A, Dr> relu_forward(const kt<T, A, Dr>&);
LTL_ARCHETYPE_KERNEL(elementwise, 7) kt<T, A, Dr> relu_backward(const kt<T, A, Dr>&, const kt<T, A, Dr>&);
LTL_ARCHETYPE_KERNEL(elementwise, 8) kt<T, A, Dr> exp_forward(const kt<T, A, Dr>&);
LTL_ARCHETYPE_KERNEL(elementwise, 9) kt<T, A, Dr> log_forward(const kt<T, A, Dr>&);
LTL_ARCHETYPE_KERNEL(elementwise, 10) kt<T, A, Dr> pow_forward(const kt<T, A, Dr>&, T);
LTL_ARCHETYPE_KERNEL(elementwise, 11) kt<T, A, Dr> pow_backward(const kt<T, A, Dr>&, const kt<T, A, Dr>&, T);
LTL_ARCHETYPE_KERNEL(elementwise, 12) kt<T, A, Dr> leaky_relu_forward(const kt<T, A, Dr>&, T);
LTL_ARCHETYPE_KERNEL(elementwise, 13) kt<T, A, Dr> leaky_relu_backward(const kt<T, A, Dr>&, const kt<T, A, Dr>&, T);

// reduction_kernels: 0 sum_dims_keep, 1 sum_to
LTL_ARCHETYPE_KERNEL(reduction, 0) kt<T, A, Dr> sum_dims_keep(const kt<T, A, Dr>&, const std::vector<bool>&);
LTL_ARCHETYPE_KERNEL(reduction, 1) kt<T, A, Dr> sum_to(const kt<T, A, Dr>&, const ltl::shape&);

// gemm_kernels: 0 gemm, 1 matmul
LTL_ARCHETYPE_KERNEL(gemm, 0) void gemm(const kt<T, A, Dr>&, const kt<T, A, Dr>&, kt<T, A, Dr>&, T, T);
LTL_ARCHETYPE_KERNEL(gemm, 1) kt<T, A, Dr> matmul(const kt<T, A, Dr>&, const kt<T, A, Dr>&);

// softmax_kernels: 0 softmax_forward … 5 l2_normalize_backward
LTL_ARCHETYPE_KERNEL(softmax, 0) kt<T, A, Dr> softmax_forward(const kt<T, A, Dr>&, int);
LTL_ARCHETYPE_KERNEL(softmax, 1) kt<T, A, Dr> log_softmax_forward(const kt<T, A, Dr>&, int);
LTL_ARCHETYPE_KERNEL(softmax, 2) kt<T, A, Dr> softmax_backward(const kt<T, A, Dr>&, const kt<T, A, Dr>&, int);
LTL_ARCHETYPE_KERNEL(softmax, 3) kt<T, A, Dr> log_softmax_backward(const kt<T, A, Dr>&, const kt<T, A, Dr>&, int);
LTL_ARCHETYPE_KERNEL(softmax, 4)
std::pair<kt<T, A, Dr>, kt<T, A, Dr>> l2_normalize_forward(const kt<T, A, Dr>&, int, T);
LTL_ARCHETYPE_KERNEL(softmax, 5)
kt<T, A, Dr> l2_normalize_backward(const kt<T, A, Dr>&, const kt<T, A, Dr>&, const kt<T, A, Dr>&, int, T);

// batch_norm_kernels: 0 batch_norm2d_forward, 1 batch_norm2d_backward
LTL_ARCHETYPE_KERNEL(batch_norm, 0)
ltl::batch_norm_forward_result<T, kernel_device<A, Dr>> batch_norm2d_forward(
    const kt<T, A, Dr>&, const kt<T, A, Dr>&, const kt<T, A, Dr>&, kt<T, A, Dr>&, kt<T, A, Dr>&,
    const ltl::batch_norm_options&, const kt<T, A, Dr>&);
LTL_ARCHETYPE_KERNEL(batch_norm, 1)
ltl::batch_norm_backward_result<T, kernel_device<A, Dr>> batch_norm2d_backward(
    const kt<T, A, Dr>&, const kt<T, A, Dr>&, const kt<T, A, Dr>&, const kt<T, A, Dr>&, const kt<T, A, Dr>&, bool,
    std::array<bool, 3>, const kt<T, A, Dr>&, bool);

// pooling_kernels: 0 max_pool2d_forward … 5 global_avg_pool_backward
LTL_ARCHETYPE_KERNEL(pooling, 0)
ltl::max_pool2d_result<T, kernel_device<A, Dr>> max_pool2d_forward(const kt<T, A, Dr>&, const ltl::pool2d_options&);
LTL_ARCHETYPE_KERNEL(pooling, 1)
kt<T, A, Dr> max_pool2d_backward(const kt<T, A, Dr>&, const kt<std::int64_t, A, Dr>&, const ltl::shape&);
LTL_ARCHETYPE_KERNEL(pooling, 2) kt<T, A, Dr> avg_pool2d_forward(const kt<T, A, Dr>&, const ltl::pool2d_options&);
LTL_ARCHETYPE_KERNEL(pooling, 3)
kt<T, A, Dr> avg_pool2d_backward(const kt<T, A, Dr>&, const ltl::shape&, const ltl::pool2d_options&);
LTL_ARCHETYPE_KERNEL(pooling, 4) kt<T, A, Dr> global_avg_pool_forward(const kt<T, A, Dr>&);
LTL_ARCHETYPE_KERNEL(pooling, 5) kt<T, A, Dr> global_avg_pool_backward(const kt<T, A, Dr>&, const ltl::shape&);

// conv_kernels: 0 conv2d_forward … 4 conv2d_backward_bias
LTL_ARCHETYPE_KERNEL(conv, 0)
kt<T, A, Dr> conv2d_forward(const kt<T, A, Dr>&, const kt<T, A, Dr>&, const kt<T, A, Dr>&, const ltl::conv2d_options&);
LTL_ARCHETYPE_KERNEL(conv, 1)
kt<T, A, Dr> conv2d_forward_epilogue(const kt<T, A, Dr>&, const kt<T, A, Dr>&, const ltl::conv2d_options&,
                                     const kt<T, A, Dr>&, const kt<T, A, Dr>&, const kt<T, A, Dr>&, bool);
LTL_ARCHETYPE_KERNEL(conv, 2)
kt<T, A, Dr> conv2d_backward_input(const kt<T, A, Dr>&, const kt<T, A, Dr>&, const ltl::shape&, const ltl::conv2d_options&);
LTL_ARCHETYPE_KERNEL(conv, 3)
kt<T, A, Dr> conv2d_backward_weight(const kt<T, A, Dr>&, const kt<T, A, Dr>&, const ltl::shape&, const ltl::conv2d_options&);
LTL_ARCHETYPE_KERNEL(conv, 4) kt<T, A, Dr> conv2d_backward_bias(const kt<T, A, Dr>&);

// indexing_kernels: 0 index_select_forward … 9 shortcut_a_backward, 10 argmax_matches
LTL_ARCHETYPE_KERNEL(indexing, 0)
kt<T, A, Dr> index_select_forward(const kt<T, A, Dr>&, int, const kt<std::int64_t, A, Dr>&);
LTL_ARCHETYPE_KERNEL(indexing, 1)
kt<T, A, Dr> index_select_backward(const kt<T, A, Dr>&, int, const kt<std::int64_t, A, Dr>&, const ltl::shape&);
LTL_ARCHETYPE_KERNEL(indexing, 2) kt<T, A, Dr> gather_forward(const kt<T, A, Dr>&, const kt<std::int64_t, A, Dr>&);
LTL_ARCHETYPE_KERNEL(indexing, 3)
kt<T, A, Dr> gather_backward(const kt<T, A, Dr>&, const kt<std::int64_t, A, Dr>&, ltl::index_t);
LTL_ARCHETYPE_KERNEL(indexing, 4) void one_hot_into(kt<T, A, Dr>&, const kt<std::int64_t, A, Dr>&);
LTL_ARCHETYPE_KERNEL(indexing, 5)
kt<T, A, Dr> lerp_mix_forward(const kt<T, A, Dr>&, const kt<T, A, Dr>&, const kt<T, A, Dr>&, const kt<std::int64_t, A, Dr>&);
LTL_ARCHETYPE_KERNEL(indexing, 6) kt<T, A, Dr> lerp_mix_backward_a(const kt<T, A, Dr>&, const kt<T, A, Dr>&);
LTL_ARCHETYPE_KERNEL(indexing, 7)
kt<T, A, Dr> lerp_mix_backward_b(const kt<T, A, Dr>&, const kt<T, A, Dr>&, const kt<std::int64_t, A, Dr>&);
LTL_ARCHETYPE_KERNEL(indexing, 8) kt<T, A, Dr> shortcut_a_forward(const kt<T, A, Dr>&, ltl::index_t, ltl::index_t);
LTL_ARCHETYPE_KERNEL(indexing, 9) kt<T, A, Dr> shortcut_a_backward(const kt<T, A, Dr>&, const ltl::shape&, ltl::index_t);
LTL_ARCHETYPE_KERNEL(indexing, 10) ltl::index_t argmax_matches(const kt<T, A, Dr>&, const kt<std::int64_t, A, Dr>&);

// loss_kernels: 0 fused_loss
LTL_ARCHETYPE_KERNEL(loss, 0)
double fused_loss(const kt<T, A, Dr>&, const kt<std::int64_t, A, Dr>&, const ltl::loss_terms&, kt<T, A, Dr>*,
                  kt<T, A, Dr>*, const kt<T, A, Dr>*);

// optimiser_kernels: 0 sgd_update
LTL_ARCHETYPE_KERNEL(optimiser, 0)
void sgd_update(kt<T, A, Dr>&, const kt<T, A, Dr>&, kt<T, A, Dr>&, const ltl::sgd_step<T>&);

#undef LTL_ARCHETYPE_KERNEL

/// The concept of area A, evaluated on kernel_device<A, Drop>.
template <unsigned A, unsigned Drop, class T>
consteval bool area_models() {
  using D = kernel_device<A, Drop>;
  if constexpr (A == area::tensor_hooks) return ltl::tensor_kernels<D, T>;
  else if constexpr (A == area::elementwise) return ltl::elementwise_kernels<D, T>;
  else if constexpr (A == area::reduction) return ltl::reduction_kernels<D, T>;
  else if constexpr (A == area::gemm) return ltl::gemm_kernels<D, T>;
  else if constexpr (A == area::softmax) return ltl::softmax_kernels<D, T>;
  else if constexpr (A == area::batch_norm) return ltl::batch_norm_kernels<D, T>;
  else if constexpr (A == area::pooling) return ltl::pooling_kernels<D, T>;
  else if constexpr (A == area::conv) return ltl::conv_kernels<D, T>;
  else if constexpr (A == area::indexing) return ltl::indexing_kernels<D, T>;
  else if constexpr (A == area::loss) return ltl::loss_kernels<D, T>;
  else return ltl::optimiser_kernels<D, T>;
}

/// Every area's archetype models its concept, and every single removed kernel is noticed.
template <unsigned A, unsigned N, class T>
consteval bool area_archetype_holds() {
  return area_models<A, 0, T>() &&
         first_unchecked_requirement<N>([]<unsigned Dr>() { return area_models<A, Dr, T>(); }) == -1;
}

}  // namespace ltl_test::kernels

namespace ltl_test {

/// The archetype device with every kernel: a complete compute device that is not the CPU's.
using kernel_archetype = kernels::kernel_device<>;

static_assert(ltl::device<kernel_archetype> && !kernel_archetype::is_host);
static_assert(ltl::kernel_set<kernel_archetype, float> && ltl::kernel_set<kernel_archetype, double>,
              "the archetype must model ltl::kernel_set");
static_assert(ltl::compute_device<kernel_archetype>, "the archetype must model ltl::compute_device");
#define LTL_ARCHETYPE_AREA(area_, n_)                                                                      \
  static_assert(kernels::area_archetype_holds<kernels::area::area_, n_, float>() &&                                \
                    kernels::area_archetype_holds<kernels::area::area_, n_, double>(),                             \
                "the " #area_ " kernel concept rejects its archetype or accepts one missing a kernel")
LTL_ARCHETYPE_AREA(tensor_hooks, 2);
LTL_ARCHETYPE_AREA(elementwise, 14);
LTL_ARCHETYPE_AREA(reduction, 2);
LTL_ARCHETYPE_AREA(gemm, 2);
LTL_ARCHETYPE_AREA(softmax, 6);
LTL_ARCHETYPE_AREA(batch_norm, 2);
LTL_ARCHETYPE_AREA(pooling, 6);
LTL_ARCHETYPE_AREA(conv, 5);
LTL_ARCHETYPE_AREA(indexing, 11);
LTL_ARCHETYPE_AREA(loss, 1);
LTL_ARCHETYPE_AREA(optimiser, 1);
#undef LTL_ARCHETYPE_AREA
// One missing kernel anywhere makes the device incomplete: kernel_set and compute_device are the
// conjunction of the areas.
static_assert(!ltl::kernel_set<kernels::kernel_device<kernels::area::conv, 1u << 4>, float>);
static_assert(!ltl::compute_device<kernels::kernel_device<kernels::area::optimiser, 1>>);
// A host device needs no tensor hooks; a device without kernels has none of the other areas.
static_assert(ltl::tensor_kernels<ltl::cpu::device, float> && ltl::compute_device<ltl::cpu::device>);
static_assert(!ltl::elementwise_kernels<int, float>);

}  // namespace ltl_test
