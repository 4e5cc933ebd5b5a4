#pragma once
/// \file
/// Writing JPEG (libjpeg-turbo) and PNG (libpng) images to memory or files: what the tests, the
/// decode benchmark and the generated data sets of the trainers' smoke runs use to make real files.

#include "ltlearn/core/error.hpp"
#include "ltlearn/core/shape.hpp"
#include "ltlearn/data/image/codec_c.hpp"

#include <fmt/format.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <span>
#include <system_error>
#include <vector>

namespace ltl::data {

/// Colour model of a written JPEG.
enum class jpeg_color {
  rgb,   ///< 3 input channels, stored as YCbCr
  gray,  ///< 1 input channel
  cmyk,  ///< 4 input channels (the values stored), stored as CMYK
  ycck,  ///< 4 input channels (the values stored as CMYK), stored as YCCK
};

/// Options of encode_jpeg.
struct jpeg_encode_options {
  int quality = 90;
  jpeg_color color = jpeg_color::rgb;
  /// Write an Adobe APP14 marker. libjpeg writes one for CMYK/YCCK by default; a reader that sees
  /// it treats 4-channel values as inverted (the Photoshop convention). Ignored for RGB/gray.
  bool adobe_marker = true;
  bool progressive = false;  ///< jpeg_simple_progression
  int restart_interval = 0;  ///< restart marker every this many MCUs (0: none)
};

/// Encodes `pixels` ([height, width, channels] bytes, channels 1, 3 or 4 as `o.color` says).
inline std::vector<std::uint8_t> encode_jpeg(std::span<const std::uint8_t> pixels, index_t height, index_t width,
                                             const jpeg_encode_options& o = {}) {
  const int comps = o.color == jpeg_color::gray ? 1 : o.color == jpeg_color::rgb ? 3 : 4;
  LTL_CHECK(height > 0 && width > 0 && static_cast<index_t>(pixels.size()) == height * width * comps, shape_error,
            "encode_jpeg: {} bytes for a {}x{} image of {} channels", pixels.size(), width, height, comps);
  LTL_CHECK(o.quality >= 1 && o.quality <= 100 && o.restart_interval >= 0, value_error,
            "encode_jpeg: quality {} must be in [1, 100] and restart interval {} non-negative", o.quality,
            o.restart_interval);
  detail::jpeg_encode_params p{};
  p.pixels = pixels.data();
  p.width = static_cast<int>(width);
  p.height = static_cast<int>(height);
  p.components = comps;
  p.in_space = comps == 1 ? JCS_GRAYSCALE : comps == 3 ? JCS_RGB : JCS_CMYK;
  p.file_space = o.color == jpeg_color::gray   ? JCS_GRAYSCALE
                 : o.color == jpeg_color::rgb  ? JCS_YCbCr
                 : o.color == jpeg_color::cmyk ? JCS_CMYK
                                               : JCS_YCCK;
  p.quality = o.quality;
  p.adobe_marker = (comps == 4 && o.adobe_marker) ? 1 : 0;
  p.progressive = o.progressive ? 1 : 0;
  p.restart_interval = o.restart_interval;
  auto s = std::make_unique<detail::jpeg_encode_session>();
  struct closer {
    detail::jpeg_encode_session* s;
    ~closer() { detail::jpeg_encode_close_c(s); }
  } guard{s.get()};
  if (!detail::jpeg_encode_c(s.get(), &p))
    throw io_error(fmt::format("encode_jpeg: libjpeg failed: {}", s->error.message));
  return {s->out, s->out + s->out_size};
}

/// Encodes an 8-bit PNG from `pixels` ([height, width, channels], channels 1 or 3).
inline std::vector<std::uint8_t> encode_png(std::span<const std::uint8_t> pixels, index_t height, index_t width,
                                            int channels = 3) {
  LTL_CHECK((channels == 1 || channels == 3) && height > 0 && width > 0 &&
                static_cast<index_t>(pixels.size()) == height * width * channels,
            shape_error, "encode_png: {} bytes for a {}x{} image of {} channels", pixels.size(), width, height, channels);
  auto s = std::make_unique<detail::png_encode_session>();
  struct closer {
    detail::png_encode_session* s;
    ~closer() { detail::png_encode_close_c(s); }
  } guard{s.get()};
  if (!detail::png_encode_c(s.get(), pixels.data(), static_cast<int>(width), static_cast<int>(height), channels))
    throw io_error(fmt::format("encode_png: libpng failed: {}", s->error.message));
  return {s->out, s->out + s->size};
}

/// Writes `bytes` to `path` (creating parent directories); io_error naming the file on failure.
inline void write_bytes(const std::filesystem::path& path, std::span<const std::uint8_t> bytes) {
  if (path.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(path.parent_path(), ec);
    LTL_CHECK(!ec, io_error, "{}: cannot create the directory: {}", path.parent_path().string(), ec.message());
  }
  std::ofstream f(path, std::ios::binary);
  LTL_CHECK(f.good(), io_error, "{}: cannot open for writing", path.string());
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  LTL_CHECK(f.good(), io_error, "{}: write failed", path.string());
}

}  // namespace ltl::data
