#pragma once
/// \file
/// Decoding JPEG (libjpeg-turbo, through the libjpeg API) and PNG (libpng) files to 8-bit RGB.
///
/// The format comes from the magic bytes, never from the file name (real ImageNet holds PNGs and
/// CMYK files named .JPEG). Colour: RGB and YCbCr as decoded by libjpeg; grayscale replicated to
/// three channels; CMYK and YCCK (libjpeg converts YCCK to CMYK) converted to RGB with Pillow's
/// formula, after undoing the inversion that Adobe applications store when libjpeg saw an Adobe
/// marker. (Pillow inverts every 4-channel JPEG, marker or not: the two agree on files with the
/// marker, which is what Adobe software writes; a CMYK file without one decodes here as plain
/// ink values, as libjpeg's own convention says.) PNG: palette expanded, 16-bit reduced to the high byte, alpha dropped (what
/// PIL's `convert("RGB")` does). Decoding uses libjpeg's defaults (islow DCT, fancy upsampling),
/// as PIL does, so at full scale the RGB bytes are the ones PIL gets from the same library.
///
/// libjpeg and libpng report errors by longjmp. The jumps land in the small C-style functions of
/// image/codec_c.hpp, which hold no C++ object with a destructor; the C++ code here turns the
/// failure into an `ltl::io_error` naming the file and the library's message.

#include "ltlearn/core/error.hpp"
#include "ltlearn/core/shape.hpp"
#include "ltlearn/data/image/codec_c.hpp"

#include <fmt/format.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ltl::data {

/// Container formats the decoder recognises by their first bytes.
enum class image_format { unknown, jpeg, png, gif, bmp, webp, tiff };

/// The format of an encoded image from its magic bytes (unknown when none matches).
inline image_format detect_format(std::span<const std::uint8_t> b) noexcept {
  auto starts = [&](std::initializer_list<std::uint8_t> m) {
    if (b.size() < m.size()) return false;
    std::size_t i = 0;
    for (std::uint8_t v : m)
      if (b[i++] != v) return false;
    return true;
  };
  if (starts({0xFF, 0xD8, 0xFF})) return image_format::jpeg;
  if (starts({0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A})) return image_format::png;
  if (starts({'G', 'I', 'F', '8'})) return image_format::gif;
  if (starts({'B', 'M'})) return image_format::bmp;
  if (b.size() >= 12 && starts({'R', 'I', 'F', 'F'}) && std::memcmp(b.data() + 8, "WEBP", 4) == 0)
    return image_format::webp;
  if (starts({'I', 'I', 0x2A, 0x00}) || starts({'M', 'M', 0x00, 0x2A})) return image_format::tiff;
  return image_format::unknown;
}

/// Printable name of a format ("JPEG", "PNG", ...).
inline const char* to_string(image_format f) noexcept {
  switch (f) {
    case image_format::jpeg: return "JPEG";
    case image_format::png: return "PNG";
    case image_format::gif: return "GIF";
    case image_format::bmp: return "BMP";
    case image_format::webp: return "WebP";
    case image_format::tiff: return "TIFF";
    case image_format::unknown: break;
  }
  return "unknown";
}

/// A decoded image: height × width × 3 bytes, RGB interleaved (HWC), rows contiguous.
struct decoded_image {
  index_t height = 0;
  index_t width = 0;
  std::vector<std::uint8_t> rgb;  ///< [H, W, 3]
  /// Full-resolution size before any DCT-domain reduction (equal to height/width without one).
  index_t full_height = 0;
  index_t full_width = 0;
};

/// Options of decode_image.
struct decode_options {
  /// JPEG only: decode at 1/reduction of the size in the DCT domain (1, 2, 4 or 8). PNG ignores it.
  int reduction = 1;
  /// Fail on every libjpeg warning (corrupt-data warnings are otherwise tolerated, as PIL does).
  /// A file cut short is always an error, as in PIL without LOAD_TRUNCATED_IMAGES.
  bool warnings_are_errors = false;
};

