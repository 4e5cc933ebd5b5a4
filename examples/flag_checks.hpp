#pragma once
// Checks of single flag values for the example programs (CLI11 validators), with messages a
// user can act on. CLI11 prefixes each message with the flag's name ("--batch-size: ...").
// CLI::PositiveNumber and CLI::NonNegativeNumber would do for the bounds, but their messages print
// the range as "2.2e-308 to 1.8e308" in full digits, and they let NaN through.

#include <CLI/CLI.hpp>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string>

namespace example {

/// A CLI11 check: the value is a finite number ≥ `lo` (> `lo` when `strict`). Integer options
/// get the check too (their own conversion then rejects fractions).
inline CLI::Validator finite_at_least(double lo, bool strict = false) {
  const std::string bound = (strict ? "> " : ">= ") + CLI::detail::to_string(lo);
  return CLI::Validator(
      [lo, strict, bound](std::string& text) -> std::string {
        errno = 0;
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        if (text.empty() || end != text.c_str() + text.size() || errno == ERANGE || !std::isfinite(v))
          return "must be a finite number " + bound + ", got '" + text + "'";
        if (strict ? !(v > lo) : !(v >= lo)) return "must be " + bound + ", got " + text;
        return {};
      },
      "NUMBER " + bound);
}

/// A CLI11 check: the value is a finite number in [lo, hi) (the half-open range of, e.g., β of
/// the class-balanced weights, where β = 1 divides by zero).
inline CLI::Validator finite_in_half_open(double lo, double hi) {
  const std::string range = "[" + CLI::detail::to_string(lo) + ", " + CLI::detail::to_string(hi) + ")";
  return CLI::Validator(
      [lo, hi, range](std::string& text) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(v) || v < lo || v >= hi)
          return "must be a number in " + range + ", got '" + text + "'";
        return {};
      },
      "NUMBER in " + range);
}

/// A CLI11 check: a value of `names`, the accepted ones listed in the message.
inline CLI::Validator one_of(std::vector<std::string> names) {
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : "|") + n;
  return CLI::Validator(
      [names, list](std::string& text) -> std::string {
        for (const auto& n : names)
          if (text == n) return {};
        return "'" + text + "' is not one of " + list;
      },
      list);
}

}  // namespace example
