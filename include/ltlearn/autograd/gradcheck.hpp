#pragma once
/// \file
/// Central-difference gradient check in double precision.
///
/// For a function f of several variables, the check contracts the output with a fixed random
/// tensor r (L = Σ r ⊙ f(x)) and compares ∂L/∂x from backward with (L(x+ε) − L(x−ε)) / 2ε for
/// every input element. A wrong vector–Jacobian product is caught with probability 1.

#include "ltlearn/autograd/variable.hpp"
#include "ltlearn/core/rng.hpp"

#include <cmath>
#include <functional>
#include <string>
#include <vector>

namespace ltl {

/// Tolerances of gradcheck. An element passes when |analytic − numeric| ≤ atol + rtol·|numeric|.
struct gradcheck_options {
  double eps = 1e-6;
  double atol = 1e-6;
  double rtol = 1e-4;
  std::uint64_t seed = 1234;
};

/// Outcome of gradcheck: the worst element and a readable report of the failures.
struct gradcheck_result {
  bool ok = true;
  double max_abs_error = 0;
  std::string report;
};

/// Checks the gradients of `f` with respect to every input that requires grad.
template <device D = cpu::device>
gradcheck_result gradcheck(const std::function<variable<double, D>(const std::vector<variable<double, D>>&)>& f,
                           std::vector<variable<double, D>> inputs, gradcheck_options opt = {}) {
  gradcheck_result res;
  const variable<double, D> y0 = f(inputs);
  rng gen(opt.seed);
  std::vector<double> r(static_cast<std::size_t>(y0.numel()));
  for (auto& v : r) v = gen.uniform(-1.0, 1.0);
  const auto weights = tensor<double, D>::from(y0.sizes(), std::span<const double>(r));
  auto contract = [&](const variable<double, D>& y) {
    const auto h = y.value().template to<host_device>().contiguous();
    double s = 0;
    for (std::size_t i = 0; i < r.size(); ++i) s += r[i] * h.data()[i];
    return s;
  };
  for (auto& in : inputs) in.zero_grad();
  y0.backward(weights);

  for (std::size_t k = 0; k < inputs.size(); ++k) {
    auto& in = inputs[k];
    if (!in.requires_grad()) continue;
    const auto analytic = in.grad().defined() ? in.grad().template to<host_device>()
                                              : tensor<double, host_device>::zeros(in.sizes());
    auto host = in.value().template to<host_device>();
    for (index_t i = 0; i < in.numel(); ++i) {
      double numeric;
      {
        no_grad_guard ng;
        auto perturbed = [&](double delta) {
          auto h = host.clone();
          h.data()[i] += delta;
          std::vector<variable<double, D>> xs = inputs;
          xs[k] = variable<double, D>(h.template to<D>(), false);
          return contract(f(xs));
        };
        numeric = (perturbed(opt.eps) - perturbed(-opt.eps)) / (2 * opt.eps);
      }
      const double a = analytic.data()[i];
      const double err = std::abs(a - numeric);
      res.max_abs_error = std::max(res.max_abs_error, err);
      if (!(err <= opt.atol + opt.rtol * std::abs(numeric))) {
        if (res.ok || res.report.size() < 2000)
          res.report += fmt::format("input {} element {}: analytic {:.9g}, numeric {:.9g}\n", k, i, a, numeric);
        res.ok = false;
      }
    }
  }
  return res;
}

}  // namespace ltl
