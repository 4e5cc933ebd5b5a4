#pragma once
// The skip rule of the [cuda] test cases, shared by the CUDA test binaries.

#include <catch2/catch.hpp>
#include <ltlearn/backends/cuda/error.hpp>

/// Skips the rest of a [cuda] test case, visibly, when no GPU is usable: the WARN's
/// "SKIPPED: <reason>" is what ctest's SKIP_REGULAR_EXPRESSION reports as a skip.
#define LTL_REQUIRE_GPU()                                          \
  do {                                                             \
    if (!ltl::cuda::available()) {                                 \
      WARN("SKIPPED: " << ltl::cuda::unavailable_reason());        \
      return;                                                      \
    }                                                              \
  } while (0)
