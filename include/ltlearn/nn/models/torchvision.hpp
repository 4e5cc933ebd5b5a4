#pragma once
/// \file
/// torchvision state dicts for nn::resnet: the name mapping, import and export in safetensors.
///
/// nn::resnet builds exactly torchvision's ResNet / ResNeXt (v1.5), so a torchvision state dict
/// fits it entry for entry once the names are mapped:
///
///   torchvision                     ltlearn
///   conv1.weight                    stem.0.weight
///   bn1.{weight,bias,running_*}     stem.1.{…}
///   layerK.B.…                      stageK.B.…  (K = 1…4; conv1/bn1/…/downsample.0/1 inside a block unchanged)
///   fc.weight, fc.bias              fc.weight, fc.bias
///   *.num_batches_tracked           (no counterpart: ltlearn's batch norm uses a fixed momentum)
///
/// Files are safetensors with torchvision's names; scripts/torchvision_to_safetensors.py turns a
/// torchvision .pth (or the pretrained weights torchvision downloads) into one and back, so the
/// library itself never needs Python. Exported files hold every parameter and buffer in T's
/// dtype plus `num_batches_tracked` = 0 (int64, 0-d) for each batch norm, which is what
/// torchvision's `load_state_dict(strict=True)` expects.
///
/// safetensors.hpp lives in train/ but depends only on core, tensor and data, so including it
/// here adds no cycle.

#include "ltlearn/core/error.hpp"
#include "ltlearn/detail/host.hpp"
#include "ltlearn/nn/models/resnet.hpp"
#include "ltlearn/train/safetensors.hpp"

#include <fmt/format.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace ltl::nn {

namespace detail {
/// Leading name parts that differ between ltlearn and torchvision (torchvision's side first).
inline constexpr std::pair<std::string_view, std::string_view> torchvision_prefixes[] = {
    {"conv1.", "stem.0."}, {"bn1.", "stem.1."}, {"layer1.", "stage1."}, {"layer2.", "stage2."},
    {"layer3.", "stage3."}, {"layer4.", "stage4."}, {"fc.", "fc."}};
inline constexpr std::string_view num_batches_tracked = "num_batches_tracked";
}  // namespace detail

/// torchvision's name of the nn::resnet state entry `name` (e.g. "stage1.0.downsample.0.weight"
/// → "layer1.0.downsample.0.weight"); value_error for a name outside the ResNet layout.
[[nodiscard]] inline std::string torchvision_name(std::string_view name) {
  for (auto [tv, mine] : detail::torchvision_prefixes)
    if (name.starts_with(mine)) return std::string(tv) + std::string(name.substr(mine.size()));
  throw value_error(fmt::format("torchvision_name: '{}' is not an entry of an ImageNet ResNet", name));
}

/// The nn::resnet name of torchvision's entry `name`, or nullopt when no ResNet entry has that
/// prefix (num_batches_tracked entries map like the others; callers decide what to do with them).
[[nodiscard]] inline std::optional<std::string> ltlearn_name(std::string_view name) {
  for (auto [tv, mine] : detail::torchvision_prefixes)
    if (name.starts_with(tv)) return std::string(mine) + std::string(name.substr(tv.size()));
  return std::nullopt;
}

/// Options of the torchvision architecture `arch`: resnet10 (Kang et al.'s ImageNet-LT backbone,
/// not in torchvision), resnet18, resnet34, resnet50, resnet101, resnet152, resnext50_32x4d.
[[nodiscard]] inline resnet_options torchvision_resnet_options(std::string_view arch, index_t num_classes = 1000,
                                                               std::uint64_t seed = 0) {
  if (arch == "resnext50_32x4d") return resnext50_32x4d_options(num_classes, seed);
  for (int depth : {10, 18, 34, 50, 101, 152})
    if (arch == "resnet" + std::to_string(depth)) return {.depth = depth, .num_classes = num_classes, .seed = seed};
  throw value_error(fmt::format(
      "unknown architecture '{}' (resnet10, resnet18, resnet34, resnet50, resnet101, resnet152, resnext50_32x4d)",
      arch));
}

/// What load_torchvision does with the file's classifier (fc.weight, fc.bias).
enum class classifier_import {
  load,             ///< load it; a shape that differs from the model's is an error
  skip,             ///< keep the model's classifier (fine-tuning to another class count)
  if_shape_matches  ///< load it when every fc entry has the model's shape, else keep the model's
};

/// Options of load_torchvision.
struct torchvision_import_options {
  classifier_import classifier = classifier_import::load;
};

/// What load_torchvision did.
struct torchvision_import_report {
  index_t loaded = 0;             ///< entries copied into the model
  bool classifier_loaded = false; ///< whether fc.* came from the file
};

