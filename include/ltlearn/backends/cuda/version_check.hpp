#pragma once
/// \file
/// Whether a CUDA library found at run time (cuDNN, cuBLAS, the CUDA runtime) can serve a
/// program compiled against another version of it: a pure function, so that the rule is tested
/// on machines without the libraries' other versions. context.hpp applies it at start-up.
///
/// The rule (NVIDIA's compatibility promise for these libraries): the major version must be the
/// same, since each major version changes the ABI. A newer minor version than the one compiled
/// against is fine; an older one runs, but may lack fixes the program was built with, so it is
/// accepted with a note.

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace ltl::cuda {

/// A library version split into its parts.
struct library_version {
  int major = 0;  ///< ABI generation: must match
  int minor = 0;
  int patch = 0;
  friend constexpr bool operator==(const library_version&, const library_version&) = default;
};

/// The three parts of a version encoded as major·10000 + minor·100 + patch (CUDNN_VERSION and
/// cudnnGetVersion() since cuDNN 9, CUBLAS_VERSION).
constexpr library_version decode_version_10000(long long v) noexcept {
  return {static_cast<int>(v / 10000), static_cast<int>(v / 100 % 100), static_cast<int>(v % 100)};
}

/// The parts of a CUDA runtime version as cudaRuntimeGetVersion and CUDART_VERSION encode it
/// (major·1000 + minor·10).
constexpr library_version decode_cuda_version(int v) noexcept { return {v / 1000, v % 1000 / 10, 0}; }

/// Outcome of comparing a compiled-against version with the one found at run time.
struct version_verdict {
  bool ok = true;       ///< false: the library cannot be used
  std::string message;  ///< why not, or a note when usable but older; empty when all is well
};

/// Compares `library`'s version compiled against with the one `found` at run time; `hint` (say
/// where to get a matching one) is appended to a refusal.
inline version_verdict check_library_version(std::string_view library, library_version compiled,
                                             library_version found, std::string_view hint = {}) {
  version_verdict v;
  if (found.major != compiled.major) {
    v.ok = false;
    v.message = fmt::format(
        "{} found at run time is version {}.{}.{}, but ltlearn was compiled against {}.{}.{}: a different major "
        "version is not compatible{}{}",
        library, found.major, found.minor, found.patch, compiled.major, compiled.minor, compiled.patch,
        hint.empty() ? "" : "; ", hint);
  } else if (found.minor < compiled.minor) {
    v.message = fmt::format("{} found at run time ({}.{}.{}) is older than the {}.{}.{} ltlearn was compiled against",
                            library, found.major, found.minor, found.patch, compiled.major, compiled.minor,
                            compiled.patch);
  }
  return v;
}

}  // namespace ltl::cuda
