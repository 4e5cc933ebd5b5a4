#pragma once
// The error boundary of the example programs: the library reports bad input as ltl::error
// (naming the file, field or flag), printed as one line with exit status 1; anything else that
// escapes (std::bad_alloc, a bug) is still one line on stderr and exit status 2, never
// std::terminate's abort.

#include <ltlearn/core/error.hpp>

#include <fmt/format.h>

#include <cstdio>
#include <exception>

namespace example {

/// Runs `body` (returning the exit status) behind the boundary; `program` prefixes messages.
template <class F>
int guarded_main(const char* program, F&& body) noexcept {
  try {
    try {
      return body();
    } catch (const ltl::error& e) {
      fmt::print(stderr, "{}: {}\n", program, e.what());
      return 1;
    } catch (const std::exception& e) {
      fmt::print(stderr, "{}: unexpected error: {}\n", program, e.what());
      return 2;
    } catch (...) {
      fmt::print(stderr, "{}: unexpected error of an unknown type\n", program);
      return 2;
    }
  } catch (...) {  // printing itself failed (stderr closed, out of memory)
    return 2;
  }
}

}  // namespace example