/// The state of `model` under torchvision's names as host tensors of T (see the file comment).
template <real_scalar T, device D>
[[nodiscard]] io::safetensors_data to_torchvision_state(const resnet<T, D>& model) {
  io::safetensors_data out;
  for (auto& [name, t] : model.state_dict()) {
    out.tensors.emplace(torchvision_name(name), ltl::detail::to_host(t).clone());
    if (name.ends_with(".running_mean")) {
      const std::string bn = torchvision_name(name.substr(0, name.size() - std::string_view("running_mean").size()));
      out.tensors.emplace(bn + std::string(detail::num_batches_tracked), tensor<std::int64_t>::scalar(0));
    }
  }
  out.metadata["format"] = "pt";  // what torchvision-side readers of safetensors expect
  out.metadata["ltlearn.arch"] = fmt::format("resnet-{} groups {} width_per_group {} classes {}", model.options().depth,
                                             model.options().groups, model.options().width_per_group,
                                             model.options().num_classes);
  return out;
}

/// Loads a torchvision-named state (`file` names its source in errors) into `model`. Every entry
/// is checked before anything is copied: a model entry missing from the file, a file entry that
/// the model does not have, a shape that differs, or a dtype other than F32/F64 (int64 for
/// num_batches_tracked, which is checked and ignored) is an io_error naming the torchvision key,
/// its ltlearn name and both shapes. Values are converted to T.
template <real_scalar T, device D>
torchvision_import_report load_torchvision_state(resnet<T, D>& model, const io::safetensors_data& data,
                                                 const std::string& file, const torchvision_import_options& o = {}) {
  const auto expected = model.state_dict();
  const auto is_fc = [](std::string_view tv) { return tv.starts_with("fc."); };
  bool take_fc = o.classifier == classifier_import::load;
  if (o.classifier == classifier_import::if_shape_matches) {
    take_fc = true;
    for (auto& [name, t] : expected) {
      if (!name.starts_with("fc.")) continue;
      const auto it = data.tensors.find(torchvision_name(name));
      const shape s = it == data.tensors.end() ? shape{} : std::visit([](const auto& v) { return v.sizes(); }, it->second);
      if (it == data.tensors.end() || s != t.sizes()) take_fc = false;
    }
  }
  // File entries: each must be a model entry (or the num_batches_tracked of one of its batch norms).
  for (auto& [key, any] : data.tensors) {
    const auto mine = ltlearn_name(key);
    const shape s = std::visit([](const auto& v) { return v.sizes(); }, any);
    if (key.ends_with(detail::num_batches_tracked)) {
      const std::string bn = key.substr(0, key.size() - detail::num_batches_tracked.size());
      const auto bn_mine = ltlearn_name(bn + "running_mean");
      LTL_CHECK(bn_mine && expected.count(*bn_mine), io_error,
                "{}: unexpected key '{}': the model has no batch norm '{}'", file, key, bn.substr(0, bn.size() - 1));
      LTL_CHECK(std::holds_alternative<tensor<std::int64_t>>(any) && s.numel() == 1, io_error,
                "{}: key '{}' must be one int64 (a counter), got shape {}", file, key, s);
      continue;
    }
    LTL_CHECK(mine && expected.count(*mine), io_error, "{}: unexpected key '{}' (shape {}): resnet-{} has no such entry",
              file, key, s, model.options().depth);
    if (is_fc(key) && !take_fc) continue;
    LTL_CHECK(!std::holds_alternative<tensor<std::int64_t>>(any), io_error,
              "{}: key '{}' is int64, a floating-point tensor was expected", file, key);
    const auto& want = expected.at(*mine).sizes();
    LTL_CHECK(s == want, io_error, "{}: key '{}' (ltlearn '{}') has shape {}, the model expects {}{}", file, key, *mine,
              s, want,
              is_fc(key) ? " (a classifier of another class count: import with classifier_import::skip)" : "");
  }
  // Model entries: each must be in the file (the classifier only when it is imported).
  for (auto& [name, t] : expected) {
    const std::string key = torchvision_name(name);
    if (is_fc(key) && !take_fc) continue;
    LTL_CHECK(data.tensors.count(key), io_error, "{}: missing key '{}' (ltlearn '{}', shape {})", file, key, name,
              t.sizes());
  }
  torchvision_import_report rep{.loaded = 0, .classifier_loaded = take_fc};
  for (auto& [name, t] : expected) {
    const std::string key = torchvision_name(name);
    if (is_fc(key) && !take_fc) continue;
    tensor<T> host(t.sizes());
    std::visit(
        [&](const auto& src) {
          const auto c = src.contiguous();
          for (index_t i = 0; i < c.numel(); ++i) host.data()[i] = static_cast<T>(c.data()[i]);
        },
        data.tensors.at(key));
    auto dst = t;
    dst.copy_(host.template to<D>());
    ++rep.loaded;
  }
  return rep;
}

/// Writes the state of `model` under torchvision's names to a safetensors file (atomically).
template <real_scalar T, device D>
void save_torchvision(const std::filesystem::path& path, const resnet<T, D>& model) {
  io::save_safetensors(path, to_torchvision_state(model));
}

/// Loads a safetensors file with torchvision's names into `model` (errors as load_torchvision_state).
template <real_scalar T, device D>
torchvision_import_report load_torchvision(const std::filesystem::path& path, resnet<T, D>& model,
                                           const torchvision_import_options& o = {}) {
  return load_torchvision_state(model, io::load_safetensors(path), path.string(), o);
}

}  // namespace ltl::nn
