#pragma once
/// \file
/// Umbrella header of ltlearn (CPU). `#include <ltlearn/cuda.hpp>` adds the CUDA backend.

#include "ltlearn/core/config.hpp"
#include "ltlearn/core/concepts.hpp"
#include "ltlearn/core/device.hpp"
#include "ltlearn/core/error.hpp"
#include "ltlearn/core/rng.hpp"
#include "ltlearn/core/shape.hpp"
#include "ltlearn/tensor/allocator.hpp"
#include "ltlearn/tensor/format.hpp"
#include "ltlearn/tensor/storage.hpp"
#include "ltlearn/tensor/tensor.hpp"
#include "ltlearn/autograd/grad_mode.hpp"
#include "ltlearn/autograd/gradcheck.hpp"
#include "ltlearn/autograd/node.hpp"
#include "ltlearn/autograd/variable.hpp"
#include "ltlearn/ops/elementwise.hpp"
#include "ltlearn/ops/linalg.hpp"
#include "ltlearn/ops/reduce.hpp"
