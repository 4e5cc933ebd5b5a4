#pragma once
/// \file
/// Bounded file reading for the data parsers: regular files only, raw bytes up to a size cap,
/// gzip inflated incrementally (only as far as the caller asks), and a bounds-checked big-endian
/// byte cursor whose errors name the file, the field and the byte offset (ARCHITECTURE §6).
///
/// The parsers take byte buffers (so they can be fuzzed); the file readers are thin wrappers
/// over read_raw_file, which refuses directories, FIFOs and devices before reading a byte.

#include "ltlearn/core/error.hpp"

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace ltl::data {

/// Most bytes a reader holds for one file, raw or decompressed (8 GiB): far above every data set
/// and checkpoint the library reads, low enough that a corrupt header or a gzip bomb fails with
/// an io_error instead of exhausting memory.
inline constexpr std::size_t max_file_bytes = std::size_t{1} << 33;

/// The bytes of a file and whether they were gunzipped (offsets then refer to the decompressed
/// stream, which error messages say).
struct file_bytes {
  std::string path;
  std::vector<std::uint8_t> bytes;
  bool gzipped = false;
};

namespace detail {
inline const char* file_kind(std::filesystem::file_type t) {
  using ft = std::filesystem::file_type;
  switch (t) {
    case ft::directory: return "a directory";
    case ft::fifo: return "a FIFO";
    case ft::character: return "a character device";
    case ft::block: return "a block device";
    case ft::socket: return "a socket";
    default: return "not a regular file";
  }
}
}  // namespace detail

/// Reads the raw bytes of a regular file (no decompression). Missing files, directories, FIFOs,
/// devices and files larger than `limit` throw io_error naming the file; the file type is checked
/// before opening and again on the open descriptor (opened non-blocking), so nothing can block
/// or read without end.
inline std::vector<std::uint8_t> read_raw_file(const std::filesystem::path& path, std::size_t limit = max_file_bytes) {
  const std::string name = path.string();
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  LTL_CHECK(st.type() != std::filesystem::file_type::not_found, io_error, "{}: no such file", name);
  LTL_CHECK(!ec, io_error, "{}: cannot stat: {}", name, ec.message());
  LTL_CHECK(st.type() == std::filesystem::file_type::regular, io_error, "{}: not a regular file ({})", name,
            detail::file_kind(st.type()));

  const int fd = ::open(name.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  LTL_CHECK(fd >= 0, io_error, "{}: cannot open: {}", name, std::strerror(errno));
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } guard{fd};
  struct stat sb {};
  LTL_CHECK(::fstat(fd, &sb) == 0, io_error, "{}: cannot stat: {}", name, std::strerror(errno));
  // The path may have been replaced between the two checks.
  LTL_CHECK(S_ISREG(sb.st_mode), io_error, "{}: not a regular file", name);
  const auto size = static_cast<std::uintmax_t>(sb.st_size);
  LTL_CHECK(size <= limit, io_error, "{}: {} bytes exceeds the {}-byte limit for one file", name, size, limit);

  std::vector<std::uint8_t> out(static_cast<std::size_t>(size));
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t got = ::read(fd, out.data() + done, std::min<std::size_t>(out.size() - done, std::size_t{1} << 30));
    if (got < 0 && errno == EINTR) continue;
    LTL_CHECK(got >= 0, io_error, "{}: read failed after {} bytes: {}", name, done, std::strerror(errno));
    LTL_CHECK(got > 0, io_error, "{}: file shrank while reading: {} of {} bytes", name, done, out.size());
    done += static_cast<std::size_t>(got);
  }
  return out;
}

/// Byte stream over a buffer: plain bytes pass through, gzip data (magic 1f 8b, whatever the
/// name) is inflated incrementally, so a caller decompresses only as far as a header declares.
/// Like zlib's gzread, concatenated gzip members are read in turn and other bytes after a member
/// are ignored. Corrupt or truncated gzip data throws io_error naming the source.
class byte_source {
 public:
  byte_source(std::span<const std::uint8_t> raw, std::string name) : raw_(raw), name_(std::move(name)) {
    gzipped_ = raw_.size() >= 2 && raw_[0] == 0x1f && raw_[1] == 0x8b;
    if (gzipped_) {
      LTL_CHECK(inflateInit2(&zs_, 16 + MAX_WBITS) == Z_OK, io_error, "{}: cannot initialise zlib", name_);
      inflating_ = true;
    }
  }
  byte_source(const byte_source&) = delete;
  byte_source& operator=(const byte_source&) = delete;
  ~byte_source() {
    if (inflating_) inflateEnd(&zs_);
  }

  /// Whether the buffer holds gzip data (then offsets refer to the decompressed stream).
  [[nodiscard]] bool gzipped() const noexcept { return gzipped_; }