namespace detail {
/// Pillow's CMYK → RGB (Convert.c cmyk2rgb): channel = (255 − K) − round((255 − K)·ink / 255).
inline std::uint8_t cmyk_channel(unsigned ink, unsigned k) noexcept {
  const unsigned nk = 255u - k;
  const unsigned t = ink * nk + 128u;
  const unsigned prod = ((t >> 8) + t) >> 8;
  return static_cast<std::uint8_t>(nk - prod);
}
inline void cmyk_to_rgb(std::uint8_t* px, std::size_t n, bool inverted) noexcept {
  // In place: four bytes in, three out, front to back, so a write never overtakes a read.
  for (std::size_t i = 0; i < n; ++i) {
    unsigned c = px[4 * i], m = px[4 * i + 1], y = px[4 * i + 2], k = px[4 * i + 3];
    if (inverted) c = 255u - c, m = 255u - m, y = 255u - y, k = 255u - k;
    px[3 * i] = cmyk_channel(c, k);
    px[3 * i + 1] = cmyk_channel(m, k);
    px[3 * i + 2] = cmyk_channel(y, k);
  }
}
}  // namespace detail

/// Largest decoded image, in pixels (16384 x 16384): a header is a few bytes, and one declaring
/// 65500 x 65500 (JPEG) or 10^6 x 10^6 (PNG) would otherwise allocate gigabytes to terabytes
/// before the stream is found to be short (std::bad_alloc, or the OOM killer). Datasets' images
/// are far smaller.
inline constexpr index_t max_image_pixels = index_t{1} << 28;

/// A JPEG or PNG whose header has been read: its size is known before any pixel is decoded,
/// so a caller can choose a DCT-domain reduction from the crop it will take.
///
/// Holds a view of the encoded bytes, which must outlive it. Not copyable (the codec state
/// points into itself).
class image_decoder {
 public:
  /// Detects the format and reads the header. io_error (naming `name`) for an empty buffer, an
  /// unsupported or unknown format, or a header the codec rejects.
  image_decoder(std::span<const std::uint8_t> bytes, std::string name) : bytes_(bytes), name_(std::move(name)) {
    LTL_CHECK(!bytes.empty(), io_error, "{}: empty file (0 bytes), not an image", name_);
    format_ = detect_format(bytes);
    if (format_ == image_format::jpeg) {
      jpeg_.reset(new detail::jpeg_session());
      if (!detail::jpeg_open_c(jpeg_.get(), bytes.data(), bytes.size())) fail("JPEG header");
      height_ = static_cast<index_t>(jpeg_->cinfo.image_height);
      width_ = static_cast<index_t>(jpeg_->cinfo.image_width);
    } else if (format_ == image_format::png) {
      png_.reset(new detail::png_session());
      if (!detail::png_open_c(png_.get(), bytes.data(), bytes.size())) fail("PNG header");
      height_ = static_cast<index_t>(png_->height);
      width_ = static_cast<index_t>(png_->width);
    } else if (format_ == image_format::unknown) {
      std::string head;
      for (std::size_t i = 0; i < std::min<std::size_t>(bytes.size(), 8); ++i) head += fmt::format("{:02x} ", bytes[i]);
      throw io_error(fmt::format("{}: not a JPEG or PNG file (first bytes {}of {})", name_, head, bytes.size()));
    } else {
      throw io_error(fmt::format("{}: {} images are not supported (only JPEG and PNG)", name_, to_string(format_)));
    }
    LTL_CHECK(height_ > 0 && width_ > 0, io_error, "{}: image has an empty size {}x{}", name_, width_, height_);
  }
  image_decoder(const image_decoder&) = delete;
  image_decoder& operator=(const image_decoder&) = delete;

  [[nodiscard]] image_format format() const noexcept { return format_; }
  /// Full-resolution size from the header.
  [[nodiscard]] index_t height() const noexcept { return height_; }
  [[nodiscard]] index_t width() const noexcept { return width_; }
  [[nodiscard]] const std::string& name() const noexcept { return name_; }

