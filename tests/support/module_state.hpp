#pragma once
// A module's state (parameters and buffers) read out as plain values, for tests that compare a
// model before and after something that must, or must not, change it.

#include <ltlearn/nn/module.hpp>

#include <map>
#include <string>
#include <vector>

namespace ltl_test {

/// Every entry of `m`'s state dict, by name.
template <class T, class D>
std::map<std::string, std::vector<T>> state_values(const ltl::nn::module<T, D>& m) {
  std::map<std::string, std::vector<T>> out;
  for (auto& [name, t] : m.state_dict()) out.emplace(name, t.to_vector());
  return out;
}

/// Every entry of `m`'s state dict, concatenated in state-dict order (read back to the host for
/// a model on another device).
template <class T, class D>
std::vector<T> flat_state(const ltl::nn::module<T, D>& m) {
  std::vector<T> v;
  for (auto& [name, t] : m.state_dict()) {
    const auto x = t.to_vector();
    v.insert(v.end(), x.begin(), x.end());
  }
  return v;
}

}  // namespace ltl_test