  /// Appends up to `n` more bytes to `out` and returns how many; fewer than `n` only at the end
  /// of the data. Memory grows with the bytes produced, never with `n`.
  std::size_t read(std::vector<std::uint8_t>& out, std::size_t n) {
    if (!gzipped_) {
      const std::size_t k = std::min(n, raw_.size() - pos_);
      out.insert(out.end(), raw_.begin() + static_cast<std::ptrdiff_t>(pos_),
                 raw_.begin() + static_cast<std::ptrdiff_t>(pos_ + k));
      pos_ += k;
      return k;
    }
    std::size_t produced = 0;
    while (produced < n && !finished_) {
      // Geometric growth from 4 KiB to 1 MiB: tiny inputs stay cheap, large ones amortised.
      const std::size_t chunk =
          std::min({n - produced, std::max<std::size_t>(out.size(), std::size_t{1} << 12), std::size_t{1} << 20});
      const std::size_t old = out.size();
      out.resize(old + chunk);
      zs_.next_out = reinterpret_cast<Bytef*>(out.data() + old);
      zs_.avail_out = static_cast<uInt>(chunk);
      int rc = Z_OK;
      while (zs_.avail_out > 0) {
        if (zs_.avail_in == 0) {
          const std::size_t k = std::min<std::size_t>(raw_.size() - pos_, UINT_MAX);
          zs_.next_in = const_cast<Bytef*>(reinterpret_cast<const Bytef*>(raw_.data() + pos_));
          zs_.avail_in = static_cast<uInt>(k);
          pos_ += k;
        }
        rc = inflate(&zs_, Z_NO_FLUSH);
        if (rc == Z_STREAM_END) {
          if (!next_member()) break;
          continue;
        }
        if (rc == Z_BUF_ERROR && zs_.avail_in == 0 && pos_ == raw_.size()) break;  // input exhausted
        if (rc != Z_OK) break;
      }
      const std::size_t got = chunk - zs_.avail_out;
      out.resize(old + got);
      produced += got;
      total_ += got;
      if (finished_) break;
      if (zs_.avail_out > 0) {
        const char* why = rc == Z_BUF_ERROR ? "unexpected end of data" : (zs_.msg ? zs_.msg : "inflate failed");
        throw io_error(fmt::format("{}: corrupt or truncated gzip stream after {} decompressed bytes: {}", name_, total_,
                                   why));
      }
    }
    return produced;
  }

 private:
  // After a member's end: starts the next member if one follows, else marks the stream finished.
  bool next_member() {
    // Unconsumed input is contiguous: zlib's window ends where pos_ does.
    const std::size_t at = pos_ - zs_.avail_in;
    if (raw_.size() - at >= 2 && raw_[at] == 0x1f && raw_[at + 1] == 0x8b) {
      LTL_CHECK(inflateReset(&zs_) == Z_OK, io_error, "{}: cannot reset zlib", name_);
      return true;
    }
    finished_ = true;
    return false;
  }

  std::span<const std::uint8_t> raw_;
  std::string name_;
  std::size_t pos_ = 0;    // raw bytes handed to zlib (or copied, for plain data)
  std::size_t total_ = 0;  // decompressed bytes produced
  z_stream zs_{};
  bool gzipped_ = false, inflating_ = false, finished_ = false;
};

/// Decodes a whole buffer (gunzipping if needed) into at most `limit` bytes; more is an io_error
/// (found after inflating `limit` + 1 bytes, never the whole stream).
inline file_bytes decode_bytes(std::span<const std::uint8_t> raw, std::string name,
                               std::size_t limit = max_file_bytes) {
  file_bytes out;
  out.path = std::move(name);
  byte_source src(raw, out.path);
  out.gzipped = src.gzipped();
  src.read(out.bytes, limit + 1);
  LTL_CHECK(out.bytes.size() <= limit, io_error, "{}: decompresses to more than the {}-byte limit", out.path, limit);
  return out;
}

/// Reads a whole regular file; gzip files (detected by their magic bytes, whatever the extension)
/// are decompressed. Missing, non-regular, unreadable, corrupt, truncated or oversized
/// (`limit`) files throw io_error naming the file.
inline file_bytes read_file_bytes(const std::filesystem::path& path, std::size_t limit = max_file_bytes) {
  const auto raw = read_raw_file(path, limit);
  return decode_bytes(raw, path.string(), limit);
}

/// Sequential reader over a byte buffer that never reads past its end: every read names the
/// field it is reading, and running out of bytes throws io_error with file, field and offset.
class byte_reader {
 public:
  explicit byte_reader(const file_bytes& f) noexcept : path_(f.path), data_(f.bytes), gzipped_(f.gzipped) {}

  [[nodiscard]] std::size_t offset() const noexcept { return pos_; }
  [[nodiscard]] std::size_t remaining() const noexcept { return data_.size() - pos_; }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  /// "byte offset 16" or, for gzip files, "byte offset 16 (decompressed)".
  [[nodiscard]] std::string where(std::size_t off) const {
    return fmt::format("byte offset {}{}", off, gzipped_ ? " (decompressed)" : "");
  }

  /// Next `n` bytes as a span into the buffer.
  std::span<const std::uint8_t> bytes(std::size_t n, std::string_view field) {
    LTL_CHECK(n <= remaining(), io_error, "{}: truncated: {} needs {} bytes at {} but only {} remain", path_, field, n,
              where(pos_), remaining());
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
  /// Throws io_error unless every byte has been consumed. `at_least`: the buffer stops one byte
  /// past what was expected (a bounded read), so the count is a lower bound.
  void expect_end(std::string_view what, bool at_least = false) const {
    LTL_CHECK(remaining() == 0, io_error, "{}: {}{} trailing bytes after the {} at {}", path_,
              at_least ? "at least " : "", remaining(), what, where(pos_));
  }

 private:
  std::string path_;
  std::span<const std::uint8_t> data_;
  bool gzipped_ = false;
  std::size_t pos_ = 0;
};

}  // namespace ltl::data
