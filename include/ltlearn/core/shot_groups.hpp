#pragma once
/// \file
/// Many/medium/few-shot class groups from training class counts (SPEC §3; Liu et al. OLTR
/// convention): many > 100, medium 20–100, few < 20 training images.

#include "ltlearn/core/error.hpp"
#include "ltlearn/core/shape.hpp"

#include <cstdint>
#include <span>
#include <vector>

namespace ltl {

/// A shot group.
enum class shot_group : std::uint8_t { many, medium, few };

/// Group thresholds: many if count > many_above, few if count < few_below, else medium.
struct shot_thresholds {
  index_t many_above = 100;
  index_t few_below = 20;
};

/// The group of a class with `count` training images.
inline shot_group classify_shot(index_t count, shot_thresholds t = {}) {
  if (count > t.many_above) return shot_group::many;
  if (count < t.few_below) return shot_group::few;
  return shot_group::medium;
}

/// Printable name: "many", "medium" or "few".
inline const char* to_string(shot_group g) noexcept {
  switch (g) {
    case shot_group::many: return "many";
    case shot_group::medium: return "medium";
    case shot_group::few: return "few";
  }
  return "?";
}

/// Class indices of each group, ascending. A group may be empty; consumers must report an empty
/// group as empty rather than as a 0 % accuracy (SPEC §3).
struct shot_groups {
  std::vector<index_t> many, medium, few;
  /// The classes of group `g`.
  [[nodiscard]] const std::vector<index_t>& operator[](shot_group g) const noexcept {
    return g == shot_group::many ? many : g == shot_group::medium ? medium : few;
  }
};

/// Splits classes 0..C−1 by their training counts [C].
inline shot_groups make_shot_groups(std::span<const index_t> class_counts, shot_thresholds t = {}) {
  LTL_CHECK(t.few_below <= t.many_above + 1, value_error,
            "make_shot_groups: few_below {} must not exceed many_above + 1 ({}), or the groups would overlap",
            t.few_below, t.many_above + 1);
  shot_groups g;
  for (std::size_t c = 0; c < class_counts.size(); ++c) {
    LTL_CHECK(class_counts[c] >= 0, value_error, "make_shot_groups: class {} has a negative count {}", c,
              class_counts[c]);
    const auto k = static_cast<index_t>(c);
    switch (classify_shot(class_counts[c], t)) {
      case shot_group::many: g.many.push_back(k); break;
      case shot_group::medium: g.medium.push_back(k); break;
      case shot_group::few: g.few.push_back(k); break;
    }
  }
  return g;
}

}  // namespace ltl
