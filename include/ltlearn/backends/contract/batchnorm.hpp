#pragma once
/// \file
/// The device-neutral part of 2-D batch normalisation: its options, the result types of the
/// forward and backward kernels every backend provides, and the shape validation the op runs
/// before dispatching. Shapes: x [N, C, H, W]; weight, bias, running statistics [C].

#include "ltlearn/core/error.hpp"
#include "ltlearn/core/shape.hpp"
#include "ltlearn/tensor/tensor.hpp"

#include <cmath>

namespace ltl {

/// Options of batch_norm2d (PyTorch's F.batch_norm): `batch_norm_options{.training = true}`.
struct batch_norm_options {
  bool training = false;  ///< batch statistics + running-stat update (true) or running statistics (false)
  double momentum = 0.1;  ///< running = (1 − momentum)·running + momentum·batch
  double eps = 1e-5;      ///< added to the variance before the square root
  bool relu = false;      ///< fuse max(0, ·) into the output (after the residual, if any)
};

/// Forward result of batch_norm2d: output [N, C, H, W] and the per-channel statistics [C]
/// used for normalising (batch or running), saved for backward.
template <class T, class D>
struct batch_norm_forward_result {
  tensor<T, D> y;       ///< normalised output [N, C, H, W]
  tensor<T, D> mean;    ///< mean used [C]
  tensor<T, D> invstd;  ///< 1 / sqrt(var + eps) used [C]
};

/// Gradients of batch_norm2d (undefined where not requested).
template <class T, class D>
struct batch_norm_backward_result {
  tensor<T, D> dx;       ///< [N, C, H, W]
  tensor<T, D> dweight;  ///< [C]
  tensor<T, D> dbias;    ///< [C]
  tensor<T, D> dmasked;  ///< [N, C, H, W]: dy·[y > 0], the residual's gradient (fused ReLU only)
};

/// Validates batch_norm2d's shapes (any of the [C] tensors may be undefined, given as an empty
/// shape with `defined` false); throws shape_error or value_error naming batch_norm2d.
inline void check_batch_norm2d(const shape& x, const shape& weight, bool has_weight, const shape& bias, bool has_bias,
                               const shape& running_mean, bool has_mean, const shape& running_var, bool has_var,
                               const batch_norm_options& opt) {
  LTL_CHECK(x.size() == 4, shape_error, "batch_norm2d: input must be [N, C, H, W], got {}", x);
  const index_t c = x[1];
  auto check_c = [&](const shape& s, bool has, const char* what) {
    LTL_CHECK(!has || (s.size() == 1 && s[0] == c), shape_error,
              "batch_norm2d: {} {} does not match input {} (expects [{}])", what, s, x, c);
  };
  check_c(weight, has_weight, "weight");
  check_c(bias, has_bias, "bias");
  check_c(running_mean, has_mean, "running_mean");
  check_c(running_var, has_var, "running_var");
  LTL_CHECK(has_mean == has_var, value_error,
            "batch_norm2d: give both running_mean and running_var or neither (input {})", x);
  LTL_CHECK(opt.training || has_mean, value_error,
            "batch_norm2d: evaluation mode needs running_mean and running_var (input {})", x);
  LTL_CHECK(!opt.training || x[0] * x[2] * x[3] > 1, value_error,
            "batch_norm2d: training needs more than one value per channel, got input {}", x);
  LTL_CHECK(opt.eps > 0 && std::isfinite(opt.eps), value_error, "batch_norm2d: eps must be positive, got {}", opt.eps);
}

/// The checks every backend's batch_norm2d_forward makes on its operands (check_batch_norm2d,
/// then a given residual must match x); undefined tensors are absent operands.
template <class T, class D>
void check_batch_norm2d_forward(const tensor<T, D>& x, const tensor<T, D>& weight, const tensor<T, D>& bias,
                                const tensor<T, D>& running_mean, const tensor<T, D>& running_var,
                                const batch_norm_options& opt, const tensor<T, D>& residual) {
  const shape none;
  auto sizes = [&](const tensor<T, D>& t) { return t.defined() ? t.sizes() : none; };
  check_batch_norm2d(x.sizes(), sizes(weight), weight.defined(), sizes(bias), bias.defined(), sizes(running_mean),
                     running_mean.defined(), sizes(running_var), running_var.defined(), opt);
  LTL_CHECK(!residual.defined() || residual.sizes() == x.sizes(), shape_error,
            "batch_norm2d: residual {} does not match input {}", sizes(residual), x.sizes());
}

/// The checks every backend's batch_norm2d_backward makes: dy like x [N, C, H, W], a given
/// ReLU output like x, the saved mean/invstd [C], a given weight [C].
template <class T, class D>
void check_batch_norm2d_backward(const tensor<T, D>& dy, const tensor<T, D>& x, const tensor<T, D>& weight,
                                 const tensor<T, D>& mean, const tensor<T, D>& invstd, const tensor<T, D>& relu_out) {
  LTL_CHECK(dy.sizes() == x.sizes() && x.dim() == 4, shape_error,
            "batch_norm2d_backward: output gradient {} does not match input {}", dy.sizes(), x.sizes());
  LTL_CHECK(!relu_out.defined() || relu_out.sizes() == x.sizes(), shape_error,
            "batch_norm2d_backward: ReLU output {} does not match input {}", relu_out.sizes(), x.sizes());
  const index_t c = x.size(1);
  LTL_CHECK(mean.dim() == 1 && mean.size(0) == c && invstd.dim() == 1 && invstd.size(0) == c, shape_error,
            "batch_norm2d_backward: saved mean {} and invstd {} do not match input {}", mean.sizes(), invstd.sizes(),
            x.sizes());
  LTL_CHECK(!weight.defined() || (weight.dim() == 1 && weight.size(0) == c), shape_error,
            "batch_norm2d_backward: weight {} does not match input {}", weight.sizes(), x.sizes());
}

}  // namespace ltl
