#pragma once
/// \file
/// Reading and writing the safetensors format: an 8-byte little-endian header length N, N bytes
/// of JSON mapping each tensor name to {dtype, shape, data_offsets: [begin, end)} (offsets into
/// the data section that follows) plus an optional "__metadata__" object of strings, then the
/// raw little-endian data.
///
/// Writes are atomic: a temporary file in the same directory is written, flushed to disk with
/// fsync, renamed over the target, and the directory is synced — a crash leaves either the old
/// file or the new one, never half a checkpoint. Reads validate every field and reject
/// truncated or inconsistent files with an io_error naming the file and the field.

#include "ltlearn/core/error.hpp"
#include "ltlearn/data/binary_file.hpp"
#include "ltlearn/data/json_untrusted.hpp"
#include "ltlearn/tensor/tensor.hpp"
#include "ltlearn/train/fault.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

namespace ltl::io {

static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

/// A host tensor of one of the element types a checkpoint stores.
using any_tensor = std::variant<tensor<float>, tensor<double>, tensor<std::int64_t>>;

/// Contents of a safetensors file.
struct safetensors_data {
  std::map<std::string, any_tensor> tensors;
  std::map<std::string, std::string> metadata;

  /// The tensor `name` as element type T; io_error if absent or of another dtype.
  template <class T>
  [[nodiscard]] const tensor<T>& get(const std::string& name, const std::string& file = "checkpoint") const {
    auto it = tensors.find(name);
    LTL_CHECK(it != tensors.end(), io_error, "{}: no tensor named '{}'", file, name);
    const auto* t = std::get_if<tensor<T>>(&it->second);
    LTL_CHECK(t != nullptr, io_error, "{}: tensor '{}' has another dtype than requested", file, name);
    return *t;
  }
};

namespace detail {
template <class T>
constexpr const char* dtype_name() {
  if constexpr (std::is_same_v<T, float>) return "F32";
  else if constexpr (std::is_same_v<T, double>) return "F64";
  else return "I64";
}
}  // namespace detail

/// Writes `bytes` to `path` whole or not at all: a temporary file in the same directory, fsync,
/// rename over the target, directory fsync. Failures throw io_error naming the file.
inline void atomic_write(const std::filesystem::path& path, std::span<const char> bytes) {
  const auto dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  const std::string name = path.filename().string();
  const auto tmp = dir / (name + ".tmp." + std::to_string(::getpid()));
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  LTL_CHECK(fd >= 0, io_error, "{}: cannot create temporary file: {}", tmp.string(), std::strerror(errno));
  std::size_t done = 0;
  bool halfway = false;  // the mid_write fault point: after a first half written alone
  while (done < bytes.size()) {
    if (done > 0 && !halfway) {
      halfway = true;
      fault::reach(name, "mid_write");
    }
    const std::size_t chunk =
        done == 0 && fault::armed() ? std::max<std::size_t>(bytes.size() / 2, 1) : bytes.size() - done;
    const ssize_t w = ::write(fd, bytes.data() + done, chunk);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const std::string why = std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      throw io_error(fmt::format("{}: write failed after {} of {} bytes: {}", tmp.string(), done, bytes.size(), why));
    }
    done += static_cast<std::size_t>(w);
  }
  if (!halfway) fault::reach(name, "mid_write");
  fault::reach(name, "before_fsync");
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    throw io_error(fmt::format("{}: fsync/close failed: {}", tmp.string(), std::strerror(errno)));
  }
  fault::reach(name, "before_rename");
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    throw io_error(fmt::format("{}: cannot rename temporary file into place: {}", path.string(), why));
  }
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  fault::reach(name, "after_rename");
}

/// Removes the temporary files `<name>.tmp.<pid>` that atomic_write left in `dir` when its
/// process was killed mid-write: only those whose process is gone (a live writer's file stays).
/// Returns how many were removed. Errors are ignored (a file that cannot be removed is harmless).
inline int remove_stale_temporaries(const std::filesystem::path& dir) {
  int removed = 0;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string f = it->path().filename().string();
    const auto at = f.rfind(".tmp.");
    if (at == std::string::npos || at + 5 == f.size()) continue;
    const std::string digits = f.substr(at + 5);
    if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) continue;
    const auto pid = static_cast<pid_t>(std::stol(digits));
    if (pid == ::getpid() || ::kill(pid, 0) == 0 || errno == EPERM) continue;  // a live writer
    std::error_code rm;
    if (std::filesystem::remove(it->path(), rm)) ++removed;
  }
  return removed;
}

