#pragma once
/// \file
/// ltl::nn::module: the base of every layer and model — a tree of named parameters, buffers
/// and child modules with train/eval mode and a state dict.
///
/// Networks are runtime compositions of statically typed blocks (ARCHITECTURE §3): a model
/// holds its blocks as typed members registered under names, so parameter names read like
/// PyTorch's (`layer1.0.conv1.weight`) and checkpoints are interchangeable in spirit.

#include "ltlearn/autograd/variable.hpp"

#include <concepts>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace ltl::nn {

/// Base class of layers and models on element type T and device D. Not copyable: parameters
/// are shared handles, and a copy would silently alias them.
template <real_scalar T, device D = cpu::device>
class module {
 public:
  using value_type = T;
  using device_type = D;
  using var = variable<T, D>;
  using tensor_type = tensor<T, D>;

  module() = default;
  virtual ~module() = default;
  module(const module&) = delete;
  module& operator=(const module&) = delete;
  module(module&&) = delete;
  module& operator=(module&&) = delete;

  /// Parameters of this module and its children, depth-first in registration order, with
  /// dotted names.
  [[nodiscard]] std::vector<std::pair<std::string, var>> named_parameters() const {
    std::vector<std::pair<std::string, var>> out;
    collect_parameters("", out);
    return out;
  }
  [[nodiscard]] std::vector<var> parameters() const {
    std::vector<var> out;
    for (auto& [n, p] : named_parameters()) out.push_back(p);
    return out;
  }
  /// Non-trainable state (e.g. batch-norm running statistics), dotted names.
  [[nodiscard]] std::vector<std::pair<std::string, tensor_type>> named_buffers() const {
    std::vector<std::pair<std::string, tensor_type>> out;
    collect_buffers("", out);
    return out;
  }
  /// Total number of parameter elements.
  [[nodiscard]] index_t num_parameters() const {
    index_t n = 0;
    for (auto& [name, p] : named_parameters()) n += p.numel();
    return n;
  }

  /// Parameters and buffers by name (handles, not copies).
  [[nodiscard]] std::map<std::string, tensor_type> state_dict() const {
    std::map<std::string, tensor_type> out;
    for (auto& [n, p] : named_parameters()) out.emplace(n, p.value());
    for (auto& [n, b] : named_buffers()) out.emplace(n, b);
    return out;
  }
  /// Copies values from `state` into this module's parameters and buffers. With `strict`,
  /// missing or unexpected names are errors; shapes must always agree.
  void load_state_dict(const std::map<std::string, tensor_type>& state, bool strict = true) {
    std::size_t used = 0;
    for (auto& [n, t] : state_dict()) {
      auto it = state.find(n);
      if (it == state.end()) {
        LTL_CHECK(!strict, value_error, "load_state_dict: missing entry '{}'", n);
        continue;
      }
      LTL_CHECK(it->second.sizes() == t.sizes(), shape_error, "load_state_dict: '{}' has shape {}, the module expects {}",
                n, it->second.sizes(), t.sizes());
      auto dst = t;
      dst.copy_(it->second);
      ++used;
    }
    if (strict && used != state.size()) {
      const auto mine = state_dict();
      for (auto& [n, t] : state)
        LTL_CHECK(mine.count(n), value_error, "load_state_dict: unexpected entry '{}' (shape {})", n, t.sizes());
    }
  }

  /// Switches this module and all children to training (true) or evaluation (false) mode.
  void train(bool on = true) {
    training_ = on;
    for (auto& [n, c] : children_) c->train(on);
  }
  void eval() { train(false); }
  [[nodiscard]] bool is_training() const noexcept { return training_; }

  /// Drops every parameter's accumulated gradient.
  void zero_grad() {
    for (auto& p : parameters()) p.zero_grad();
  }
  /// Marks every parameter as trainable or frozen.
  void requires_grad(bool on) {
    for (auto& p : parameters()) p.set_requires_grad(on);
  }

  /// Direct children with their names.
  [[nodiscard]] const std::vector<std::pair<std::string, std::shared_ptr<module>>>& children() const noexcept {
    return children_;
  }

 protected:
  /// Registers a trainable parameter initialised to `value`; returns its handle.
  var register_parameter(std::string name, tensor_type value) {
    var p(std::move(value), true);
    params_.emplace_back(std::move(name), p);
    return p;
  }
  /// Registers a buffer (saved in the state dict, never trained); returns its handle.
  tensor_type register_buffer(std::string name, tensor_type value) {
    buffers_.emplace_back(std::move(name), value);
    return value;
  }
  /// Replaces the child registered as `name` (e.g. a re-initialised classifier).
  void replace_module(const std::string& name, std::shared_ptr<module> m) {
    LTL_CHECK(m != nullptr, value_error, "replace_module: '{}' is null", name);
    for (auto& [n, c] : children_)
      if (n == name) {
        c = std::move(m);
        return;
      }
    throw value_error(fmt::format("replace_module: no child named '{}'", name));
  }
  /// Registers a child module; returns it typed.
  template <std::derived_from<module> M>
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> m) {
    LTL_CHECK(m != nullptr, value_error, "register_module: '{}' is null", name);
    children_.emplace_back(std::move(name), m);
    return m;
  }

 private:
  void collect_parameters(const std::string& prefix, std::vector<std::pair<std::string, var>>& out) const {
    for (auto& [n, p] : params_) out.emplace_back(prefix + n, p);
    for (auto& [n, c] : children_) c->collect_parameters(prefix + n + ".", out);
  }
  void collect_buffers(const std::string& prefix, std::vector<std::pair<std::string, tensor_type>>& out) const {
    for (auto& [n, b] : buffers_) out.emplace_back(prefix + n, b);
    for (auto& [n, c] : children_) c->collect_buffers(prefix + n + ".", out);
  }

  std::vector<std::pair<std::string, var>> params_;
  std::vector<std::pair<std::string, tensor_type>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<module>>> children_;
  bool training_ = true;
};

/// A module with one input and one output: what a sequential container chains.
template <real_scalar T, device D = cpu::device>
class unary_module : public module<T, D> {
 public:
  using typename module<T, D>::var;
  virtual var forward(const var& x) = 0;
  var operator()(const var& x) { return forward(x); }
};

/// Anything with the module interface (parameters, modes, state dict): what optimizers,
/// checkpoints and trainers accept.
///
/// Requires `named_parameters()`, `train(bool)`, `is_training()`, `state_dict()` and
/// `load_state_dict(map)`. Ensures parameter handles are stable across calls, so an optimizer
/// may keep them.
template <class M>
concept module_like = requires(M& m, const M& cm) {
  typename M::value_type;
  typename M::device_type;
  cm.named_parameters();
  cm.state_dict();
  m.train(true);
  { cm.is_training() } -> std::convertible_to<bool>;
  m.load_state_dict(cm.state_dict());
};

}  // namespace ltl::nn
