#pragma once
/// \file
/// Umbrella header of ltlearn with the CUDA backend: everything in <ltlearn/ltlearn.hpp> plus
/// `ltl::cuda::device` and its kernels, so model code written for a device parameter `D`
/// runs unchanged with `D = ltl::cuda::device`.
///
/// The backend launches its own kernels (`__global__`, `<<<>>>`), so a translation unit that
/// includes this header must be compiled by nvcc: name it `.cu` and link `ltlearn::cuda`
/// (CMake option LTL_WITH_CUDA). That target also adds the definitions nvcc needs for the
/// library's dependencies (FMT_USE_CONSTEXPR=1 so fmt's compile-time format checks work under
/// nvcc, EIGEN_NO_CUDA so Eigen stays host-only); the fallbacks below cover other build systems.
///
/// No GPU at run time is not an error until device memory is touched: `ltl::cuda::available()`
/// says whether one is usable and `ltl::cuda::unavailable_reason()` why not.

#if !defined(__CUDACC__)
#error "<ltlearn/cuda.hpp> contains CUDA kernels: compile this translation unit with nvcc (a .cu file)"
#endif

#if defined(FMT_VERSION)  // fmt came first: too late to configure it
#if defined(FMT_USE_CONSTEXPR) && !FMT_USE_CONSTEXPR
#error "fmt was configured for nvcc without constexpr: include <ltlearn/cuda.hpp> first, or compile with -DFMT_USE_CONSTEXPR=1 (as ltlearn::cuda does)"
#endif
#elif !defined(FMT_USE_CONSTEXPR)
#define FMT_USE_CONSTEXPR 1
#endif
#if !defined(EIGEN_NO_CUDA)
#define EIGEN_NO_CUDA
#endif

#include "ltlearn/ltlearn.hpp"

#include "ltlearn/backends/cuda/batchnorm.hpp"
#include "ltlearn/backends/cuda/context.hpp"
#include "ltlearn/backends/cuda/conv.hpp"
#include "ltlearn/backends/cuda/conv_plan.hpp"
#include "ltlearn/backends/cuda/cudnn_conv.hpp"
#include "ltlearn/backends/cuda/device.hpp"
#include "ltlearn/backends/cuda/elementwise.hpp"
#include "ltlearn/backends/cuda/error.hpp"
#include "ltlearn/backends/cuda/gemm.hpp"
#include "ltlearn/backends/cuda/indexing.hpp"
#include "ltlearn/backends/cuda/kernel_set.hpp"
#include "ltlearn/backends/cuda/loss.hpp"
#include "ltlearn/backends/cuda/memory.hpp"
#include "ltlearn/backends/cuda/memory_pool.hpp"
#include "ltlearn/backends/cuda/optim.hpp"
#include "ltlearn/backends/cuda/pool.hpp"
#include "ltlearn/backends/cuda/reduce.hpp"
#include "ltlearn/backends/cuda/softmax.hpp"
#include "ltlearn/backends/cuda/upload.hpp"
#include "ltlearn/backends/cuda/version_check.hpp"