/// Creates the output directory `dir` (and its parents) and checks that files can be created
/// in it, so a run fails before its first epoch rather than at its first checkpoint. io_error
/// naming the directory when it is a file, cannot be created, or is not writable.
inline void create_output_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  LTL_CHECK(!std::filesystem::exists(dir, ec) || std::filesystem::is_directory(dir, ec), io_error,
            "{}: the output path exists and is not a directory", dir.string());
  std::filesystem::create_directories(dir, ec);
  LTL_CHECK(!ec, io_error, "{}: cannot create the output directory: {}", dir.string(), ec.message());
  const auto probe = dir / (".ltl_write_probe.tmp." + std::to_string(::getpid()));
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  LTL_CHECK(fd >= 0, io_error, "{}: the output directory is not writable: {}", dir.string(), std::strerror(errno));
  ::close(fd);
  ::unlink(probe.c_str());
}

/// Serialises `data` into safetensors bytes (tensors in name order, header padded to 8 bytes).
inline std::vector<char> to_safetensors_bytes(const safetensors_data& data) {
  nlohmann::json header = nlohmann::json::object();
  std::uint64_t offset = 0;
  std::vector<std::pair<const void*, std::size_t>> chunks;
  std::vector<any_tensor> keep;  // contiguous copies live until the bytes are assembled
  for (const auto& [name, any] : data.tensors) {
    LTL_CHECK(name != "__metadata__", value_error, "safetensors: '__metadata__' is reserved");
    std::visit(
        [&](const auto& t) {
          using T = typename std::decay_t<decltype(t)>::value_type;
          LTL_CHECK(t.defined(), value_error, "safetensors: tensor '{}' is undefined", name);
          auto c = t.contiguous();
          const std::size_t n = c.bytes();
          header[name] = {{"dtype", detail::dtype_name<T>()},
                          {"shape", std::vector<index_t>(c.sizes().begin(), c.sizes().end())},
                          {"data_offsets", {offset, offset + n}}};
          chunks.emplace_back(c.data(), n);
          keep.emplace_back(std::move(c));
          offset += n;
        },
        any);
  }
  if (!data.metadata.empty()) header["__metadata__"] = data.metadata;
  std::string h = header.dump();
  while ((8 + h.size()) % 8 != 0) h.push_back(' ');
  std::vector<char> out(8 + h.size() + offset);
  const std::uint64_t hn = h.size();
  std::memcpy(out.data(), &hn, 8);
  std::memcpy(out.data() + 8, h.data(), h.size());
  std::size_t pos = 8 + h.size();
  for (auto& [p, n] : chunks) {
    if (n) std::memcpy(out.data() + pos, p, n);
    pos += n;
  }
  return out;
}

/// Writes `data` to `path` atomically.
inline void save_safetensors(const std::filesystem::path& path, const safetensors_data& data) {
  atomic_write(path, to_safetensors_bytes(data));
}

namespace detail {
/// `a` · `b` for non-negative counts; false on overflow of 64 bits.
inline bool checked_mul(std::uint64_t a, std::uint64_t b, std::uint64_t& out) {
  return !__builtin_mul_overflow(a, b, &out);
}
}  // namespace detail

