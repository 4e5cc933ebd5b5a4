#pragma once
/// \file
/// The default device's kernels for the layers above ops that call backend kernels directly:
/// the fused loss (losses/fused_loss.hpp) and the optimiser update (optim/sgd.hpp). Those
/// layers include only the backend contract; this header gives them the CPU implementation, so
/// that `variable<T>` (whose device defaults to the CPU) works with their header alone. Other
/// devices bring their kernels with their own headers (ltlearn/cuda.hpp); the calls find them
/// by argument-dependent lookup on the tensor's device type.

#include "ltlearn/backends/cpu/elementwise.hpp"
#include "ltlearn/backends/cpu/loss.hpp"
#include "ltlearn/backends/cpu/optim.hpp"
#include "ltlearn/backends/cpu/reduce.hpp"
