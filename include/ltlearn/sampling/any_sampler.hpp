#pragma once
/// \file
/// sampling::any_sampler: a type-erased sampler, for choosing the policy at run time (command
/// lines) without instantiating the trainer once per policy.

#include "ltlearn/sampling/samplers.hpp"

#include <functional>
#include <memory>
#include <string>

namespace ltl::sampling {

/// Holds any sampler by value.
class any_sampler {
 public:
  template <sampler S>
    requires(!std::same_as<std::decay_t<S>, any_sampler>)
  any_sampler(S s)  // NOLINT(google-explicit-constructor): wrapping is the point
      : impl_(std::make_shared<S>(std::move(s))),
        order_([](const void* p, index_t e) { return static_cast<const S*>(p)->epoch_indices(e); }),
        name_([](const void* p) { return static_cast<const S*>(p)->name(); }) {}
  [[nodiscard]] std::vector<index_t> epoch_indices(index_t epoch) const { return order_(impl_.get(), epoch); }
  [[nodiscard]] std::string name() const { return name_(impl_.get()); }

 private:
  std::shared_ptr<const void> impl_;
  std::vector<index_t> (*order_)(const void*, index_t);
  std::string (*name_)(const void*);
};

}  // namespace ltl::sampling
