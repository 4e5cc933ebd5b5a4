#pragma once
/// \file
/// mixing::any_mixing<T, D>: a type-erased feature-mixing policy for models of element type T on
/// device D.

#include "ltlearn/mixing/policies.hpp"

#include <functional>
#include <string>

namespace ltl::mixing {

/// Holds any mixing policy by value.
template <real_scalar T = float, device D = cpu::device>
class any_mixing {
 public:
  template <class X>
    requires(!std::same_as<std::decay_t<X>, any_mixing>)
  any_mixing(X x)  // NOLINT(google-explicit-constructor)
      : mix_([x](const variable<T, D>& h, const tensor<std::int64_t, D>& y, const std::vector<double>& n, rng& g) {
          return x.mix(h, y, n, g);
        }),
        active_([x](index_t e) { return x.active(e); }),
        point_(x.point()),
        name_(x.name()) {}
  [[nodiscard]] std::string point() const { return point_; }
  [[nodiscard]] bool active(index_t epoch) const { return active_(epoch); }
  [[nodiscard]] std::string name() const { return name_; }
  mix_result<T, D> mix(const variable<T, D>& h, const tensor<std::int64_t, D>& y, const std::vector<double>& n,
                       rng& g) const {
    return mix_(h, y, n, g);
  }

 private:
  std::function<mix_result<T, D>(const variable<T, D>&, const tensor<std::int64_t, D>&, const std::vector<double>&,
                                 rng&)>
      mix_;
  std::function<bool(index_t)> active_;
  std::string point_, name_;
};

}  // namespace ltl::mixing
