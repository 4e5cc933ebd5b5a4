#pragma once
/// \file
/// losses::any_policy: a type-erased loss policy, for choosing the loss at run time.

#include "ltlearn/losses/policies.hpp"

#include <functional>
#include <string>

namespace ltl::losses {

/// Holds any loss policy by value.
class any_policy {
 public:
  template <loss_policy P>
    requires(!std::same_as<std::decay_t<P>, any_policy>)
  any_policy(P p)  // NOLINT(google-explicit-constructor)
      : apply_([p](const std::vector<double>& n, index_t e, loss_terms& t) { p.apply(n, e, t); }), name_(p.name()) {}
  void apply(const std::vector<double>& n, index_t epoch, loss_terms& t) const { apply_(n, epoch, t); }
  [[nodiscard]] std::string name() const { return name_; }

 private:
  std::function<void(const std::vector<double>&, index_t, loss_terms&)> apply_;
  std::string name_;
};

}  // namespace ltl::losses
