#pragma once
// Archetype of optim/schedule.hpp: ltl::optim::lr_schedule.
#include "support/archetype.hpp"

#include <ltlearn/optim/any_schedule.hpp>
#include <ltlearn/optim/schedule.hpp>

namespace ltl_test {

// ---- ltl::optim::lr_schedule: 0 operator(), 1 base
template <unsigned Drop = 0>
struct lr_schedule_archetype {
  double operator()(index_t it) const
    requires keep<Drop, 0>
  {
    return 1.0 / static_cast<double>(it + 1);
  }
  [[nodiscard]] double base() const
    requires keep<Drop, 1>
  {
    return 1.0;
  }
};
static_assert(ltl::optim::lr_schedule<lr_schedule_archetype<>>, "the archetype must model ltl::optim::lr_schedule");
static_assert(first_unchecked_requirement<2>([]<unsigned D>() { return ltl::optim::lr_schedule<lr_schedule_archetype<D>>; }) ==
                  -1,
              "ltl::optim::lr_schedule accepts a type missing one of its documented requirements");
static_assert(ltl::optim::lr_schedule<ltl::optim::constant_lr>);
static_assert(ltl::optim::lr_schedule<ltl::optim::any_schedule>);

}  // namespace ltl_test
