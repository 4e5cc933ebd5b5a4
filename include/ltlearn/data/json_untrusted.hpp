#pragma once
/// \file
/// JSON from untrusted files (checkpoint headers and metadata, annotation files): a nesting-depth
/// guard that runs before nlohmann sees the text, and a parser that also rejects duplicate keys
/// and turns every nlohmann error into an io_error naming the file and the field. Shared by the
/// safetensors reader (train/) and the dataset readers (data/), hence its place in data/.

#include "ltlearn/core/error.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstddef>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace ltl::io {

/// Deepest nesting of arrays and objects a JSON header or metadata document may have. nlohmann's
/// parser (and copying or destroying its values) recurses once per level, so deeper documents
/// are refused by a byte scan before they reach it; 64 is far above anything the library writes.
inline constexpr std::size_t max_json_depth = 64;

namespace detail {
/// Whether `text` nests arrays/objects deeper than `limit` (brackets inside strings do not count).
/// A linear scan without recursion; stops at the first level past the limit.
inline bool json_deeper_than(std::string_view text, std::size_t limit) {
  std::size_t depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return true;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return false;
}

/// `s` cut to `n` characters for an error message (names and nlohmann's messages can be huge).
inline std::string clip(std::string_view s, std::size_t n = 120) {
  return s.size() <= n ? std::string(s) : fmt::format("{}... ({} bytes)", s.substr(0, n), s.size());
}

}  // namespace detail

/// Parses JSON from an untrusted source: nesting deeper than max_json_depth, a key repeated in
/// one object (nlohmann would silently keep the last) and every nlohmann error become io_error
/// naming `file` and `field`; messages never quote the document.
inline nlohmann::json parse_json_untrusted(std::string_view text, const std::string& file, std::string_view field) {
  LTL_CHECK(!detail::json_deeper_than(text, max_json_depth), io_error,
            "{}: {} nests arrays/objects deeper than {} levels", file, field, max_json_depth);
  std::vector<std::set<std::string>> keys;  // keys seen in each open object, innermost last (a set: no quadratic scan)
  const nlohmann::json::parser_callback_t on_event = [&](int, nlohmann::json::parse_event_t ev, nlohmann::json& v) {
    using pe = nlohmann::json::parse_event_t;
    if (ev == pe::object_start) {
      keys.emplace_back();
    } else if (ev == pe::object_end) {
      if (!keys.empty()) keys.pop_back();
    } else if (ev == pe::key && !keys.empty() && v.is_string()) {
      const auto& k = v.get_ref<const std::string&>();
      LTL_CHECK(keys.back().insert(k).second, io_error, "{}: {} has the duplicate key '{}' (in the object at depth {})",
                file, field, detail::clip(k), keys.size());
    }
    return true;
  };
  try {
    return nlohmann::json::parse(text.begin(), text.end(), on_event);
  } catch (const nlohmann::json::exception& e) {
    throw io_error(fmt::format("{}: {} is not valid JSON: {}", file, field, detail::clip(e.what(), 200)));
  }
}

}  // namespace ltl::io
