#pragma once
/// \file
/// What every CPU convolution kernel of conv/ shares: the epilogue applied as sums are stored,
/// the split of samples over the OpenMP team, and the argument structs of the 3×3 kernels
/// (the forms take one struct instead of a dozen positional sizes and flags).

#include "ltlearn/backends/cpu/elementwise.hpp"

#include <algorithm>

namespace ltl::detail {

/// What a convolution kernel does with each output sum a of channel r before storing it:
/// y = act(a·scale[r] + shift[r] + residual), every part optional. A bias alone is `shift`;
/// batch norm in evaluation folds into scale and shift (inference: one pass over the output
/// fewer per layer), and a ResNet block's residual add and ReLU follow in the same store.
template <class T>
struct conv_epilogue {
  const T* scale = nullptr;     ///< [rows] (null: 1)
  const T* shift = nullptr;     ///< [rows] (null: 0)
  const T* residual = nullptr;  ///< laid out as the whole output y (null: none)
  bool relu = false;            ///< max(0, ·) last

  /// dst[k] = epilogue(src[k·ss]) for k < n, of channel r; `res` is the residual at dst's place.
  void store(T* dst, const T* src, index_t ss, index_t n, index_t r, const T* res) const noexcept {
    const T sh = shift ? shift[r] : T(0);
    if (!scale && !res && !relu) {  // bias (or nothing): the plain store
      for (index_t k = 0; k < n; ++k) dst[k] = src[k * ss] + sh;
      return;
    }
    const T sc = scale ? scale[r] : T(1);
    for (index_t k = 0; k < n; ++k) {
      T v = src[k * ss] * sc + sh;
      if (res) v += res[k];
      dst[k] = relu ? std::max(T(0), v) : v;
    }
  }

  /// True when the epilogue changes anything beyond a plain store.
  [[nodiscard]] bool any() const noexcept { return scale || shift || residual || relu; }
};

/// Runs f(thread, begin, end) over [0, n) samples: split across the OpenMP team when there
/// are at least two samples, else called once so that the GEMM inside can parallelise.
template <class F>
void for_each_sample_chunk(index_t n, F&& f) {
#if LTL_HAS_OPENMP
  if (n >= 2 && omp_get_max_threads() > 1 && !omp_in_parallel()) {
#pragma omp parallel
    {
      const index_t nt = omp_get_num_threads(), t = omp_get_thread_num();
      const index_t chunk = (n + nt - 1) / nt;
      const index_t b = std::min(n, t * chunk), e = std::min(n, b + chunk);
      if (b < e) f(static_cast<int>(t), b, e);
    }
    return;
  }
#endif
  if (n > 0) f(0, index_t{0}, n);
}

/// for_each_sample_chunk as a value the kernels take as their `for_each_chunk` argument.
struct sample_chunks {
  template <class F>
  void operator()(index_t n, F&& f) const {
    for_each_sample_chunk(n, f);
  }
};

/// Operands of a 3×3, padding-1 kernel that maps an input to an output: a forward pass, or a
/// stride-1 layer's input gradient as the adjoint convolution (`adjoint`: dy in, dx out, the
/// weight rotated by 180° and transposed, no epilogue).
template <class T>
struct conv3x3_args {
  const T* input = nullptr;     ///< [samples, in_channels, Hi, Wi]: x, or dy for an input gradient
  index_t samples = 0;          ///< N
  index_t in_channels = 0;      ///< channels of `input`
  index_t height = 0;           ///< the layer's input plane H (of x; of dx for an input gradient)
  index_t width = 0;            ///< the layer's input plane W
  index_t stride = 1;           ///< the layer's stride (2 only in the channel-vectorised kernels)
  const T* weight = nullptr;    ///< the layer's weight [weight_out, weight_in, 3, 3]
  index_t weight_out = 0;       ///< the layer's Cout
  index_t weight_in = 0;        ///< the layer's Cin
  bool adjoint = false;         ///< input gradient (see above)
  index_t out_channels = 0;     ///< channels of `output`: Cout, or Cin for an input gradient
  conv_epilogue<T> epilogue{};  ///< applied as each output sum is stored
  T* output = nullptr;          ///< [samples, out_channels, Ho, Wo], every element written
};

/// Operands of a 3×3, padding-1 weight-gradient kernel: dW [out_channels, in_channels·9].
template <class T>
struct conv3x3_weight_grad_args {
  const T* dy = nullptr;     ///< [samples, out_channels, Ho, Wo]
  const T* x = nullptr;      ///< [samples, in_channels, height, width]
  index_t samples = 0;       ///< N
  index_t in_channels = 0;   ///< Cin
  index_t out_channels = 0;  ///< Cout
  index_t height = 0;        ///< H of x
  index_t width = 0;         ///< W of x
  index_t stride = 1;        ///< the layer's stride (2 only in the channel-vectorised kernel)
  int threads = 1;           ///< partial sums kept: one per thread for_each_chunk may use
};

}  // namespace ltl::detail
