#pragma once
// Archetype of ops/conv.hpp: ltl::conv_epilogue_device.
#include "support/archetype.hpp"

#include <ltlearn/backends/cpu/kernel_set.hpp>
#include <ltlearn/ops/conv.hpp>

namespace ltl_test {

// ---- ltl::conv_epilogue_device<T, D>: 0 conv2d_forward_epilogue, found by argument-dependent
// lookup on tensor<T, D> (a function in the device tag's namespace).
template <unsigned Drop = 0>
struct epilogue_device_archetype : ltl::cpu::device {
  static constexpr const char* name = "epilogue archetype";
};
template <unsigned Drop>
  requires keep<Drop, 0>
ltl::tensor<float, epilogue_device_archetype<Drop>> conv2d_forward_epilogue(
    const ltl::tensor<float, epilogue_device_archetype<Drop>>& x, const ltl::tensor<float, epilogue_device_archetype<Drop>>&,
    const ltl::conv2d_options&, const ltl::tensor<float, epilogue_device_archetype<Drop>>&,
    const ltl::tensor<float, epilogue_device_archetype<Drop>>&, const ltl::tensor<float, epilogue_device_archetype<Drop>>&,
    bool) {
  return x;
}
static_assert(ltl::device<epilogue_device_archetype<>>);
static_assert(ltl::conv_epilogue_device<float, epilogue_device_archetype<>>,
              "the archetype must model ltl::conv_epilogue_device");
static_assert(!ltl::conv_epilogue_device<float, epilogue_device_archetype<1>>,
              "ltl::conv_epilogue_device accepts a device without conv2d_forward_epilogue");
// The kernel is per element type: a float kernel does not make a double epilogue device.
static_assert(!ltl::conv_epilogue_device<double, epilogue_device_archetype<>>);
static_assert(ltl::conv_epilogue_device<float, ltl::cpu::device> && ltl::conv_epilogue_device<double, ltl::cpu::device>);

}  // namespace ltl_test
