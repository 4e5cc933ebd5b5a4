#pragma once
// Archetypes of core/concepts.hpp: ltl::device; ltl::real_scalar and ltl::tensor_element are
// closed sets, checked by member.
#include "support/archetype.hpp"

#include <ltlearn/backends/cpu/kernel_set.hpp>
#include <ltlearn/core/concepts.hpp>

#include <complex>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <type_traits>

namespace ltl_test {

// ---- ltl::device (core/concepts.hpp): 0 allocate, 1 deallocate, 2 copy, 3 zero, 4 name, 5 is_host
struct device_name {
  static constexpr const char* name = "archetype";
};
struct device_is_host {
  static constexpr bool is_host = true;
};
template <unsigned Drop = 0>
struct device_archetype : std::conditional_t<keep<Drop, 4>, device_name, dropped<4>>,
                          std::conditional_t<keep<Drop, 5>, device_is_host, dropped<5>> {
  static void* allocate(std::size_t n)
    requires keep<Drop, 0>
  {
    return ::operator new(n);
  }
  static void deallocate(void* p, std::size_t)
    requires keep<Drop, 1>
  {
    ::operator delete(p);
  }
  static void copy(void* dst, const void* src, std::size_t n)
    requires keep<Drop, 2>
  {
    std::memcpy(dst, src, n);
  }
  static void zero(void* p, std::size_t n)
    requires keep<Drop, 3>
  {
    std::memset(p, 0, n);
  }
};
static_assert(ltl::device<device_archetype<>>, "the archetype must model ltl::device");
static_assert(first_unchecked_requirement<6>([]<unsigned D>() { return ltl::device<device_archetype<D>>; }) == -1,
              "ltl::device accepts a type missing one of its documented requirements");
static_assert(ltl::device<ltl::cpu::device>);
static_assert(!ltl::device<int>);

// ---- ltl::real_scalar, ltl::tensor_element (core/concepts.hpp): closed sets, checked by member
static_assert(ltl::real_scalar<float> && ltl::real_scalar<double>);
static_assert(!ltl::real_scalar<long double> && !ltl::real_scalar<int> && !ltl::real_scalar<const float>);
static_assert(ltl::tensor_element<std::uint8_t> && ltl::tensor_element<std::int64_t> && ltl::tensor_element<float>);
static_assert(!ltl::tensor_element<std::string> && !ltl::tensor_element<std::complex<float>>);

}  // namespace ltl_test
