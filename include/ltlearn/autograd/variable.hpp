#pragma once
/// \file
/// ltl::variable<T, Device>: a tensor that takes part in reverse-mode differentiation, and
/// the engine that runs backward over the recorded graph.
///
/// Define-by-run: every op on variables with `requires_grad` records a node. `backward()`
/// walks the graph once in topological order (Kahn's algorithm from the root), so a node runs
/// only after all gradients flowing into its output have been summed. Each node frees its
/// saved buffers right after running unless `retain_graph` is set. Gradients are summed with
/// the device's `add` / `accumulate` kernels, found by argument-dependent lookup.

#include "ltlearn/autograd/grad_mode.hpp"
#include "ltlearn/autograd/node.hpp"

#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace ltl {

/// Options of variable::backward.
struct backward_options {
  bool retain_graph = false;  ///< keep saved buffers so that backward can run again
};

/// Differentiable handle: value, gradient and producing node. Copies alias (shared state).
template <real_scalar T, device D = cpu::device>
class variable {
 public:
  using value_type = T;
  using device_type = D;
  using tensor_type = tensor<T, D>;

  /// An undefined variable.
  variable() = default;
  /// A leaf holding `value`.
  explicit variable(tensor_type value, bool requires_grad = false) : impl_(std::make_shared<var_impl<T, D>>()) {
    impl_->value = std::move(value);
    impl_->requires_grad = requires_grad;
  }

  [[nodiscard]] bool defined() const noexcept { return static_cast<bool>(impl_); }
  [[nodiscard]] const tensor_type& value() const { return impl().value; }
  /// Mutable access to the value, for in-place updates of leaves (optimizers, initialisers).
  [[nodiscard]] tensor_type& value() { return impl().value; }
  /// Accumulated gradient (undefined until a backward reached this variable).
  [[nodiscard]] const tensor_type& grad() const { return impl().grad; }
  [[nodiscard]] tensor_type& grad() { return impl().grad; }
  [[nodiscard]] const shape& sizes() const { return value().sizes(); }
  [[nodiscard]] int dim() const { return value().dim(); }
  [[nodiscard]] index_t size(int d) const { return value().size(d); }
  [[nodiscard]] index_t numel() const { return value().numel(); }

  [[nodiscard]] bool requires_grad() const { return impl().requires_grad; }
  [[nodiscard]] bool is_leaf() const { return !impl().grad_fn; }
  /// Marks a leaf as a differentiation target.
  variable& set_requires_grad(bool on) {
    LTL_CHECK(is_leaf(), autograd_error, "set_requires_grad: only leaf variables can change it");
    impl().requires_grad = on;
    return *this;
  }
  /// The node that produced this variable (null for leaves).
  [[nodiscard]] const std::shared_ptr<node<T, D>>& grad_fn() const { return impl().grad_fn; }

  /// A leaf sharing this value, cut from the graph.
  [[nodiscard]] variable detach() const { return variable(value(), false); }
  /// Drops the accumulated gradient.
  void zero_grad() { impl().grad = tensor_type(); }

  /// Keeps the gradient of this non-leaf variable in `.grad()` during backward.
  void retain_grad() {
    if (is_leaf()) return;
    std::weak_ptr<var_impl<T, D>> w = impl_;
    impl().grad_fn->hooks.push_back([w](const tensor_type& g) {
      if (auto p = w.lock()) {
        if (p->grad.defined()) {
          p->grad = add(p->grad, g);
        } else {
          p->grad = g.clone();
        }
      }
    });
  }
  /// Calls `hook(grad)` with this variable's full gradient during backward (non-leaf only).
  void register_hook(typename node<T, D>::hook_type hook) {
    LTL_CHECK(!is_leaf(), autograd_error, "register_hook: the variable is a leaf; read .grad() instead");
    impl().grad_fn->hooks.push_back(std::move(hook));
  }

  /// Backpropagates from this scalar (one-element) variable, seeding with 1.
  void backward(backward_options opt = {}) const {
    LTL_CHECK(numel() == 1, autograd_error,
              "backward: output has shape {}; give a seed gradient for non-scalar outputs", sizes());
    backward(tensor_type::ones(sizes()), opt);
  }
  /// Backpropagates `seed`, the gradient of some scalar with respect to this variable.
  void backward(const tensor_type& seed, backward_options opt = {}) const;

  /// Shared state (for ops and the engine).
  [[nodiscard]] var_impl<T, D>& impl() const {
    LTL_CHECK(impl_, value_error, "variable is undefined");
    return *impl_;
  }
  [[nodiscard]] const std::shared_ptr<var_impl<T, D>>& impl_ptr() const noexcept { return impl_; }

  /// The node a gradient for this variable flows into (null if it needs none).
  [[nodiscard]] std::shared_ptr<node<T, D>> gradient_edge() const {
    auto& s = impl();
    if (s.grad_fn) return s.grad_fn;
    if (!s.requires_grad) return nullptr;
    if (auto a = s.accumulator.lock()) return a;
    auto a = std::make_shared<accumulate_node<T, D>>(impl_);
    s.accumulator = a;
    return a;
  }

 private:
  std::shared_ptr<var_impl<T, D>> impl_;
};

