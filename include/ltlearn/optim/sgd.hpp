#pragma once
/// \file
/// Stochastic gradient descent with momentum, Nesterov option and coupled weight decay,
/// exactly as torch.optim.SGD:
///   d = g + wd·p;  b = μ·b + (1 − dampening)·d  (b = d at the first step);
///   d = nesterov ? d + μ·b : b;  p -= lr·d.

#include "ltlearn/autograd/grad_mode.hpp"
#include "ltlearn/autograd/variable.hpp"
#include "ltlearn/backends/contract/optim.hpp"
#include "ltlearn/ops/default_kernels.hpp"

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace ltl::optim {

/// Hyper-parameters of sgd (the learning rate comes from the schedule each step).
struct sgd_options {
  double momentum = 0.9;
  double weight_decay = 0.0;
  double dampening = 0.0;
  bool nesterov = false;
};

/// SGD over a fixed list of named parameters. Parameters without a gradient are skipped.
template <real_scalar T, device D = cpu::device>
class sgd {
 public:
  using var = variable<T, D>;

  sgd(std::vector<std::pair<std::string, var>> params, sgd_options o) : params_(std::move(params)), opt_(o) {
    LTL_CHECK(!(o.nesterov && (o.momentum <= 0 || o.dampening != 0)), value_error,
              "sgd: Nesterov momentum needs momentum > 0 and zero dampening");
    LTL_CHECK(o.momentum >= 0 && o.weight_decay >= 0, value_error, "sgd: momentum {} and weight decay {} must be >= 0",
              o.momentum, o.weight_decay);
  }

  /// One update with learning rate `lr`.
  void step(double lr) {
    no_grad_guard ng;
    for (auto& [name, p] : params_) {
      if (!p.grad().defined()) continue;
      tensor<T, D>& w = p.value();
      const tensor<T, D>& g = p.grad();
      LTL_CHECK(w.is_contiguous() && g.is_contiguous() && g.sizes() == w.sizes(), shape_error,
                "sgd: parameter '{}' {} and its gradient {} must be contiguous and equal in shape", name, w.sizes(),
                g.sizes());
      bool first = false;
      tensor<T, D> buf;
      if (opt_.momentum != 0) {
        auto [it, inserted] = momentum_.try_emplace(name);
        if (inserted) it->second = tensor<T, D>(w.sizes());
        first = inserted;
        buf = it->second;
      }
      const sgd_step<T> s{static_cast<T>(lr), static_cast<T>(opt_.momentum), static_cast<T>(opt_.weight_decay),
                               static_cast<T>(1 - opt_.dampening), opt_.nesterov, first};
      sgd_update(w, g, buf, s);  // backend kernel by argument-dependent lookup
    }
  }

  /// Clears every parameter's gradient.
  void zero_grad() {
    for (auto& [n, p] : params_) p.zero_grad();
  }

  /// Momentum buffers by parameter name (for checkpoints).
  [[nodiscard]] std::map<std::string, tensor<T, D>> state_dict() const { return momentum_; }
  /// Restores momentum buffers; every name must be one of this optimizer's parameters.
  void load_state_dict(const std::map<std::string, tensor<T, D>>& state) {
    std::map<std::string, tensor<T, D>> restored;
    for (auto& [name, buf] : state) {
      auto it = std::find_if(params_.begin(), params_.end(), [&](auto& p) { return p.first == name; });
      LTL_CHECK(it != params_.end(), value_error, "sgd::load_state_dict: no parameter named '{}'", name);
      LTL_CHECK(buf.sizes() == it->second.sizes(), shape_error,
                "sgd::load_state_dict: momentum of '{}' has shape {}, the parameter {}", name, buf.sizes(),
                it->second.sizes());
      restored.emplace(name, buf.clone());
    }
    momentum_ = std::move(restored);
  }
  [[nodiscard]] const sgd_options& options() const noexcept { return opt_; }
  [[nodiscard]] const std::vector<std::pair<std::string, var>>& params() const noexcept { return params_; }

 private:
  std::vector<std::pair<std::string, var>> params_;
  sgd_options opt_;
  std::map<std::string, tensor<T, D>> momentum_;
};

}  // namespace ltl::optim
