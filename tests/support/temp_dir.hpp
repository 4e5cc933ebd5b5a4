#pragma once
// Scratch directories for the tests that write files: one that stays for inspection after the
// test (scratch_dir) and one that is removed when the test leaves its scope (temp_dir).

#include <atomic>
#include <filesystem>
#include <string>
#include <system_error>

#include <unistd.h>

namespace ltl_test {

/// An empty directory `<tmp>/ltl_<name>_<pid>` (emptied if it exists). The pid keeps test binaries
/// that ctest runs side by side apart.
inline std::filesystem::path scratch_dir(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() / ("ltl_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

/// A fresh empty directory `<tmp>/ltl_<name>_<n>_<pid>`, `n` counting the temp_dirs of this
/// process, so that no two of them ever share a directory; removed with everything in it on
/// destruction.
struct temp_dir {
  std::filesystem::path path;
  explicit temp_dir(const std::string& name = "test") : path(scratch_dir(name + "_" + std::to_string(next_number()))) {}
  ~temp_dir() {
    std::error_code ec;  // a destructor must not throw; a directory left behind is harmless
    std::filesystem::remove_all(path, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  /// The path of `name` inside the directory.
  std::filesystem::path operator/(const std::string& name) const { return path / name; }

 private:
  static int next_number() {
    static std::atomic<int> counter{0};
    return counter++;
  }
};

}  // namespace ltl_test