  /// Decodes the pixels once (a decoder is single-use). io_error naming the file on any codec
  /// error, a truncated stream, or (with warnings_are_errors) a codec warning.
  [[nodiscard]] decoded_image decode(const decode_options& o = {}) {
    LTL_CHECK(!done_, value_error, "image_decoder: {} was already decoded", name_);
    LTL_CHECK(o.reduction == 1 || o.reduction == 2 || o.reduction == 4 || o.reduction == 8, value_error,
              "image_decoder: reduction must be 1, 2, 4 or 8, got {}", o.reduction);
    done_ = true;
    decoded_image out;
    out.full_height = height_;
    out.full_width = width_;
    if (format_ == image_format::png) {
      out.height = height_;
      out.width = width_;
      check_pixels(out);
      out.rgb.resize(static_cast<std::size_t>(height_ * width_ * 3));
      if (!detail::png_read_c(png_.get(), out.rgb.data())) fail("PNG data");
      return out;
    }
    auto* s = jpeg_.get();
    s->strict = o.warnings_are_errors ? 1 : 0;
    if (s->strict && s->mgr.num_warnings > 0) fail("JPEG header");
    if (!detail::jpeg_prepare_c(s, o.reduction)) fail("JPEG parameters");
    out.height = static_cast<index_t>(s->cinfo.output_height);
    out.width = static_cast<index_t>(s->cinfo.output_width);
    const int comps = s->cinfo.output_components;
    LTL_CHECK(comps == 3 || comps == 4, io_error, "{}: unexpected {} output components from libjpeg", name_, comps);
    check_pixels(out);
    // CMYK is decoded four bytes per pixel into the same buffer, then packed to RGB in place.
    out.rgb.resize(static_cast<std::size_t>(out.height * out.width * comps));
    if (!detail::jpeg_decode_c(s, out.rgb.data(), static_cast<std::size_t>(out.width * comps))) fail("JPEG data");
    if (comps == 4) {
      detail::cmyk_to_rgb(out.rgb.data(), static_cast<std::size_t>(out.height * out.width), s->cinfo.saw_Adobe_marker != 0);
      out.rgb.resize(static_cast<std::size_t>(out.height * out.width * 3));
    }
    return out;
  }

  /// The libjpeg colour space of the file (JCS_* value; JPEG only, else -1), for diagnostics.
  [[nodiscard]] int jpeg_color_space() const noexcept { return jpeg_ ? static_cast<int>(jpeg_->cinfo.jpeg_color_space) : -1; }
  /// Whether libjpeg saw an Adobe APP14 marker (JPEG only).
  [[nodiscard]] bool saw_adobe_marker() const noexcept { return jpeg_ && jpeg_->cinfo.saw_Adobe_marker; }
  /// Whether the JPEG is progressive.
  [[nodiscard]] bool progressive() const noexcept { return jpeg_ && jpeg_->cinfo.progressive_mode; }

 private:
  void check_pixels(const decoded_image& out) const {
    LTL_CHECK(out.height * out.width <= max_image_pixels, io_error,
              "{}: the header declares {}x{} pixels (decoded), more than the {} an image may have", name_, out.width,
              out.height, max_image_pixels);
  }
  [[noreturn]] void fail(const char* stage) const {
    // (A tolerated warning's text may sit in the message buffer; a failure overwrites it.)
    const char* msg = jpeg_ ? jpeg_->error.message : png_ ? png_->error.message : "";
    throw io_error(fmt::format("{}: cannot decode {}: {}", name_, stage, msg[0] ? msg : "unknown error"));
  }

  std::span<const std::uint8_t> bytes_;
  std::string name_;
  image_format format_ = image_format::unknown;
  index_t height_ = 0, width_ = 0;
  bool done_ = false;
  // The deleters release the codec state also when the constructor throws after creating it.
  struct jpeg_release {
    void operator()(detail::jpeg_session* s) const noexcept {
      detail::jpeg_close_c(s);
      delete s;
    }
  };
  struct png_release {
    void operator()(detail::png_session* s) const noexcept {
      detail::png_close_c(s);
      delete s;
    }
  };
  std::unique_ptr<detail::jpeg_session, jpeg_release> jpeg_;
  std::unique_ptr<detail::png_session, png_release> png_;
};

/// Decodes a whole JPEG or PNG held in memory (`name` is used in error messages).
inline decoded_image decode_image(std::span<const std::uint8_t> bytes, std::string name, const decode_options& o = {}) {
  image_decoder d(bytes, std::move(name));
  return d.decode(o);
}

/// Largest DCT reduction r ∈ {1, 2, 4, 8}, at most `max_reduction`, that keeps a source region of
/// `region_h` × `region_w` full-resolution pixels at least `need_h` × `need_w` pixels after
/// reduction, so the resize that follows still only shrinks (never enlarges) the image.
inline int choose_reduction(double region_h, double region_w, index_t need_h, index_t need_w, int max_reduction = 8) {
  int r = 1;
  for (int c = 2; c <= max_reduction && c <= 8; c *= 2)
    if (region_h / c >= static_cast<double>(need_h) && region_w / c >= static_cast<double>(need_w)) r = c;
  return r;
}

}  // namespace ltl::data
