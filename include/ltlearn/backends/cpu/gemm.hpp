#pragma once
/// \file
/// CPU matrix products through Eigen, mapped over ltlearn storage without copies.
///
/// A 2-D view whose column stride is 1 maps as a row-major matrix, one whose row stride is 1
/// (a transposed view) as a column-major matrix, so `matmul(a, b.t())` never copies b.

#include "ltlearn/backends/contract/gemm.hpp"
#include "ltlearn/backends/cpu/elementwise.hpp"

#include <Eigen/Core>

namespace ltl::detail {
template <class T>
using row_map = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0,
                           Eigen::OuterStride<>>;
template <class T>
using col_map = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>, 0,
                           Eigen::OuterStride<>>;

/// Calls f with an Eigen map of the 2-D tensor m (row- or column-major, or a packed copy).
template <class T, class F>
void with_matrix(const tensor<T, cpu::device>& m, F&& f) {
  const index_t r = m.size(0), c = m.size(1), s0 = m.strides()[0], s1 = m.strides()[1];
  if ((s1 == 1 || c <= 1) && s0 >= std::max<index_t>(c, 1)) {
    f(row_map<T>(m.data(), r, c, Eigen::OuterStride<>(s0)));
  } else if ((s0 == 1 || r <= 1) && s1 >= std::max<index_t>(r, 1)) {
    f(col_map<T>(m.data(), r, c, Eigen::OuterStride<>(s1)));
  } else {
    const tensor<T, cpu::device> packed = m.clone();
    f(row_map<T>(packed.data(), r, c, Eigen::OuterStride<>(std::max<index_t>(c, 1))));
  }
}
}  // namespace ltl::detail

namespace ltl::cpu {

/// c = alpha·a·b + beta·c for 2-D a [M, K], b [K, N], contiguous c [M, N].
template <class T>
void gemm(const host_tensor<T>& a, const host_tensor<T>& b, host_tensor<T>& c, T alpha, T beta) {
  check_matmul(a.sizes(), b.sizes());
  LTL_CHECK(c.dim() == 2 && c.size(0) == a.size(0) && c.size(1) == b.size(1) && c.is_contiguous(), shape_error,
            "matmul: output {} does not fit {} x {}", c.sizes(), a.sizes(), b.sizes());
  Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> C(c.data(), c.size(0), c.size(1));
  if (a.size(1) == 0) {
    if (beta == T(0)) C.setZero(); else C *= beta;
    return;
  }
  ltl::detail::with_matrix(a, [&](const auto& A) {
    ltl::detail::with_matrix(b, [&](const auto& B) {
      if (beta == T(0)) {
        C.noalias() = alpha * (A * B);
      } else {
        C *= beta;
        C.noalias() += alpha * (A * B);
      }
    });
  });
}

/// a·b for 2-D tensors, as a new contiguous tensor.
template <class T>
host_tensor<T> matmul(const host_tensor<T>& a, const host_tensor<T>& b) {
  check_matmul(a.sizes(), b.sizes());
  host_tensor<T> c(shape{a.size(0), b.size(1)});
  gemm(a, b, c, T(1), T(0));
  return c;
}

}  // namespace ltl::cpu
