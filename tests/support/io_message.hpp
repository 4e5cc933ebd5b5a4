#pragma once
// The message of an expected ltl::io_error, for the tests of the readers and parsers that check
// what an error names (the file, the field, the limit).

#include <catch2/catch.hpp>
#include <ltlearn/core/error.hpp>

#include <exception>
#include <string>

namespace ltl_test {

/// The message of the ltl::io_error `f` throws; fails the test, naming what happened instead,
/// when `f` throws another exception or none.
template <class F>
std::string io_message(F&& f) {
  try {
    f();
  } catch (const ltl::io_error& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("expected ltl::io_error, got: " << e.what());
  }
  FAIL("expected ltl::io_error, nothing was thrown");
  return {};
}

}  // namespace ltl_test
