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

#include <ltlearn/classifier/any_source.hpp>
#include <ltlearn/core/concepts.hpp>
#include <ltlearn/core/device.hpp>
#include <ltlearn/core/error.hpp>

#include <CLI/CLI.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
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
/// and returns its result (the same type for every device). ltl::value_error when the binary cannot run on that device: an
/// unknown name, "cuda" in a binary without the CUDA backend, a CUDA backend that lacks kernels,
/// or no usable GPU (with the runtime's reason).
template <class F>
auto with_device(const std::string& name, F&& run) {
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

/// Stage 2's faithful feature source (classifier::backbone_source: augmented images through the
/// frozen backbone) with the backbone on the device `name` names: on the CPU, `cpu_model`
/// itself; on another device, a model built there by `make(D{})` (a prvalue, constructed in
/// place) and filled by `load(model)` (e.g. the stage-1 checkpoint). The features come back to
/// the host, so the heads fitted on them are the same code for every device.
template <class CpuModel, class Make, class Load>
ltl::classifier::any_feature_source<float> backbone_on_device(
    const std::string& name, CpuModel& cpu_model, Make&& make, Load&& load, const ltl::data::image_dataset& ds,
    typename ltl::classifier::backbone_source<float>::transform_fn transform, std::uint64_t seed) {
  namespace cl = ltl::classifier;
  return with_device(name, [&](auto dev) {
    using D = decltype(dev);
    if constexpr (std::is_same_v<D, ltl::cpu::device>) {
      return cl::any_feature_source<float>(std::make_shared<const cl::backbone_source<float>>(cpu_model, ds, transform, seed));
    } else {
      using model_type = decltype(make(dev));
      return cl::any_feature_source<float>(std::make_shared<const cl::owning_backbone_source<float, D, model_type>>(
          [&] { return make(dev); }, load, ds, transform, seed));
    }
  });
}

}  // namespace example
