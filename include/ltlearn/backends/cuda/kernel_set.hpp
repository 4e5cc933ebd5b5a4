#pragma once
/// \file
/// Which part of the kernel set (backends/contract/kernels.hpp) the CUDA backend provides
/// today, stated as code: the areas it has are asserted to be complete, the areas it lacks are
/// asserted to be missing, so that adding a kernel area (or losing one) has to update this
/// list. Needs nvcc: include it (through <ltlearn/cuda.hpp>) from .cu files.
///
/// Provided: tensor hooks (fill_, strided copy_), elementwise (cuda/elementwise.hpp),
/// reductions (cuda/reduce.hpp), GEMM (cuda/gemm.hpp, cuBLAS), convolution (cuda/conv.hpp, cuDNN).
/// Lacking: softmax family, batch norm, pooling,
/// indexing, the fused loss and the optimiser update. Until they exist, a model or loss
/// instantiated for `cuda::device` fails to compile at the first missing kernel's call.

#include "ltlearn/backends/contract/kernels.hpp"
#include "ltlearn/backends/cuda/conv.hpp"
#include "ltlearn/backends/cuda/device.hpp"
#include "ltlearn/backends/cuda/elementwise.hpp"
#include "ltlearn/backends/cuda/gemm.hpp"
#include "ltlearn/backends/cuda/reduce.hpp"

namespace ltl::cuda {

/// Kernel areas the CUDA backend provides for element type T.
template <class T>
inline constexpr bool provides_v = tensor_kernels<device, T> && elementwise_kernels<device, T> &&
                                   reduction_kernels<device, T> && gemm_kernels<device, T> &&
                                   conv_kernels<device, T>;

/// Kernel areas the CUDA backend lacks for element type T (none of them is partly there).
template <class T>
inline constexpr bool lacks_v = !softmax_kernels<device, T> && !batch_norm_kernels<device, T> &&
                                !pooling_kernels<device, T> &&
                                !indexing_kernels<device, T> && !loss_kernels<device, T> &&
                                !optimiser_kernels<device, T>;

static_assert(provides_v<float> && provides_v<double>,
              "the CUDA backend lost a kernel of an area it provides (backends/contract/kernels.hpp)");
static_assert(lacks_v<float> && lacks_v<double>,
              "the CUDA backend gained a kernel area: move it from the 'lacking' to the 'provided' list above");
static_assert(!compute_device<device>, "the CUDA backend is not yet a complete compute_device");

}  // namespace ltl::cuda
