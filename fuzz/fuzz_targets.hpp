#pragma once
// The parser entry points every libFuzzer harness (fuzz_<parser>.cpp) and the corpus replay
// test (tests/data/parsers.cpp) call, so both exercise exactly the same code. Each target feeds
// one input through the byte-buffer parsers and swallows ltl::error only: any other exception
// escapes (libFuzzer reports it as a crash, the replay test as a failure).

#include <ltlearn/core/error.hpp>
#include <ltlearn/data/cifar.hpp>
#include <ltlearn/data/idx.hpp>
#include <ltlearn/data/image/decode.hpp>
#include <ltlearn/data/image/readers.hpp>
#include <ltlearn/train/checkpoint.hpp>
#include <ltlearn/train/safetensors.hpp>

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ltl_fuzz {

using input = std::span<const std::uint8_t>;

/// Runs f, ignoring the ltl::error it may throw on bad input; returns whether it succeeded.
template <class F>
bool accepts(F&& f) {
  try {
    std::forward<F>(f)();
    return true;
  } catch (const ltl::error&) {
    return false;
  }
}

/// IDX images and labels (plain or gzip): both readers see every input.
inline void idx(input in) {
  accepts([&] { (void)ltl::data::parse_idx_images(in, "fuzz-idx"); });
  accepts([&] { (void)ltl::data::parse_idx_labels(in, "fuzz-idx", 256); });
}

/// CIFAR-10 and CIFAR-100 binary records (plain or gzip).
inline void cifar(input in) {
  accepts([&] { (void)ltl::data::parse_cifar(in, ltl::data::cifar_variant::cifar10, "fuzz-cifar10"); });
  accepts([&] { (void)ltl::data::parse_cifar(in, ltl::data::cifar_variant::cifar100, "fuzz-cifar100"); });
}

/// Safetensors, and a checkpoint's 'ltlearn.state' metadata read as load_checkpoint reads it.
inline void safetensors(input in) {
  ltl::io::safetensors_data d;
  const std::span<const char> bytes(reinterpret_cast<const char*>(in.data()), in.size());
  if (!accepts([&] { d = ltl::io::parse_safetensors(bytes, "fuzz-safetensors"); })) return;
  const auto it = d.metadata.find("ltlearn.state");
  if (it == d.metadata.end()) return;
  accepts([&] {
    const auto j = ltl::io::parse_json_untrusted(it->second, "fuzz-safetensors", "'ltlearn.state'");
    (void)ltl::train::train_state::from_json(j, "fuzz-safetensors");
  });
}

/// JPEG and PNG: the header, then (when the image is small) the pixels at full scale, at a DCT
/// reduction, and with codec warnings as errors. Headers may declare up to 65500 × 65500 pixels
/// that a few hundred bytes cannot back; decoding those would measure the allocator, not the
/// parser, so only images of at most 2^20 pixels are decoded.
inline void image(input in) {
  accepts([&] {
    ltl::data::image_decoder d(in, "fuzz-image");
    if (d.height() * d.width() > (ltl::index_t{1} << 20)) return;
    (void)d.decode();
  });
  accepts([&] {
    ltl::data::image_decoder d(in, "fuzz-image");
    if (d.height() * d.width() > (ltl::index_t{1} << 20)) return;
    (void)d.decode({.reduction = 2, .warnings_are_errors = true});
  });
}

/// An ImageNet-LT / Places-LT list file, with and without a class count.
inline void image_list(input in) {
  const std::string_view text(reinterpret_cast<const char*>(in.data()), in.size());
  accepts([&] { (void)ltl::data::parse_image_list(text, "fuzz-list"); });
  accepts([&] { (void)ltl::data::parse_image_list(text, "fuzz-list", 10); });
}

/// An iNaturalist annotation file, alone and against the label mapping of a fixed training file.
inline void inat(input in) {
  const std::string_view text(reinterpret_cast<const char*>(in.data()), in.size());
  accepts([&] { (void)ltl::data::parse_inat_json(text, "fuzz-inat"); });
  static const ltl::data::category_map fixed{.ids = {4, 9}, .names = {"a", "b"}};
  accepts([&] { (void)ltl::data::parse_inat_json(text, "fuzz-inat", &fixed); });
}

/// The targets by parser name (the corpus and crash folder names).
inline const std::vector<std::pair<std::string, void (*)(input)>>& targets() {
  static const std::vector<std::pair<std::string, void (*)(input)>> t{
      {"idx", &idx},     {"cifar", &cifar}, {"safetensors", &safetensors},
      {"image", &image}, {"list", &image_list}, {"inat", &inat}};
  return t;
}

}  // namespace ltl_fuzz
