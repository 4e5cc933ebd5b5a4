#pragma once
/// \file
/// The CUDA backend's statement that it provides the whole kernel set
/// (backends/contract/kernels.hpp), as code: every area is asserted for float and double, so a
/// renamed or mistyped kernel fails here, at its definition, and not in some model far away.
/// Needs nvcc: include it (through <ltlearn/cuda.hpp>) from .cu files.
///
/// Areas and where they live: tensor hooks (fill_, strided copy_) and elementwise
/// (cuda/elementwise.hpp), reductions (cuda/reduce.hpp), GEMM (cuda/gemm.hpp, cuBLAS), softmax
/// family (cuda/softmax.hpp), batch norm (cuda/batchnorm.hpp), pooling (cuda/pool.hpp),
/// convolution (cuda/conv.hpp, cuDNN), indexing (cuda/indexing.hpp), the fused loss
/// (cuda/loss.hpp) and the optimiser update (cuda/optim.hpp).

#include "ltlearn/backends/contract/kernels.hpp"
#include "ltlearn/backends/cuda/batchnorm.hpp"
#include "ltlearn/backends/cuda/conv.hpp"
#include "ltlearn/backends/cuda/device.hpp"
#include "ltlearn/backends/cuda/elementwise.hpp"
#include "ltlearn/backends/cuda/gemm.hpp"
#include "ltlearn/backends/cuda/indexing.hpp"
#include "ltlearn/backends/cuda/loss.hpp"
#include "ltlearn/backends/cuda/optim.hpp"
#include "ltlearn/backends/cuda/pool.hpp"
#include "ltlearn/backends/cuda/reduce.hpp"
#include "ltlearn/backends/cuda/softmax.hpp"

namespace ltl::cuda {

// One assertion per area, so a failure names the area that lost a kernel.
static_assert(tensor_kernels<device, float> && tensor_kernels<device, double>, "CUDA: tensor hooks incomplete");
static_assert(elementwise_kernels<device, float> && elementwise_kernels<device, double>, "CUDA: elementwise kernels incomplete");
static_assert(reduction_kernels<device, float> && reduction_kernels<device, double>, "CUDA: reductions incomplete");
static_assert(gemm_kernels<device, float> && gemm_kernels<device, double>, "CUDA: GEMM incomplete");
static_assert(softmax_kernels<device, float> && softmax_kernels<device, double>, "CUDA: softmax family incomplete");
static_assert(batch_norm_kernels<device, float> && batch_norm_kernels<device, double>, "CUDA: batch norm incomplete");
static_assert(pooling_kernels<device, float> && pooling_kernels<device, double>, "CUDA: pooling incomplete");
static_assert(conv_kernels<device, float> && conv_kernels<device, double>, "CUDA: convolution incomplete");
static_assert(indexing_kernels<device, float> && indexing_kernels<device, double>, "CUDA: indexing incomplete");
static_assert(loss_kernels<device, float> && loss_kernels<device, double>, "CUDA: fused loss incomplete");
static_assert(optimiser_kernels<device, float> && optimiser_kernels<device, double>, "CUDA: optimiser update incomplete");
static_assert(compute_device<device>, "the CUDA backend must be a complete compute_device");

}  // namespace ltl::cuda
