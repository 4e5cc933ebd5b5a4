#pragma once
/// \file
/// mixing::any_mixing<T>: a type-erased feature-mixing policy for CPU models of element type T.

#include "ltlearn/mixing/policies.hpp"

#include <functional>
#include <string>

namespace ltl::mixing {

/// Holds any mixing policy by value.
template <real_scalar T = float>
class any_mixing {
 public:
  template <class X>
    requires(!std::same_as<std::decay_t<X>, any_mixing>)
  any_mixing(X x)  // NOLINT(google-explicit-constructor)
      : mix_([x](const variable<T>& h, const tensor<std::int64_t>& y, const std::vector<double>& n, rng& g) {
          return x.mix(h, y, n, g);
        }),
        active_([x](index_t e) { return x.active(e); }),
        point_(x.point()),
        name_(x.name()) {}
  [[nodiscard]] std::string point() const { return point_; }
  [[nodiscard]] bool active(index_t epoch) const { return active_(epoch); }
  [[nodiscard]] std::string name() const { return name_; }
  mix_result<T, cpu::device> mix(const variable<T>& h, const tensor<std::int64_t>& y, const std::vector<double>& n,
                                 rng& g) const {
    return mix_(h, y, n, g);
  }

 private:
  std::function<mix_result<T, cpu::device>(const variable<T>&, const tensor<std::int64_t>&, const std::vector<double>&, rng&)> mix_;
  std::function<bool(index_t)> active_;
  std::string point_, name_;
};

}  // namespace ltl::mixing
