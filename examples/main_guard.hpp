#pragma once
// The error boundary of the example programs: the library reports bad input as ltl::error
// (naming the file, field or flag), printed as one line with exit status 1; anything else that
// escapes (std::bad_alloc, a bug) is still one line on stderr and exit status 2, never
// std::terminate's abort.

#include <ltlearn/core/error.hpp>

#include <fmt/format.h>

#include <cstdio>
#include <exception>
#include <utility>

namespace example {

/// Runs `body` (returning the exit status) behind the boundary; `program` prefixes messages.
/// After an error, `on_error(status)` gives the exit status (a data-parallel job aborts all its
/// ranks there: the others may wait in a collective that would never complete).
template <class F, class OnError>
int guarded_main(const char* program, F&& body, OnError&& on_error) noexcept {
  int status = 2;
  try {
    try {
      return body();
    } catch (const ltl::error& e) {
      status = 1;
      fmt::print(stderr, "{}: {}\n", program, e.what());
    } catch (const std::exception& e) {
      fmt::print(stderr, "{}: unexpected error: {}\n", program, e.what());
    } catch (...) {
      fmt::print(stderr, "{}: unexpected error of an unknown type\n", program);
    }
  } catch (...) {  // printing itself failed (stderr closed, out of memory)
  }
  return on_error(status);
}

/// guarded_main for a single process: the status is the exit status.
template <class F>
int guarded_main(const char* program, F&& body) noexcept {
  return guarded_main(program, std::forward<F>(body), [](int status) { return status; });
}

}  // namespace example
