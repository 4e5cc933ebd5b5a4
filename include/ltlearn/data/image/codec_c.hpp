#pragma once
/// \file
/// The C-style boundary to libjpeg and libpng (internal: use data/image/decode.hpp and
/// data/image/encode.hpp).
///
/// Both libraries report a fatal error by longjmp. A longjmp that crosses a C++ frame holding an
/// object with a destructor is undefined behaviour, so every libjpeg/libpng call sits in one of
/// the functions below: each calls setjmp itself, holds only plain C data (the session structs
/// are trivially destructible aggregates owned by the caller), never calls back into C++ code
/// that could throw, and reports failure by returning false with the library's message copied
/// into the session. The C++ callers throw `ltl::io_error` after these functions return.

#include <csetjmp>
#include <cstddef>
#include <cstdio>  // jpeglib.h needs FILE and size_t declared first
#include <cstdlib>
#include <cstring>

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

namespace ltl::data::detail {

/// Where a codec error jumps to, and its message. Plain C data.
struct codec_error {
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX + 64];
  int strict;  ///< libjpeg decoding: every warning is an error
};

inline void set_message(codec_error* e, const char* msg) noexcept {
  std::strncpy(e->message, msg, sizeof e->message - 1);
  e->message[sizeof e->message - 1] = '\0';
}

// ---- libjpeg error manager: error_exit and fatal warnings longjmp to the session's setjmp ----
inline void jpeg_on_error(j_common_ptr c) {
  auto* e = static_cast<codec_error*>(c->client_data);
  (*c->err->format_message)(c, e->message);
  std::longjmp(e->jump, 1);
}
inline void jpeg_on_message(j_common_ptr c, int level) {
  if (level >= 0) return;  // trace messages
  auto* e = static_cast<codec_error*>(c->client_data);
  // A stream cut short is always fatal: libjpeg would pad it with grey and report success.
  if (e->strict || c->err->msg_code == JWRN_JPEG_EOF) {
    (*c->err->format_message)(c, e->message);
    std::longjmp(e->jump, 1);
  }
  // Tolerated: counted, and the first one kept so a strict decode() can still refuse the file
  // for a warning that came while reading the header.
  if (c->err->num_warnings++ == 0) (*c->err->format_message)(c, e->message);
}
inline void jpeg_silent(j_common_ptr) {}
inline void jpeg_install_errors(j_common_ptr c, jpeg_error_mgr* mgr, codec_error* e) noexcept {
  c->err = jpeg_std_error(mgr);
  mgr->error_exit = jpeg_on_error;
  mgr->emit_message = jpeg_on_message;
  mgr->output_message = jpeg_silent;
  c->client_data = e;
}

// ---- JPEG decoding ---------------------------------------------------------------------------

/// libjpeg decompression state; value-initialise it, then jpeg_open_c, ..., jpeg_close_c.
struct jpeg_session {
  jpeg_decompress_struct cinfo;
  jpeg_error_mgr mgr;
  codec_error error;
  int created;
  int strict;
};

/// Creates the decompressor over `data` and reads the header.
inline bool jpeg_open_c(jpeg_session* s, const unsigned char* data, std::size_t size) noexcept {
  jpeg_install_errors(reinterpret_cast<j_common_ptr>(&s->cinfo), &s->mgr, &s->error);
  if (setjmp(s->error.jump)) return false;
  jpeg_create_decompress(&s->cinfo);
  s->created = 1;
  jpeg_mem_src(&s->cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&s->cinfo, TRUE);
  return true;
}

/// Chooses the output colour space (RGB, or CMYK for CMYK/YCCK files) and the 1/reduction DCT
/// scale, and computes the output size.
inline bool jpeg_prepare_c(jpeg_session* s, int reduction) noexcept {
  s->error.strict = s->strict;
  if (setjmp(s->error.jump)) return false;
  s->cinfo.scale_num = 1;
  s->cinfo.scale_denom = static_cast<unsigned>(reduction);
  const J_COLOR_SPACE in = s->cinfo.jpeg_color_space;
  s->cinfo.out_color_space = (in == JCS_CMYK || in == JCS_YCCK) ? JCS_CMYK : JCS_RGB;
  jpeg_calc_output_dimensions(&s->cinfo);
  return true;
}

