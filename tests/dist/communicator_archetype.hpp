#pragma once
// Archetype of dist/communicator.hpp: ltl::dist::communicator.
#include "support/archetype.hpp"

#include <ltlearn/dist/communicator.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>

namespace ltl_test {

// ---- ltl::dist::communicator: 0 rank, 1 size, 2 all_reduce_sum(float), 3 all_reduce_sum(double),
//      4 all_reduce_sum(int64), 5 start_all_reduce_sum(float), 6 start_all_reduce_sum(double),
//      7 progress, 8 wait_all, 9 broadcast, 10 barrier, 11 abort, 12 name.
// A world of one: every collective leaves the buffers as they are.
template <unsigned Drop = 0>
struct communicator_archetype {
  [[nodiscard]] int rank() const
    requires keep<Drop, 0>
  {
    return 0;
  }
  [[nodiscard]] int size() const
    requires keep<Drop, 1>
  {
    return 1;
  }
  void all_reduce_sum(std::span<float>)
    requires keep<Drop, 2>
  {}
  void all_reduce_sum(std::span<double>)
    requires keep<Drop, 3>
  {}
  void all_reduce_sum(std::span<std::int64_t>)
    requires keep<Drop, 4>
  {}
  void start_all_reduce_sum(std::span<float>)
    requires keep<Drop, 5>
  {}
  void start_all_reduce_sum(std::span<double>)
    requires keep<Drop, 6>
  {}
  void progress()
    requires keep<Drop, 7>
  {}
  void wait_all()
    requires keep<Drop, 8>
  {}
  void broadcast(std::span<std::byte>, int)
    requires keep<Drop, 9>
  {}
  void barrier()
    requires keep<Drop, 10>
  {}
  [[noreturn]] void abort(int code)
    requires keep<Drop, 11>
  {
    std::exit(code);
  }
  [[nodiscard]] std::string name() const
    requires keep<Drop, 12>
  {
    return "communicator archetype";
  }
};
static_assert(ltl::dist::communicator<communicator_archetype<>>, "the archetype must model ltl::dist::communicator");
static_assert(first_unchecked_requirement<13>([]<unsigned D>() {
                return ltl::dist::communicator<communicator_archetype<D>>;
              }) == -1,
              "ltl::dist::communicator accepts a type missing one of its documented requirements");
static_assert(ltl::dist::communicator<ltl::dist::local_communicator>);
static_assert(!ltl::dist::communicator<int>);

}  // namespace ltl_test
