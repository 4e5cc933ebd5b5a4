#pragma once
/// \file
/// Fault injection for the crash-safety tests: with the environment variable
/// `LTL_FAULT=<point>[#<n>]` set, the process kills itself with SIGKILL (as `kill -9` would:
/// no destructors, no stdio flush) the n-th time (default: the first) it reaches the named
/// point. Points are `<file name>:<stage>`, e.g. `checkpoint.safetensors:after_rename#2`:
///
///   atomic writes (io::atomic_write):   mid_write, before_fsync, before_rename, after_rename
///   the training log (log.jsonl):       before_append, after_append
///
/// Always compiled in, inert unless the variable is set. A test-only define would make the
/// crash tests exercise a differently built binary than the one users run, and would cost CI a
/// second build of the example programs; the price here is one getenv per process (cached) and a
/// string compare per point reached, next to an fsync. The kill announces itself on stderr, so
/// a stray LTL_FAULT in someone's environment cannot pass for a real crash.

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace ltl::fault {

namespace detail {
/// The armed point and how many times it has been reached; an empty point when unset.
struct armed {
  std::string point;
  long at = 1;
  long seen = 0;
};
inline armed& state() {
  static armed a = [] {
    armed s;
    const char* env = std::getenv("LTL_FAULT");
    if (env == nullptr || *env == '\0') return s;
    std::string v(env);
    if (const auto hash = v.rfind('#'); hash != std::string::npos) {
      s.at = std::strtol(v.c_str() + hash + 1, nullptr, 10);
      v.resize(hash);
    }
    s.point = std::move(v);
    return s;
  }();
  return a;
}
}  // namespace detail

/// Whether LTL_FAULT names any point (the tests check that the hook is live).
[[nodiscard]] inline bool armed() { return !detail::state().point.empty(); }

/// Marks a point (`file` as its file name, `stage` as above): kills the process with SIGKILL
/// when LTL_FAULT names it and this is the requested occurrence. Not thread-safe by design: the
/// points are on the writer thread of a run.
inline void reach(std::string_view file, std::string_view stage) {
  auto& s = detail::state();
  if (s.point.empty()) return;
  const auto colon = s.point.find(':');
  if (colon == std::string::npos || std::string_view(s.point).substr(0, colon) != file ||
      std::string_view(s.point).substr(colon + 1) != stage)
    return;
  if (++s.seen != s.at) return;
  std::fprintf(stderr, "ltlearn: LTL_FAULT: killing the process at %s (occurrence %ld)\n", s.point.c_str(), s.seen);
  std::fflush(stderr);
  std::raise(SIGKILL);
}

}  // namespace ltl::fault
