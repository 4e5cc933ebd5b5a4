#pragma once
// The short names the tests give the library's index, shape, tensor and variable types, declared
// once in ltl_test: a test file that says `using namespace ltl_test;` gets them together with the
// helpers of the support headers it includes.

#include <ltlearn/autograd/variable.hpp>
#include <ltlearn/core/shape.hpp>
#include <ltlearn/tensor/tensor.hpp>

#include <cstdint>

namespace ltl_test {

using ltl::index_t;
using ltl::shape;

/// A double tensor.
using TD = ltl::tensor<double>;
/// A float tensor.
using TF = ltl::tensor<float>;
/// A tensor of labels or indices.
using TL = ltl::tensor<std::int64_t>;
/// A double variable (the gradient checks run in double).
using VD = ltl::variable<double>;
/// A float variable.
using VF = ltl::variable<float>;

}  // namespace ltl_test
