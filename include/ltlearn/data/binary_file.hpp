#pragma once
/// \file
/// Whole-file reading (plain or gzip, through zlib) and a bounds-checked big-endian byte cursor
/// whose errors name the file, the field and the byte offset (ARCHITECTURE §6).

#include "ltlearn/core/error.hpp"

#include <fmt/format.h>
#include <zlib.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace ltl::data {

/// The bytes of a file and whether they were gunzipped (offsets then refer to the decompressed
/// stream, which error messages say).
struct file_bytes {
  std::string path;
  std::vector<std::uint8_t> bytes;
  bool gzipped = false;
};

/// Reads a whole file; gzip files (detected by their magic bytes, whatever the extension) are
/// decompressed. Missing, unreadable, corrupt or truncated files throw io_error naming the file.
inline file_bytes read_file_bytes(const std::filesystem::path& path) {
  file_bytes out;
  out.path = path.string();
  std::error_code ec;
  LTL_CHECK(std::filesystem::exists(path, ec), io_error, "{}: no such file", out.path);
  LTL_CHECK(std::filesystem::is_regular_file(path, ec), io_error, "{}: not a regular file", out.path);
  const auto raw_size = std::filesystem::file_size(path, ec);
  LTL_CHECK(!ec, io_error, "{}: cannot stat: {}", out.path, ec.message());

  // gzopen reads plain files transparently, so one code path serves both formats.
  errno = 0;
  gzFile f = gzopen(out.path.c_str(), "rb");
  LTL_CHECK(f != nullptr, io_error, "{}: cannot open: {}", out.path, errno ? std::strerror(errno) : "out of memory");
  struct closer {
    gzFile f;
    ~closer() { gzclose(f); }
  } guard{f};
  gzbuffer(f, 1u << 17);

  out.bytes.reserve(static_cast<std::size_t>(raw_size));
  constexpr unsigned chunk = 1u << 20;
  for (;;) {
    const std::size_t old = out.bytes.size();
    out.bytes.resize(old + chunk);
    const int got = gzread(f, out.bytes.data() + old, chunk);
    if (got < 0) {
      int err = Z_OK;
      const char* msg = gzerror(f, &err);
      throw io_error(fmt::format("{}: read failed after {} decompressed bytes: {}", out.path, old, msg));
    }
    out.bytes.resize(old + static_cast<std::size_t>(got));
    if (got == 0) break;
  }
  out.gzipped = gzdirect(f) == 0;
  int err = Z_OK;
  const char* msg = gzerror(f, &err);
  // zlib reports a gzip stream cut short as Z_BUF_ERROR after returning the bytes it could decode.
  LTL_CHECK(err == Z_OK, io_error, "{}: corrupt or truncated gzip stream after {} decompressed bytes: {}", out.path,
            out.bytes.size(), msg);
  return out;
}

/// Sequential reader over a byte buffer that never reads past its end: every read names the
/// field it is reading, and running out of bytes throws io_error with file, field and offset.
class byte_reader {
 public:
  explicit byte_reader(const file_bytes& f) noexcept : file_(f), data_(f.bytes) {}

  [[nodiscard]] std::size_t offset() const noexcept { return pos_; }
  [[nodiscard]] std::size_t remaining() const noexcept { return data_.size() - pos_; }
  [[nodiscard]] const std::string& path() const noexcept { return file_.path; }
  /// "byte offset 16" or, for gzip files, "byte offset 16 (decompressed)".
  [[nodiscard]] std::string where(std::size_t off) const {
    return fmt::format("byte offset {}{}", off, file_.gzipped ? " (decompressed)" : "");
  }

  /// Next `n` bytes as a span into the buffer.
  std::span<const std::uint8_t> bytes(std::size_t n, std::string_view field) {
    LTL_CHECK(n <= remaining(), io_error, "{}: truncated: {} needs {} bytes at {} but only {} remain", file_.path,
              field, n, where(pos_), remaining());
    const auto s = data_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  std::uint8_t u8(std::string_view field) { return bytes(1, field)[0]; }
  /// Big-endian unsigned 32-bit integer (the IDX header encoding).
  std::uint32_t be32(std::string_view field) {
    const auto b = bytes(4, field);
    return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) | std::uint32_t{b[3]};
  }
  /// Throws io_error unless every byte has been consumed.
  void expect_end(std::string_view what) const {
    LTL_CHECK(remaining() == 0, io_error, "{}: {} trailing bytes after the {} at {}", file_.path, remaining(), what,
              where(pos_));
  }

 private:
  const file_bytes& file_;
  std::span<const std::uint8_t> data_;
  std::size_t pos_ = 0;
};

}  // namespace ltl::data
