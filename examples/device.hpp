#pragma once
// --device cpu|cuda for the example trainers: which device type their model and training step
// are instantiated for.
//
// The examples are plain C++ (g++). A CUDA build (-DLTL_WITH_CUDA=ON) also builds `<example>_cuda`
// from a two-line .cu file (examples/<example>_cuda.cu) that defines LTL_EXAMPLE_CUDA, includes
// <ltlearn/cuda.hpp> and then the example's own source, so the same main is compiled by nvcc
// with `ltl::cuda::device` available. Only those binaries accept --device cuda; the others say
// how to get one. A CUDA binary still needs a complete CUDA backend (compute_device<cuda::device>)
// to run a model: until then --device cuda reports which part is missing.

#include <ltlearn/core/concepts.hpp>
#include <ltlearn/core/device.hpp>
#include <ltlearn/core/error.hpp>

#include <CLI/CLI.hpp>

#include <string>
#include <utility>

#if defined(LTL_EXAMPLE_CUDA)
#include <ltlearn/cuda.hpp>
#endif

namespace example {

/// True in the binaries compiled with the CUDA backend (the `<example>_cuda` targets).
inline constexpr bool built_with_cuda =
#if defined(LTL_EXAMPLE_CUDA)
    true;
#else
    false;
#endif

/// Why this binary cannot run --device cuda (empty in a CUDA binary).
inline std::string cuda_build_missing() {
  if (built_with_cuda) return {};
  return "this binary was built without CUDA; configure with -DLTL_WITH_CUDA=ON (CUDA toolkit and "
         "cuDNN) and run the example's CUDA binary, <example>_cuda (e.g. cmake --build build/release --target "
         "cifar_lt_cuda, then build/release/examples/cifar_lt_cuda --device cuda)";
}

/// Adds --device to `app`, storing the choice in `name` ("cpu" or "cuda"). "cuda" in a binary
/// without the CUDA backend is rejected while parsing, before any data is read.
inline void add_device_option(CLI::App& app, std::string& name) {
  app.add_option("--device", name,
                 "cpu | cuda (cuda: the <example>_cuda binary of a build configured with -DLTL_WITH_CUDA=ON)")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->check(CLI::Validator([](std::string& v) { return v == "cuda" ? cuda_build_missing() : std::string(); },
                             "", "needs a CUDA binary"))
      ->capture_default_str();
}

/// Calls `run(D{})` with D the device type `name` names (ltl::cpu::device or ltl::cuda::device)
/// and returns its result. ltl::value_error when the binary cannot run on that device: an
/// unknown name, "cuda" in a binary without the CUDA backend, a CUDA backend that lacks kernels,
/// or no usable GPU (with the runtime's reason).
template <class F>
int with_device(const std::string& name, F&& run) {
  if (name == "cpu") return std::forward<F>(run)(ltl::cpu::device{});
  LTL_CHECK(name == "cuda", value_error, "--device: unknown device '{}' (cpu or cuda)", name);
#if defined(LTL_EXAMPLE_CUDA)
  if constexpr (ltl::compute_device<ltl::cuda::device>) {
    LTL_CHECK(ltl::cuda::available(), value_error, "--device cuda: no usable GPU: {}",
              ltl::cuda::unavailable_reason());
    return std::forward<F>(run)(ltl::cuda::device{});
  } else {
    throw ltl::value_error(
        "--device cuda: this build's CUDA backend is incomplete (ltl::compute_device<ltl::cuda::device> is false: "
        "see backends/cuda/kernel_set.hpp for the kernel areas it lacks); use --device cpu");
  }
#else
  throw ltl::value_error("--device cuda: " + cuda_build_missing());
#endif
}

}  // namespace example
