#pragma once
/// \file
/// The CPU backend's whole kernel set, and the check that it is complete: every kernel of
/// backends/contract/kernels.hpp, in float and double, for `cpu::device`. The ops include only
/// the CPU headers they dispatch to; this header is for code that wants the full set at once
/// (a device that forwards to the CPU, tests) and is where a missing or mistyped CPU kernel
/// fails to compile.

#include "ltlearn/backends/contract/kernels.hpp"
#include "ltlearn/backends/cpu/batchnorm.hpp"
#include "ltlearn/backends/cpu/conv.hpp"
#include "ltlearn/backends/cpu/elementwise.hpp"
#include "ltlearn/backends/cpu/gemm.hpp"
#include "ltlearn/backends/cpu/indexing.hpp"
#include "ltlearn/backends/cpu/loss.hpp"
#include "ltlearn/backends/cpu/optim.hpp"
#include "ltlearn/backends/cpu/pool.hpp"
#include "ltlearn/backends/cpu/reduce.hpp"
#include "ltlearn/backends/cpu/softmax.hpp"

namespace ltl::cpu {

static_assert(compute_device<device>,
              "the CPU backend lacks a kernel of backends/contract/kernels.hpp (or its signature changed): "
              "check which of elementwise_kernels, reduction_kernels, ... fails for cpu::device");

}  // namespace ltl::cpu