namespace detail {

/// Runs backward from `root` with incoming gradient `seed`.
template <real_scalar T, device D>
void run_backward(const std::shared_ptr<node<T, D>>& root, const tensor<T, D>& seed, bool retain_graph) {
  using node_ptr = node<T, D>*;
  // 1. Dependency counts over the reachable graph (iterative DFS: graphs can be deep).
  std::unordered_map<node_ptr, int> deps;
  std::vector<node_ptr> stack{root.get()};
  deps[root.get()] = 0;
  while (!stack.empty()) {
    node_ptr n = stack.back();
    stack.pop_back();
    for (const auto& nx : n->next) {
      if (!nx) continue;
      auto [it, inserted] = deps.try_emplace(nx.get(), 0);
      ++it->second;
      if (inserted) stack.push_back(nx.get());
    }
  }
  // 2. Kahn's order; gradients are summed into `pending` until a node's count reaches zero.
  std::unordered_map<node_ptr, tensor<T, D>> pending;
  pending[root.get()] = seed;
  std::vector<node_ptr> ready{root.get()};
  while (!ready.empty()) {
    node_ptr n = ready.back();
    ready.pop_back();
    tensor<T, D> g;
    if (auto it = pending.find(n); it != pending.end()) {
      g = std::move(it->second);
      pending.erase(it);
    }
    std::vector<tensor<T, D>> grads;
    if (g.defined()) {  // a branch nothing flowed into is skipped, but still released below
      for (auto& h : n->hooks) h(g);
      grads = n->backward(g);
      if (!n->is_accumulator()) {
        LTL_CHECK(grads.size() == n->next.size(), autograd_error,
                  "backward of '{}' returned {} gradients for {} inputs", n->name(), grads.size(), n->next.size());
      }
    }
    if (!retain_graph) n->release();
    for (std::size_t i = 0; i < n->next.size(); ++i) {
      const auto& nx = n->next[i];
      if (!nx) continue;
      if (i < grads.size() && grads[i].defined()) {
        auto& gi = grads[i];
        LTL_CHECK(gi.sizes() == n->input_shapes[i], autograd_error,
                  "backward of '{}' produced a gradient of shape {} for input {} of shape {}", n->name(), gi.sizes(),
                  i, n->input_shapes[i]);
        auto& acc = pending[nx.get()];
        if (!acc.defined()) {
          acc = std::move(gi);
        } else if (acc.storage_use_count() == 1 && acc.is_contiguous()) {
          accumulate(acc, gi);  // the sum's own buffer (nothing else sees it): summed in place
        } else {
          acc = add(acc, gi);
        }
      }
      if (--deps[nx.get()] == 0) ready.push_back(nx.get());
    }
  }
}

}  // namespace detail

template <real_scalar T, device D>
void variable<T, D>::backward(const tensor_type& seed, backward_options opt) const {
  LTL_CHECK(seed.sizes() == sizes(), shape_error, "backward: seed gradient shape {} differs from output shape {}",
            seed.sizes(), sizes());
  auto edge = gradient_edge();
  LTL_CHECK(edge, autograd_error, "backward: the output does not require grad (no input had requires_grad set)");
  detail::run_backward<T, D>(edge, seed, opt.retain_graph);
}

namespace detail {
/// Records `name` producing `out` from the variables `inputs` point to (see make_result).
template <real_scalar T, device D, class Ptrs, class F>
variable<T, D> record(tensor<T, D> out, std::string name, const Ptrs& inputs, F&& backward_fn) {
  variable<T, D> result(std::move(out), false);
  if (!grad_enabled()) return result;
  bool any = false;
  for (const variable<T, D>* in : inputs) any = any || in->requires_grad();
  if (!any) return result;
  auto n = std::make_shared<function_node<T, D, std::decay_t<F>>>(std::move(name), std::forward<F>(backward_fn));
  n->next.reserve(inputs.size());
  n->input_shapes.reserve(inputs.size());
  for (const variable<T, D>* in : inputs) {
    n->next.push_back(in->gradient_edge());
    n->input_shapes.push_back(in->sizes());
  }
  auto& s = result.impl();
  s.requires_grad = true;
  s.grad_fn = std::move(n);
  return result;
}
}  // namespace detail

/// Records the op `name` producing `out` from `inputs`, with `backward_fn(grad_out)` (or
/// `backward_fn(grad_out, need)`) returning one gradient per input. Records nothing (and drops
/// `backward_fn` with what it saved) when grad mode is off or no input requires grad.
template <real_scalar T, device D, class F>
variable<T, D> make_result(tensor<T, D> out, std::string name, std::initializer_list<const variable<T, D>*> inputs,
                           F&& backward_fn) {
  return detail::record<T, D>(std::move(out), std::move(name), inputs, std::forward<F>(backward_fn));
}

/// make_result for a run-time number of inputs (e.g. concat).
template <real_scalar T, device D, class F>
variable<T, D> make_result(tensor<T, D> out, std::string name, const std::vector<variable<T, D>>& inputs,
                           F&& backward_fn) {
  std::vector<const variable<T, D>*> ptrs;
  ptrs.reserve(inputs.size());
  for (const auto& v : inputs) ptrs.push_back(&v);
  return detail::record<T, D>(std::move(out), std::move(name), ptrs, std::forward<F>(backward_fn));
}

}  // namespace ltl
