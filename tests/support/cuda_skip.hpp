#pragma once
// Skipping [cuda] test cases visibly: without a usable GPU, or while the CUDA backend is not yet
// a complete compute device, a case WARNs "SKIPPED: <reason>" and returns; ctest reports it as
// skipped (catch_discover_tests' SKIP_REGULAR_EXPRESSION "SKIPPED:"). Needs nvcc (a .cu file).

#include <ltlearn/cuda.hpp>

#include <catch2/catch.hpp>

/// Skips the rest of a [cuda] test case, visibly, when no GPU is usable.
#ifndef LTL_REQUIRE_GPU
#define LTL_REQUIRE_GPU()                                   \
  do {                                                      \
    if (!ltl::cuda::available()) {                          \
      WARN("SKIPPED: " << ltl::cuda::unavailable_reason()); \
      return;                                               \
    }                                                       \
  } while (0)
#endif

/// Why a case that instantiates models for device D cannot run: D lacks kernels of the contract.
#define LTL_SKIP_INCOMPLETE_BACKEND(D)                                                                    \
  WARN("SKIPPED: the " << D::name                                                                         \
                       << " backend is not a complete compute_device yet (backends/contract/kernels.hpp); " \
                          "this case runs once every kernel area is provided")

namespace ltl_test {
/// Restores the current context's settings when a case ends, passed or failed, so that a case
/// that changes them (upload path, workspace limit, TF32) cannot leak its change into later cases.
struct settings_guard {
  ltl::cuda::settings saved = ltl::cuda::context::current().settings();
  settings_guard() = default;
  settings_guard(const settings_guard&) = delete;
  settings_guard& operator=(const settings_guard&) = delete;
  ~settings_guard() { ltl::cuda::context::current().settings() = saved; }
};
}  // namespace ltl_test
