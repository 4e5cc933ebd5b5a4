#pragma once
// Archetype of nn/module.hpp: ltl::nn::module_like.
#include "support/archetype.hpp"

#include <ltlearn/nn/models/resnet_cifar.hpp>
#include <ltlearn/nn/module.hpp>

#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace ltl_test {

// ---- ltl::nn::module_like: 0 value_type, 1 device_type, 2 named_parameters, 3 state_dict,
//      4 train, 5 is_training, 6 load_state_dict
struct module_value_type {
  using value_type = float;
};
struct module_device_type {
  using device_type = ltl::cpu::device;
};
template <unsigned Drop = 0>
struct module_archetype : std::conditional_t<keep<Drop, 0>, module_value_type, dropped<0>>,
                          std::conditional_t<keep<Drop, 1>, module_device_type, dropped<1>> {
  using state = std::map<std::string, ltl::tensor<float>>;
  bool training_ = true;
  [[nodiscard]] std::vector<std::pair<std::string, ltl::variable<float>>> named_parameters() const
    requires keep<Drop, 2>
  {
    return {};
  }
  [[nodiscard]] state state_dict() const
    requires keep<Drop, 3>
  {
    return {};
  }
  void train(bool on)
    requires keep<Drop, 4>
  {
    training_ = on;
  }
  [[nodiscard]] bool is_training() const
    requires keep<Drop, 5>
  {
    return training_;
  }
  void load_state_dict(const state&)
    requires keep<Drop, 6>
  {}
};
static_assert(ltl::nn::module_like<module_archetype<>>, "the archetype must model ltl::nn::module_like");
static_assert(first_unchecked_requirement<7>([]<unsigned D>() { return ltl::nn::module_like<module_archetype<D>>; }) == -1,
              "ltl::nn::module_like accepts a type missing one of its documented requirements");
static_assert(ltl::nn::module_like<ltl::nn::resnet_cifar<float>>);

}  // namespace ltl_test