/// Parses safetensors bytes; `file` names the source in errors. Every inconsistency (length,
/// JSON, nesting, duplicate names, dtype, shape, element-count overflow, offsets, holes) throws
/// io_error naming the file and the tensor or field.
inline safetensors_data parse_safetensors(std::span<const char> bytes, const std::string& file) {
  LTL_CHECK(bytes.size() >= 8, io_error, "{}: {} bytes is too short for a safetensors header length (offset 0)", file,
            bytes.size());
  std::uint64_t hn = 0;
  std::memcpy(&hn, bytes.data(), 8);
  LTL_CHECK(hn <= bytes.size() - 8, io_error, "{}: header length {} at offset 0 exceeds the {} bytes that follow", file,
            hn, bytes.size() - 8);
  const nlohmann::json header =
      parse_json_untrusted(std::string_view(bytes.data() + 8, static_cast<std::size_t>(hn)), file, "the JSON header (offset 8)");
  LTL_CHECK(header.is_object(), io_error, "{}: header (offset 8) is not a JSON object", file);
  const std::uint64_t data_size = bytes.size() - 8 - hn;
  const char* base = bytes.data() + 8 + hn;
  safetensors_data out;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
  try {
    for (auto it = header.begin(); it != header.end(); ++it) {
      const std::string name = detail::clip(it.key());
      if (it.key() == "__metadata__") {
        LTL_CHECK(it->is_object(), io_error, "{}: '__metadata__' is not an object", file);
        for (auto m = it->begin(); m != it->end(); ++m) {
          LTL_CHECK(m->is_string(), io_error, "{}: metadata '{}' is not a string", file, detail::clip(m.key()));
          out.metadata[m.key()] = m->get<std::string>();
        }
        continue;
      }
      const auto& e = *it;
      LTL_CHECK(e.is_object() && e.contains("dtype") && e.contains("shape") && e.contains("data_offsets"), io_error,
                "{}: tensor '{}' lacks dtype, shape or data_offsets", file, name);
      LTL_CHECK(e["dtype"].is_string() && e["shape"].is_array() && e["data_offsets"].is_array() &&
                    e["data_offsets"].size() == 2,
                io_error, "{}: tensor '{}' has malformed fields", file, name);
      LTL_CHECK(e["shape"].size() <= static_cast<std::size_t>(shape::max_rank), io_error,
                "{}: tensor '{}' has rank {}, more than {}", file, name, e["shape"].size(), shape::max_rank);
      shape s;
      std::uint64_t numel = 1;
      for (const auto& d : e["shape"]) {
        // Unsigned JSON integers above 2^63 would turn negative as index_t: compare unsigned.
        LTL_CHECK(d.is_number_unsigned() || (d.is_number_integer() && d.get<std::int64_t>() >= 0), io_error,
                  "{}: tensor '{}' has a shape dimension {} that is not a non-negative integer", file, name, s.size());
        const auto dim = d.get<std::uint64_t>();
        LTL_CHECK(dim <= static_cast<std::uint64_t>(INT64_MAX) && detail::checked_mul(numel, dim, numel) &&
                      numel <= static_cast<std::uint64_t>(INT64_MAX),
                  io_error, "{}: tensor '{}' has an element count that overflows 64 bits (shape dimension {} = {})",
                  file, name, s.size(), dim);
        s.push_back(static_cast<index_t>(dim));
      }
      LTL_CHECK(e["data_offsets"][0].is_number_unsigned() && e["data_offsets"][1].is_number_unsigned(), io_error,
                "{}: tensor '{}' has non-integer data_offsets", file, name);
      const auto b = e["data_offsets"][0].get<std::uint64_t>(), en = e["data_offsets"][1].get<std::uint64_t>();
      LTL_CHECK(b <= en && en <= data_size, io_error,
                "{}: tensor '{}' data_offsets [{}, {}) exceed the {}-byte data section (file truncated?)", file, name, b,
                en, data_size);
      const std::string dt = detail::clip(e["dtype"].get<std::string>());
      auto make = [&](auto tag) {
        using T = decltype(tag);
        std::uint64_t need = 0;
        LTL_CHECK(detail::checked_mul(numel, sizeof(T), need), io_error,
                  "{}: tensor '{}' of shape {} and dtype {} has a byte size that overflows 64 bits", file, name, s, dt);
        LTL_CHECK(en - b == need, io_error,
                  "{}: tensor '{}' of shape {} and dtype {} needs {} bytes, data_offsets give {}", file, name, s, dt,
                  need, en - b);
        tensor<T> t(s);
        if (numel) std::memcpy(t.data(), base + b, en - b);
        out.tensors.emplace(it.key(), std::move(t));
      };
      if (dt == "F32") make(float{});
      else if (dt == "F64") make(double{});
      else if (dt == "I64") make(std::int64_t{});
      else throw io_error(fmt::format("{}: tensor '{}' has unsupported dtype '{}'", file, name, dt));
      ranges.emplace_back(b, en);
    }
  } catch (const nlohmann::json::exception& e) {
    throw io_error(fmt::format("{}: malformed header: {}", file, detail::clip(e.what(), 200)));
  }
  std::sort(ranges.begin(), ranges.end());
  std::uint64_t expect = 0;
  for (auto& [b, en] : ranges) {
    LTL_CHECK(b == expect, io_error, "{}: data section has a hole or overlap at byte {} of the data", file, b);
    expect = en;
  }
  LTL_CHECK(expect == data_size, io_error, "{}: {} trailing bytes after the last tensor", file, data_size - expect);
  return out;
}

/// Reads and validates a safetensors file: a regular file only (directories, FIFOs and devices
/// are refused before opening), at most data::max_file_bytes, errors as parse_safetensors.
inline safetensors_data load_safetensors(const std::filesystem::path& path) {
  const auto raw = data::read_raw_file(path);
  return parse_safetensors(std::span<const char>(reinterpret_cast<const char*>(raw.data()), raw.size()), path.string());
}

}  // namespace ltl::io