/// Decodes every scanline into `dst` (rows `stride` bytes apart).
inline bool jpeg_decode_c(jpeg_session* s, unsigned char* dst, std::size_t stride) noexcept {
  if (setjmp(s->error.jump)) return false;
  jpeg_start_decompress(&s->cinfo);
  while (s->cinfo.output_scanline < s->cinfo.output_height) {
    JSAMPROW rows[8];
    const JDIMENSION left = s->cinfo.output_height - s->cinfo.output_scanline;
    const JDIMENSION n = left < 8 ? left : 8;
    for (JDIMENSION r = 0; r < n; ++r) rows[r] = dst + (s->cinfo.output_scanline + r) * stride;
    jpeg_read_scanlines(&s->cinfo, rows, n);
  }
  jpeg_finish_decompress(&s->cinfo);
  return true;
}

inline void jpeg_close_c(jpeg_session* s) noexcept {
  if (s->created) jpeg_destroy_decompress(&s->cinfo);
  s->created = 0;
}

// ---- PNG decoding ----------------------------------------------------------------------------

/// libpng read state over a memory buffer.
struct png_session {
  png_structp png;
  png_infop info;
  const unsigned char* data;
  std::size_t size;
  std::size_t pos;
  png_uint_32 width;
  png_uint_32 height;
  int passes;
  codec_error error;
};

inline void png_on_error(png_structp p, png_const_charp msg) {
  auto* e = static_cast<codec_error*>(png_get_error_ptr(p));
  set_message(e, msg);
  png_longjmp(p, 1);
}
inline void png_on_warning(png_structp, png_const_charp) {}
inline void png_read_memory(png_structp p, png_bytep out, png_size_t n) {
  auto* s = static_cast<png_session*>(png_get_io_ptr(p));
  if (n > s->size - s->pos) png_error(p, "truncated PNG stream (read past the end of the data)");
  std::memcpy(out, s->data + s->pos, n);
  s->pos += n;
}

