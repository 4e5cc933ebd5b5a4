#pragma once
/// \file
/// Which part of the kernel set (backends/contract/kernels.hpp) the CUDA backend provides
/// today, stated as code: the areas it has are asserted to be complete, the areas it lacks are
/// asserted to be missing, so that adding a kernel area (or losing one) has to update this
/// list. Needs nvcc: include it (through <ltlearn/cuda.hpp>) from .cu files.
///
/// Provided: tensor hooks (fill_, strided copy_), elementwise (cuda/elementwise.hpp),
/// reductions (cuda/reduce.hpp), GEMM (cuda/gemm.hpp, cuBLAS), softmax family
/// (cuda/softmax.hpp), batch norm (cuda/batchnorm.hpp), pooling (cuda/pool.hpp), indexing
/// (cuda/indexing.hpp), the fused loss (cuda/loss.hpp), the optimiser update (cuda/optim.hpp).
/// Lacking: convolution (the cuDNN part of the plan). Until it exists, a model instantiated
/// for `cuda::device` fails to compile at the first convolution's call.

#include "ltlearn/backends/contract/kernels.hpp"
#include "ltlearn/backends/cuda/device.hpp"
#include "ltlearn/backends/cuda/batchnorm.hpp"
#include "ltlearn/backends/cuda/elementwise.hpp"
#include "ltlearn/backends/cuda/gemm.hpp"
#include "ltlearn/backends/cuda/indexing.hpp"
#include "ltlearn/backends/cuda/loss.hpp"
#include "ltlearn/backends/cuda/optim.hpp"
#include "ltlearn/backends/cuda/pool.hpp"
#include "ltlearn/backends/cuda/reduce.hpp"
#include "ltlearn/backends/cuda/softmax.hpp"

namespace ltl::cuda {

/// Kernel areas the CUDA backend provides for element type T.
template <class T>
inline constexpr bool provides_v = tensor_kernels<device, T> && elementwise_kernels<device, T> &&
                                   reduction_kernels<device, T> && gemm_kernels<device, T> &&
                                   softmax_kernels<device, T> && batch_norm_kernels<device, T> &&
                                   pooling_kernels<device, T> && indexing_kernels<device, T> &&
                                   loss_kernels<device, T> && optimiser_kernels<device, T>;

/// Kernel areas the CUDA backend lacks for element type T (none of them is partly there).
template <class T>
inline constexpr bool lacks_v = !conv_kernels<device, T>;

static_assert(provides_v<float> && provides_v<double>,
              "the CUDA backend lost a kernel of an area it provides (backends/contract/kernels.hpp)");
static_assert(lacks_v<float> && lacks_v<double>,
              "the CUDA backend gained a kernel area: move it from the 'lacking' to the 'provided' list above");
static_assert(!compute_device<device>, "the CUDA backend is not yet a complete compute_device");

}  // namespace ltl::cuda
