// Image input that used to escape as a non-ltl exception or an unbounded allocation (issue 20,
// audit of throws in docs/error_audit.md): a header declaring a huge image, a folder that
// cannot be listed, a write below a file. Each is an io_error naming the file.
#include "support.hpp"
#include "support/run_dir.hpp"

#include <catch2/catch.hpp>
#include <ltlearn/data/image/decode.hpp>
#include <ltlearn/data/image/encode.hpp>
#include <ltlearn/data/image/readers.hpp>

#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
namespace ld = ltl::data;

namespace {

fs::path scratch(const std::string& name) { return ltl_test::scratch_dir("image_untrusted_" + name); }

void put_be(std::vector<std::uint8_t>& b, std::size_t at, std::uint32_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) b[at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v >> (8 * (bytes - 1 - i)));
}

/// `bytes` (an encoded 8x8 image) with the header's size set to `w` x `h`.
std::vector<std::uint8_t> with_declared_size(std::vector<std::uint8_t> bytes, std::uint32_t w, std::uint32_t h) {
  if (bytes[0] == 0x89) {  // PNG: IHDR is the first chunk (length 4, "IHDR" 4, width 4, height 4, ..., CRC 4)
    put_be(bytes, 16, w, 4);
    put_be(bytes, 20, h, 4);
    const auto crc = crc32(0, bytes.data() + 12, 17);  // chunk type and data
    put_be(bytes, 29, static_cast<std::uint32_t>(crc), 4);
    return bytes;
  }
  for (std::size_t i = 2; i + 8 < bytes.size(); ++i)  // JPEG: SOF0 = FF C0, length 2, precision 1, height 2, width 2
    if (bytes[i] == 0xFF && bytes[i + 1] == 0xC0) {
      put_be(bytes, i + 5, h, 2);
      put_be(bytes, i + 7, w, 2);
      return bytes;
    }
  FAIL("no SOF0 marker in the encoded JPEG");
  return bytes;
}

}  // namespace

TEST_CASE("an image header declaring more pixels than max_image_pixels is an io_error before allocating",
          "[reliability][image]") {
  const std::vector<std::uint8_t> px(8 * 8 * 3, 100);
  const auto jpeg = ld::encode_jpeg(px, 8, 8, {.quality = 90});
  const auto png = ld::encode_png(px, 8, 8);
  for (const auto& [what, bytes] : {std::pair{"jpeg", jpeg}, std::pair{"png", png}}) {
    INFO(what);
    {  // the size the check tests: the untouched 8x8 image decodes
      ld::image_decoder d(bytes, "small");
      REQUIRE(d.decode().rgb.size() == px.size());
    }
    const auto big = with_declared_size(bytes, 60000, 50000);  // 3e9 pixels, 9 GB of RGB
    ld::image_decoder d(big, "big.img");
    REQUIRE(d.width() == 60000);
    REQUIRE(d.height() == 50000);
    ltl_test::require_error<ltl::io_error>([&] { (void)d.decode(); }, {"big.img", "60000x50000", "more than"});
  }
}

TEST_CASE("an image folder that cannot be listed is an io_error naming it", "[reliability][image]") {
  const auto root = scratch("folder_loop");
  fs::create_directories(root / "cat");
  ld::write_bytes(root / "cat" / "a.png", ld::encode_png(std::vector<std::uint8_t>(4 * 4 * 3, 7), 4, 4));
  REQUIRE(ld::read_image_folder(root).size() == 1);
  // A symbolic link to its own folder: the recursive listing (which follows links) ends in ELOOP.
  fs::create_directory_symlink(root / "cat", root / "cat" / "again");
  ltl_test::require_error<ltl::io_error>([&] { (void)ld::read_image_folder(root); },
                                         {root.string(), "cannot list the image folder"});
  fs::remove_all(root);
}

TEST_CASE("writing an image below a regular file is an io_error naming the directory", "[reliability][image]") {
  const auto root = scratch("write_below_file");
  std::ofstream(root / "plain") << "a file";
  const auto bytes = ld::encode_png(std::vector<std::uint8_t>(4 * 4 * 3, 7), 4, 4);
  ltl_test::require_error<ltl::io_error>([&] { ld::write_bytes(root / "plain" / "sub" / "x.png", bytes); },
                                         {(root / "plain" / "sub").string(), "cannot create the directory"});
  fs::remove_all(root);
}
