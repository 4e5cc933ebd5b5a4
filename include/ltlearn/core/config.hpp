#pragma once
/// \file
/// Library-wide configuration: version, debug assertions and small portability macros.

#include <cassert>

#define LTL_VERSION_MAJOR 0
#define LTL_VERSION_MINOR 1
#define LTL_VERSION_PATCH 0

/// Debug-only check for internal invariants (user input is checked by LTL_CHECK, always on).
#if defined(NDEBUG) && !defined(LTL_FORCE_DEBUG_ASSERTS)
#define LTL_DEBUG_ASSERT(cond) ((void)0)
#else
#define LTL_DEBUG_ASSERT(cond) assert(cond)
#endif

#if defined(_OPENMP)
#define LTL_HAS_OPENMP 1
#include <omp.h>
#else
#define LTL_HAS_OPENMP 0
#endif

/// Expands its argument into an OpenMP pragma only when OpenMP is enabled.
#if LTL_HAS_OPENMP
#define LTL_OMP(x) _Pragma(#x)
#else
#define LTL_OMP(x)
#endif

namespace ltl {

/// Version of the library as {major, minor, patch}.
struct version_info {
  int major, minor, patch;
};
inline constexpr version_info version{LTL_VERSION_MAJOR, LTL_VERSION_MINOR, LTL_VERSION_PATCH};

}  // namespace ltl
