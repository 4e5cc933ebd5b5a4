#pragma once
/// \file
/// CUDA matrix products through cuBLAS, with the signatures of the contract's gemm_kernels
/// (backends/contract/kernels.hpp).
///
/// cuBLAS is column-major; ltlearn is row-major. A row-major C [M, N] is, read column-major,
/// Cᵀ [N, M] with leading dimension N, and C = A·B is the same as Cᵀ = Bᵀ·Aᵀ. So gemm calls
/// cuBLAS with the operands swapped (B first). Each operand's 2-D strides decide how cuBLAS
/// reads it: column stride 1 (row-major data, leading dimension = row stride) needs no
/// transpose flag; row stride 1 (a transposed view such as `w.t()`) is a column-major matrix,
/// read with CUBLAS_OP_T. Neither case copies; only views with no unit stride are packed.
/// Launching cuBLAS needs no nvcc, but the elementwise kernels included here do.

#include "ltlearn/backends/contract/gemm.hpp"
#include "ltlearn/backends/cuda/elementwise.hpp"
#include "ltlearn/backends/cuda/op_scope.hpp"

#include <climits>

namespace ltl::cuda {

namespace detail {
/// How cuBLAS reads one operand: pointer, transpose flag, leading dimension.
template <class T>
struct blas_operand {
  const T* ptr;
  cublasOperation_t op;
  int ld;
};

inline int blas_int(index_t v, const char* what) {
  LTL_CHECK(v <= INT_MAX, shape_error, "matmul: {} {} exceeds cuBLAS's 32-bit range", what, v);
  return static_cast<int>(v);
}

/// Describes the row-major matrix m [r, c] as the column-major operand mᵀ for cuBLAS, packing
/// it into `packed` when its strides have no usable unit stride. Generic over the device so
/// that the layout logic can be tested on host tensors.
template <class T, class D>
blas_operand<T> transposed_operand(const tensor<T, D>& m, tensor<T, D>& packed) {
  const index_t r = m.size(0), c = m.size(1), s0 = m.strides()[0], s1 = m.strides()[1];
  if ((s1 == 1 || c <= 1) && s0 >= std::max<index_t>(c, 1)) {
    // Row-major [r, c] with row stride s0 == column-major [c, r] with ld s0: already mᵀ.
    return {m.data(), CUBLAS_OP_N, blas_int(s0, "leading dimension")};
  }
  if ((s0 == 1 || r <= 1) && s1 >= std::max<index_t>(r, 1)) {
    // A transposed view: column-major [r, c] with ld s1, so cuBLAS transposes it.
    return {m.data(), CUBLAS_OP_T, blas_int(s1, "leading dimension")};
  }
  packed = m.clone();
  return {packed.data(), CUBLAS_OP_N, blas_int(std::max<index_t>(c, 1), "leading dimension")};
}

/// The arguments of the column-major GEMM computing row-major C [M, N] = A·B as Cᵀ = Bᵀ·Aᵀ:
/// C(m×n) = op(first)·op(second) with m = N, n = M, k = K, first = B, second = A, ldc = N.
/// Requires M, N, K > 0. `packed_*` keep packed copies alive for the call.
template <class T, class D>
struct gemm_plan {
  int m, n, k, ldc;
  blas_operand<T> first, second;
  tensor<T, D> packed_a, packed_b;
};

template <class T, class D>
gemm_plan<T, D> plan_gemm(const tensor<T, D>& a, const tensor<T, D>& b) {
  gemm_plan<T, D> p;
  p.m = blas_int(b.size(1), "N");
  p.n = blas_int(a.size(0), "M");
  p.k = blas_int(a.size(1), "K");
  p.ldc = p.m;
  p.first = transposed_operand(b, p.packed_b);   // Bᵀ [N, K]
  p.second = transposed_operand(a, p.packed_a);  // Aᵀ [K, M]
  return p;
}

inline cublasStatus_t blas_gemm(cublasHandle_t h, const gemm_plan<float, device>& p, const float* alpha,
                                const float* beta, float* c) {
  return cublasSgemm(h, p.first.op, p.second.op, p.m, p.n, p.k, alpha, p.first.ptr, p.first.ld, p.second.ptr,
                     p.second.ld, beta, c, p.ldc);
}
inline cublasStatus_t blas_gemm(cublasHandle_t h, const gemm_plan<double, device>& p, const double* alpha,
                                const double* beta, double* c) {
  return cublasDgemm(h, p.first.op, p.second.op, p.m, p.n, p.k, alpha, p.first.ptr, p.first.ld, p.second.ptr,
                     p.second.ld, beta, c, p.ldc);
}
}  // namespace detail

/// c = alpha·a·b + beta·c for 2-D a [M, K], b [K, N], contiguous c [M, N] (float or double).
/// a and b may be transposed or narrowed views; they are not copied.
template <class T>
void gemm(const device_tensor<T>& a, const device_tensor<T>& b, device_tensor<T>& c, T alpha, T beta) {
  const op_scope scope("gemm", a, b, c);
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "cuda::gemm supports float and double");
  check_matmul(a.sizes(), b.sizes());
  LTL_CHECK(c.dim() == 2 && c.size(0) == a.size(0) && c.size(1) == b.size(1) && c.is_contiguous(), shape_error,
            "matmul: output {} does not fit {} x {}", c.sizes(), a.sizes(), b.sizes());
  if (a.size(0) == 0 || b.size(1) == 0) return;
  if (a.size(1) == 0) {  // an empty product: C = beta·C (and beta == 0 must not propagate NaNs from C)
    if (beta == T(0)) c.zero_(); else c.copy_(cuda::affine(c, beta, T(0)));
    return;
  }
  const auto plan = detail::plan_gemm(a, b);
  // With beta == 0 cuBLAS does not read C, so garbage (even NaN) in a fresh C is harmless.
  LTL_CUBLAS_CHECK(detail::blas_gemm(context::current().cublas(), plan, &alpha, &beta, c.data()));
}

/// a·b for 2-D tensors a [M, K], b [K, N], as a new contiguous tensor [M, N].
template <class T>
device_tensor<T> matmul(const device_tensor<T>& a, const device_tensor<T>& b) {
  const op_scope scope("matmul", a, b);
  check_matmul(a.sizes(), b.sizes());
  device_tensor<T> c(shape{a.size(0), b.size(1)});
  cuda::gemm(a, b, c, T(1), T(0));
  return c;
}

}  // namespace ltl::cuda
