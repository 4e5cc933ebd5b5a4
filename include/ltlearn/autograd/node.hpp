#pragma once
/// \file
/// Autograd graph nodes. A node is the backward function of one op: it maps the gradient of
/// the op's output to gradients of the op's inputs, and links to the nodes that produced
/// those inputs (or to leaf accumulators). Nodes own the buffers saved for backward and drop
/// them right after their backward has run (unless the graph is retained).
///
/// The one kernel nodes call, `accumulate`, is the device's (backends/contract/kernels.hpp),
/// found by argument-dependent lookup when a graph is instantiated for a device.

#include "ltlearn/core/error.hpp"
#include "ltlearn/core/shape.hpp"
#include "ltlearn/tensor/tensor.hpp"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace ltl {


template <real_scalar T, device D>
class node;

/// Shared state of a variable handle.
template <real_scalar T, device D>
struct var_impl {
  tensor<T, D> value;
  tensor<T, D> grad;
  bool requires_grad = false;
  std::shared_ptr<node<T, D>> grad_fn;      ///< producer (non-leaf only)
  std::weak_ptr<node<T, D>> accumulator;    ///< leaf accumulator, created on first use
};

/// Backward function of one recorded op. Single output, any number of inputs.
template <real_scalar T, device D>
class node {
 public:
  using tensor_type = tensor<T, D>;
  using hook_type = std::function<void(const tensor_type&)>;

  explicit node(std::string name) : name_(std::move(name)) {}
  virtual ~node() = default;
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  [[nodiscard]] const std::string& name() const noexcept { return name_; }

  /// Producer of each input's gradient consumer (nullptr where the input needs no gradient).
  std::vector<std::shared_ptr<node>> next;
  /// Shape of each input, to validate the gradients backward returns.
  std::vector<shape> input_shapes;
  /// Called with the full gradient of this node's output before backward runs.
  std::vector<hook_type> hooks;

  /// Gradients with respect to each input (undefined where next[i] is null).
  virtual std::vector<tensor_type> backward(const tensor_type& grad_out) = 0;
  /// Frees what was saved for backward; a later backward() must throw autograd_error.
  virtual void release() noexcept {}
  /// True for the leaf accumulators that end the graph.
  [[nodiscard]] virtual bool is_accumulator() const noexcept { return false; }

 private:
  std::string name_;
};

/// A node whose backward is a callable holding the saved tensors by value.
template <real_scalar T, device D, class F>
class function_node final : public node<T, D> {
 public:
  using typename node<T, D>::tensor_type;
  function_node(std::string name, F f) : node<T, D>(std::move(name)), f_(std::move(f)) {}

  std::vector<tensor_type> backward(const tensor_type& grad_out) override {
    LTL_CHECK(f_.has_value(), autograd_error,
              "backward through '{}' a second time, but its saved buffers were already freed; "
              "pass retain_graph = true to the first backward()",
              this->name());
    if constexpr (std::is_invocable_v<F&, const tensor_type&, const std::vector<bool>&>) {
      // The callable can skip gradients nobody needs (e.g. conv2d's input gradient at the stem).
      std::vector<bool> needs(this->next.size());
      for (std::size_t i = 0; i < needs.size(); ++i) needs[i] = static_cast<bool>(this->next[i]);
      return (*f_)(grad_out, needs);
    } else {
      return (*f_)(grad_out);
    }
  }
  void release() noexcept override { f_.reset(); }

 private:
  std::optional<F> f_;
};

/// Ends the graph at a leaf variable: adds the incoming gradient to the leaf's `.grad`.
template <real_scalar T, device D>
class accumulate_node final : public node<T, D> {
 public:
  using typename node<T, D>::tensor_type;
  explicit accumulate_node(std::weak_ptr<var_impl<T, D>> leaf) : node<T, D>("accumulate_grad"), leaf_(std::move(leaf)) {}
  std::vector<tensor_type> backward(const tensor_type& g) override {
    if (auto leaf = leaf_.lock()) {
      if (leaf->grad.defined()) {
        accumulate(leaf->grad, g);  // backend kernel, found by argument-dependent lookup
      } else if (g.is_contiguous() && g.storage_use_count() == 1) {
        leaf->grad = g;  // no other handle sees this gradient (the usual case): adopt it, no copy
      } else {
        leaf->grad = g.clone();  // the leaf owns its gradient: optimizers update it in place
      }
    }
    return {};
  }
  [[nodiscard]] bool is_accumulator() const noexcept override { return true; }

 private:
  std::weak_ptr<var_impl<T, D>> leaf_;
};


}  // namespace ltl