/// Creates the reader, reads the header and sets the transforms to 8-bit RGB.
inline bool png_open_c(png_session* s, const unsigned char* data, std::size_t size) noexcept {
  s->data = data;
  s->size = size;
  s->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &s->error, png_on_error, png_on_warning);
  if (!s->png) return set_message(&s->error, "cannot create the libpng reader"), false;
  s->info = png_create_info_struct(s->png);
  if (!s->info) return set_message(&s->error, "cannot create the libpng info"), false;
  if (setjmp(png_jmpbuf(s->png))) return false;
  png_set_read_fn(s->png, s, png_read_memory);
  png_read_info(s->png, s->info);
  s->width = png_get_image_width(s->png, s->info);
  s->height = png_get_image_height(s->png, s->info);
  const int type = png_get_color_type(s->png, s->info);
  const int depth = png_get_bit_depth(s->png, s->info);
  // PIL's convert("RGB"): palette looked up, transparency ignored, 16-bit keeps the high byte.
  if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(s->png);
  if (type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(s->png);
  if (depth == 16) png_set_strip_16(s->png);
  if (type == PNG_COLOR_TYPE_GRAY || type == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(s->png);
  png_set_strip_alpha(s->png);
  s->passes = png_set_interlace_handling(s->png);
  png_read_update_info(s->png, s->info);
  if (png_get_rowbytes(s->png, s->info) != static_cast<png_size_t>(s->width) * 3)
    png_error(s->png, "unsupported PNG pixel layout after conversion to RGB");
  return true;
}

/// Reads all rows (every interlace pass) into `dst` ([height, width, 3]).
inline bool png_read_c(png_session* s, unsigned char* dst) noexcept {
  if (setjmp(png_jmpbuf(s->png))) return false;
  for (int pass = 0; pass < s->passes; ++pass)
    for (png_uint_32 y = 0; y < s->height; ++y) png_read_row(s->png, dst + static_cast<std::size_t>(y) * s->width * 3, nullptr);
  png_read_end(s->png, nullptr);
  return true;
}

inline void png_close_c(png_session* s) noexcept {
  if (s->png) png_destroy_read_struct(&s->png, s->info ? &s->info : nullptr, nullptr);
  s->png = nullptr;
  s->info = nullptr;
}

// ---- JPEG encoding ---------------------------------------------------------------------------

/// What to write: plain C parameters of jpeg_encode_c.
struct jpeg_encode_params {
  const unsigned char* pixels;
  int width;
  int height;
  int components;         ///< 1 (gray), 3 (RGB) or 4 (CMYK as stored)
  J_COLOR_SPACE in_space; ///< JCS_GRAYSCALE, JCS_RGB or JCS_CMYK
  J_COLOR_SPACE file_space;
  int quality;
  int adobe_marker;
  int progressive;
  int restart_interval;  ///< in MCUs; 0 = none
};

/// libjpeg compression state; its output buffer is malloc'ed by libjpeg.
struct jpeg_encode_session {
  jpeg_compress_struct cinfo;
  jpeg_error_mgr mgr;
  codec_error error;
  int created;
  unsigned char* out;
  unsigned long out_size;
};

inline bool jpeg_encode_c(jpeg_encode_session* s, const jpeg_encode_params* p) noexcept {
  jpeg_install_errors(reinterpret_cast<j_common_ptr>(&s->cinfo), &s->mgr, &s->error);
  if (setjmp(s->error.jump)) return false;
  jpeg_create_compress(&s->cinfo);
  s->created = 1;
  jpeg_mem_dest(&s->cinfo, &s->out, &s->out_size);
  s->cinfo.image_width = static_cast<JDIMENSION>(p->width);
  s->cinfo.image_height = static_cast<JDIMENSION>(p->height);
  s->cinfo.input_components = p->components;
  s->cinfo.in_color_space = p->in_space;
  jpeg_set_defaults(&s->cinfo);
  jpeg_set_colorspace(&s->cinfo, p->file_space);
  s->cinfo.write_Adobe_marker = p->adobe_marker ? TRUE : FALSE;
  jpeg_set_quality(&s->cinfo, p->quality, TRUE);
  if (p->progressive) jpeg_simple_progression(&s->cinfo);
  s->cinfo.restart_interval = static_cast<unsigned>(p->restart_interval);
  jpeg_start_compress(&s->cinfo, TRUE);
  const std::size_t stride = static_cast<std::size_t>(p->width) * static_cast<std::size_t>(p->components);
  while (s->cinfo.next_scanline < s->cinfo.image_height) {
    auto row = const_cast<JSAMPROW>(p->pixels + s->cinfo.next_scanline * stride);
    jpeg_write_scanlines(&s->cinfo, &row, 1);
  }
  jpeg_finish_compress(&s->cinfo);
  return true;
}

inline void jpeg_encode_close_c(jpeg_encode_session* s) noexcept {
  if (s->created) jpeg_destroy_compress(&s->cinfo);
  s->created = 0;
  std::free(s->out);
  s->out = nullptr;
}

// ---- PNG encoding ----------------------------------------------------------------------------

/// libpng write state; output grows in a malloc'ed buffer.
struct png_encode_session {
  png_structp png;
  png_infop info;
  unsigned char* out;
  std::size_t size;
  std::size_t capacity;
  codec_error error;
};

inline void png_write_memory(png_structp p, png_bytep in, png_size_t n) {
  auto* s = static_cast<png_encode_session*>(png_get_io_ptr(p));
  if (s->size + n > s->capacity) {
    std::size_t cap = s->capacity ? s->capacity : 4096;
    while (cap < s->size + n) cap *= 2;
    auto* grown = static_cast<unsigned char*>(std::realloc(s->out, cap));
    if (!grown) png_error(p, "out of memory");
    s->out = grown;
    s->capacity = cap;
  }
  std::memcpy(s->out + s->size, in, n);
  s->size += n;
}
inline void png_flush_memory(png_structp) {}

/// Writes an 8-bit PNG of `channels` (1 = gray, 3 = RGB) from rows `width·channels` bytes apart.
inline bool png_encode_c(png_encode_session* s, const unsigned char* px, int width, int height, int channels) noexcept {
  s->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &s->error, png_on_error, png_on_warning);
  if (!s->png) return set_message(&s->error, "cannot create the libpng writer"), false;
  s->info = png_create_info_struct(s->png);
  if (!s->info) return set_message(&s->error, "cannot create the libpng info"), false;
  if (setjmp(png_jmpbuf(s->png))) return false;
  png_set_write_fn(s->png, s, png_write_memory, png_flush_memory);
  png_set_IHDR(s->png, s->info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), 8,
               channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(s->png, s->info);
  const std::size_t stride = static_cast<std::size_t>(width) * static_cast<std::size_t>(channels);
  for (int y = 0; y < height; ++y) png_write_row(s->png, px + static_cast<std::size_t>(y) * stride);
  png_write_end(s->png, nullptr);
  return true;
}

inline void png_encode_close_c(png_encode_session* s) noexcept {
  if (s->png) png_destroy_write_struct(&s->png, s->info ? &s->info : nullptr);
  s->png = nullptr;
  s->info = nullptr;
  std::free(s->out);
  s->out = nullptr;
}

}  // namespace ltl::data::detail
