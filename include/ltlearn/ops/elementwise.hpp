#pragma once
/// \file
/// Differentiable elementwise ops on variables: arithmetic with broadcasting, scalar ops,
/// neg, relu, leaky_relu, exp, log, pow. Broadcast gradients are summed back to each input's
/// shape. Kernels are the device's (backends/contract/kernels.hpp), found by argument-dependent
/// lookup; the CPU ones are included as the default device's.

#include "ltlearn/autograd/variable.hpp"
#include "ltlearn/backends/cpu/reduce.hpp"

#include <cmath>
#include <vector>

namespace ltl {

template <real_scalar T, device D>
using grads_t = std::vector<tensor<T, D>>;

/// a + b with broadcasting.
template <real_scalar T, device D>
variable<T, D> add(const variable<T, D>& a, const variable<T, D>& b) {
  return make_result<T, D>(add(a.value(), b.value()), "add", {&a, &b},
                           [sa = a.sizes(), sb = b.sizes()](const tensor<T, D>& g) {
                             return grads_t<T, D>{sum_to(g, sa), sum_to(g, sb)};
                           });
}
/// a − b with broadcasting.
template <real_scalar T, device D>
variable<T, D> sub(const variable<T, D>& a, const variable<T, D>& b) {
  return make_result<T, D>(sub(a.value(), b.value()), "sub", {&a, &b},
                           [sa = a.sizes(), sb = b.sizes()](const tensor<T, D>& g) {
                             return grads_t<T, D>{sum_to(g, sa), sum_to(affine(g, T(-1), T(0)), sb)};
                           });
}
/// a · b (elementwise) with broadcasting.
template <real_scalar T, device D>
variable<T, D> mul(const variable<T, D>& a, const variable<T, D>& b) {
  return make_result<T, D>(mul(a.value(), b.value()), "mul", {&a, &b},
                           [va = a.value(), vb = b.value()](const tensor<T, D>& g, const std::vector<bool>& need) {
                             grads_t<T, D> r(2);
                             if (need[0]) r[0] = sum_to(mul(g, vb), va.sizes());
                             if (need[1]) r[1] = sum_to(mul(g, va), vb.sizes());
                             return r;
                           });
}
/// a / b (elementwise) with broadcasting.
template <real_scalar T, device D>
variable<T, D> div(const variable<T, D>& a, const variable<T, D>& b) {
  return make_result<T, D>(div(a.value(), b.value()), "div", {&a, &b},
                           [va = a.value(), vb = b.value()](const tensor<T, D>& g, const std::vector<bool>& need) {
                             grads_t<T, D> r(2);
                             if (need[0]) r[0] = sum_to(div(g, vb), va.sizes());
                             if (need[1]) r[1] = sum_to(affine(div(mul(g, va), mul(vb, vb)), T(-1), T(0)), vb.sizes());
                             return r;
                           });
}

/// alpha·x + beta for scalars alpha, beta.
template <real_scalar T, device D>
variable<T, D> affine(const variable<T, D>& x, T alpha, T beta) {
  return make_result<T, D>(affine(x.value(), alpha, beta), "affine", {&x},
                           [alpha](const tensor<T, D>& g) { return grads_t<T, D>{affine(g, alpha, T(0))}; });
}
template <real_scalar T, device D>
variable<T, D> neg(const variable<T, D>& x) {
  return affine(x, T(-1), T(0));
}

template <real_scalar T, device D>
variable<T, D> relu(const variable<T, D>& x) {
  auto y = relu_forward(x.value());
  return make_result<T, D>(y, "relu", {&x},
                           [y](const tensor<T, D>& g) { return grads_t<T, D>{relu_backward(g, y)}; });
}

/// max(x, 0) + slope·min(x, 0) (the few-shot ResNet-12 uses slope 0.1).
template <real_scalar T, device D>
variable<T, D> leaky_relu(const variable<T, D>& x, std::type_identity_t<T> slope) {
  return make_result<T, D>(leaky_relu_forward(x.value(), slope), "leaky_relu", {&x},
                           [v = x.value(), slope](const tensor<T, D>& g) {
                             return grads_t<T, D>{leaky_relu_backward(g, v, slope)};
                           });
}

/// e^x; backward multiplies by the saved output.
template <real_scalar T, device D>
variable<T, D> exp(const variable<T, D>& x) {
  auto y = exp_forward(x.value());
  return make_result<T, D>(y, "exp", {&x}, [y](const tensor<T, D>& g) { return grads_t<T, D>{mul(g, y)}; });
}
/// Natural logarithm (no clamping: log of a non-positive value is −inf/NaN, as in IEEE).
template <real_scalar T, device D>
variable<T, D> log(const variable<T, D>& x) {
  return make_result<T, D>(log_forward(x.value()), "log", {&x},
                           [v = x.value()](const tensor<T, D>& g) { return grads_t<T, D>{div(g, v)}; });
}
/// x^p for a scalar exponent p.
template <real_scalar T, device D>
variable<T, D> pow(const variable<T, D>& x, std::type_identity_t<T> p) {
  return make_result<T, D>(pow_forward(x.value(), p), "pow", {&x},
                           [v = x.value(), p](const tensor<T, D>& g) { return grads_t<T, D>{pow_backward(g, v, p)}; });
}

// Operators (variables and scalars on either side).
template <real_scalar T, device D>
variable<T, D> operator+(const variable<T, D>& a, const variable<T, D>& b) { return add(a, b); }
template <real_scalar T, device D>
variable<T, D> operator-(const variable<T, D>& a, const variable<T, D>& b) { return sub(a, b); }
template <real_scalar T, device D>
variable<T, D> operator*(const variable<T, D>& a, const variable<T, D>& b) { return mul(a, b); }
template <real_scalar T, device D>
variable<T, D> operator/(const variable<T, D>& a, const variable<T, D>& b) { return div(a, b); }
template <real_scalar T, device D>
variable<T, D> operator-(const variable<T, D>& a) { return neg(a); }
template <real_scalar T, device D>
variable<T, D> operator+(const variable<T, D>& a, std::type_identity_t<T> s) { return affine(a, T(1), s); }
template <real_scalar T, device D>
variable<T, D> operator+(std::type_identity_t<T> s, const variable<T, D>& a) { return affine(a, T(1), s); }
template <real_scalar T, device D>
variable<T, D> operator-(const variable<T, D>& a, std::type_identity_t<T> s) { return affine(a, T(1), -s); }
template <real_scalar T, device D>
variable<T, D> operator-(std::type_identity_t<T> s, const variable<T, D>& a) { return affine(a, T(-1), s); }
template <real_scalar T, device D>
variable<T, D> operator*(const variable<T, D>& a, std::type_identity_t<T> s) { return affine(a, s, T(0)); }
template <real_scalar T, device D>
variable<T, D> operator*(std::type_identity_t<T> s, const variable<T, D>& a) { return affine(a, s, T(0)); }
template <real_scalar T, device D>
variable<T, D> operator/(const variable<T, D>& a, std::type_identity_t<T> s) { return affine(a, T(1) / s, T(0)); }

}  // namespace ltl
