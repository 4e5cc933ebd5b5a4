#pragma once
// Inputs shared by the hardened-parser tests (data/parsers.cpp,
// train/safetensors_checkpoint.cpp): hand-made safetensors bytes and deep JSON; with them the
// temporary directories (temp_dir.hpp) and error capture (io_message.hpp) these tests use.

#include "support/io_message.hpp"
#include "support/temp_dir.hpp"

#include <ltlearn/train/safetensors.hpp>

#include <cstdint>
#include <cstring>
#include <span>
#include <string>

namespace ltl_test {

/// A safetensors file: the 8-byte little-endian length, `header` verbatim, then `data_bytes` zeros.
inline std::string safetensors_bytes(const std::string& header, std::size_t data_bytes = 0) {
  std::string out(8, '\0');
  const std::uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + std::string(data_bytes, '\0');
}

/// JSON arrays nested `depth` deep.
inline std::string deep_json(std::size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

/// parse_safetensors over the bytes of `b`, named `name` in errors.
inline ltl::io::safetensors_data parse(const std::string& b, const std::string& name = "bad.safetensors") {
  return ltl::io::parse_safetensors(std::span<const char>(b.data(), b.size()), name);
}

}  // namespace ltl_test
