#pragma once
/// \file
/// nn::sequential: a chain of unary modules, registered as children "0", "1", …

#include "ltlearn/nn/module.hpp"

#include <memory>
#include <string>
#include <vector>

namespace ltl::nn {

/// Applies its layers in order.
template <real_scalar T, device D = cpu::device>
class sequential : public unary_module<T, D> {
 public:
  using typename module<T, D>::var;

  /// Appends `m` and returns it typed, so that callers can keep a handle to the layer.
  template <std::derived_from<unary_module<T, D>> M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> m) {
    layers_.push_back(this->register_module(std::to_string(layers_.size()), std::move(m)));
    return std::static_pointer_cast<M>(layers_.back());
  }
  /// Constructs a layer in place: `seq.template emplace<nn::relu<float>>()`.
  template <std::derived_from<unary_module<T, D>> M, class... Args>
  std::shared_ptr<M> emplace(Args&&... args) {
    return push_back(std::make_shared<M>(std::forward<Args>(args)...));
  }
  var forward(const var& x) override {
    var h = x;
    for (auto& l : layers_) h = l->forward(h);
    return h;
  }
  [[nodiscard]] std::size_t size() const noexcept { return layers_.size(); }
  [[nodiscard]] unary_module<T, D>& operator[](std::size_t i) { return *layers_.at(i); }

 private:
  std::vector<std::shared_ptr<unary_module<T, D>>> layers_;
};

}  // namespace ltl::nn
