#pragma once
// Inputs and error capture shared by the hardened-parser tests (data/parsers.cpp,
// train/safetensors_checkpoint.cpp): temporary directories, hand-made safetensors bytes, deep JSON.

#include <catch2/catch.hpp>
#include <ltlearn/core/error.hpp>
#include <ltlearn/train/safetensors.hpp>

#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <system_error>

namespace ltl_test {

/// A fresh directory under the system temp dir named after the test, removed on destruction.
struct temp_dir {
  std::filesystem::path path;
  explicit temp_dir(const std::string& name)
      : path(std::filesystem::temp_directory_path() / ("ltl_parsers_" + name + "_" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::filesystem::path operator/(const std::string& f) const { return path / f; }
};

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

/// The message of the ltl::io_error `f` throws; fails the test if it throws none.
template <class F>
std::string io_message(F&& f) {
  try {
    f();
  } catch (const ltl::io_error& e) {
    return e.what();
  }
  FAIL("expected an ltl::io_error");
  return {};
}

}  // namespace ltl_test
