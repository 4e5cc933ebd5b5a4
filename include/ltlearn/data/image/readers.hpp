#pragma once
/// \file
/// Readers of the large long-tailed benchmarks' index files into encoded_dataset (SPEC §12):
/// ImageNet-LT / Places-LT list files, iNaturalist 2018/2019 COCO-style JSON, and a
/// folder-per-class layout for a user's own data.
///
/// The parsers take the file's text (so they can be fuzzed); the `read_*` functions are thin
/// wrappers that read the file and attach the image root.

#include "ltlearn/core/error.hpp"
#include "ltlearn/core/shape.hpp"
#include "ltlearn/data/image/encoded_dataset.hpp"
#include "ltlearn/data/json_untrusted.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ltl::data {

/// Whole text file (io_error naming it when it cannot be read).
inline std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  LTL_CHECK(f.good(), io_error, "{}: cannot open", path.string());
  std::ostringstream s;
  s << f.rdbuf();
  LTL_CHECK(!f.bad(), io_error, "{}: read failed", path.string());
  return s.str();
}

/// Parsed entries of an image list: relative paths and labels, in file order.
struct image_list {
  std::vector<std::string> paths;
  std::vector<std::int64_t> labels;
};

/// Parses an ImageNet-LT / Places-LT list: one `relative/path.jpg label` per line. The label is
/// after the LAST run of whitespace, so paths may contain spaces; CRLF line ends, blank lines
/// (the usual trailing one included) and surrounding spaces are tolerated. A line without a path,
/// a label that is not a non-negative decimal integer, or (when num_classes > 0) a label
/// ≥ num_classes is a value_error naming `source` and the line number.
inline image_list parse_image_list(std::string_view text, std::string_view source, index_t num_classes = 0) {
  image_list out;
  std::size_t line_no = 0, pos = 0;
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; };
  while (pos < text.size()) {
    const std::size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    ++line_no;
    while (!line.empty() && is_space(line.back())) line.remove_suffix(1);
    while (!line.empty() && is_space(line.front())) line.remove_prefix(1);
    if (line.empty()) continue;
    std::size_t cut = line.size();
    while (cut > 0 && !is_space(line[cut - 1])) --cut;
    LTL_CHECK(cut > 0, value_error, "{}:{}: expected 'path label', got '{}' (no whitespace before a label)", source,
              line_no, line);
    const std::string_view label_text = line.substr(cut);
    std::string_view path = line.substr(0, cut);
    while (!path.empty() && is_space(path.back())) path.remove_suffix(1);
    std::int64_t label = -1;
    const auto [end, ec] = std::from_chars(label_text.data(), label_text.data() + label_text.size(), label);
    LTL_CHECK(ec == std::errc{} && end == label_text.data() + label_text.size() && label >= 0, value_error,
              "{}:{}: label '{}' of '{}' is not a non-negative integer", source, line_no, label_text, path);
    LTL_CHECK(num_classes <= 0 || label < num_classes, value_error, "{}:{}: label {} of '{}' is outside [0, {})",
              source, line_no, label, path, num_classes);
    out.paths.emplace_back(path);
    out.labels.push_back(label);
  }
  LTL_CHECK(!out.paths.empty(), value_error, "{}: the image list has no entries", source);
  return out;
}

/// Reads an image list file into a dataset whose items live under `image_root`. num_classes = 0
/// takes the largest label + 1 (pass 1000 for ImageNet-LT, 365 for Places-LT so that a split
/// without the last class still has the right class count).
inline encoded_dataset read_image_list(const std::filesystem::path& list_file, const std::filesystem::path& image_root,
                                       index_t num_classes = 0, std::string name = {}) {
  auto parsed = parse_image_list(read_text_file(list_file), list_file.string(), num_classes);
  if (num_classes <= 0) num_classes = *std::max_element(parsed.labels.begin(), parsed.labels.end()) + 1;
  std::vector<encoded_item> items;
  items.reserve(parsed.paths.size());
  for (auto& p : parsed.paths) items.push_back({.path = std::move(p)});
  return {name.empty() ? list_file.stem().string() : std::move(name), image_root, std::move(items),
          std::move(parsed.labels), num_classes};
}

/// iNaturalist category ids ↔ contiguous labels. Label c is the c-th smallest category id of the
/// file's `categories`, so train and validation files (which list the same categories) agree.
struct category_map {
  std::vector<std::int64_t> ids;    ///< ids[label] = category id
  std::vector<std::string> names;   ///< names[label] (empty strings where the file has none)
  /// The label of a category id, or -1.
  [[nodiscard]] std::int64_t label_of(std::int64_t id) const {
    const auto it = std::lower_bound(ids.begin(), ids.end(), id);
    return it != ids.end() && *it == id ? static_cast<std::int64_t>(it - ids.begin()) : -1;
  }
  /// `[{"label": 0, "category_id": 3, "name": "..."}, ...]`: what a trainer saves with its results.
  [[nodiscard]] nlohmann::json to_json() const {
    auto a = nlohmann::json::array();
    for (std::size_t c = 0; c < ids.size(); ++c) a.push_back({{"label", c}, {"category_id", ids[c]}, {"name", names[c]}});
    return a;
  }
};

/// A parsed iNaturalist annotation file, images in the file's `images` order.
struct inat_annotations {
  std::vector<std::string> file_names;
  std::vector<std::int64_t> labels;
  category_map categories;
};

namespace detail {
inline const nlohmann::json& json_field(const nlohmann::json& obj, const char* key, std::string_view source,
                                        std::string_view where) {
  LTL_CHECK(obj.is_object(), value_error, "{}: {} is not a JSON object", source, where);
  const auto it = obj.find(key);
  LTL_CHECK(it != obj.end(), value_error, "{}: {} has no field '{}'", source, where, key);
  return *it;
}
inline std::int64_t json_int(const nlohmann::json& obj, const char* key, std::string_view source, std::string_view where) {
  const auto& v = json_field(obj, key, source, where);
  LTL_CHECK(v.is_number_integer(), value_error, "{}: field '{}' of {} is not an integer ({})", source, key, where,
            v.dump());
  return v.get<std::int64_t>();
}
}  // namespace detail

/// Parses an iNaturalist 2018/2019 (COCO-style) annotation file: `images[{id, file_name}]`,
/// `annotations[{image_id, category_id}]`, `categories[{id, name}]`. Annotations are joined to
/// images on image_id, never by position. `fixed` (optional) imposes the label mapping of another
/// file (the training set's). value_error naming the field or id for: a missing field, a
/// duplicate image id, an annotation of an unknown image, a second annotation of one image, an
/// unknown category, an image without annotation.
inline inat_annotations parse_inat_json(std::string_view text, std::string_view source,
                                        const category_map* fixed = nullptr) {
  // nlohmann recurses once per nesting level when it copies a value: refuse absurd depth first.
  LTL_CHECK(!io::detail::json_deeper_than(text, io::max_json_depth), value_error,
            "{}: JSON nests arrays/objects deeper than {} levels", source, io::max_json_depth);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    throw value_error(fmt::format("{}: invalid JSON: {}", source, e.what()));
  }
  const auto& images = detail::json_field(j, "images", source, "the top-level object");
  const auto& annotations = detail::json_field(j, "annotations", source, "the top-level object");
  LTL_CHECK(images.is_array() && annotations.is_array(), value_error, "{}: 'images' and 'annotations' must be arrays",
            source);
  inat_annotations out;
  if (fixed) {
    out.categories = *fixed;
  } else {
    const auto& cats = detail::json_field(j, "categories", source, "the top-level object");
    LTL_CHECK(cats.is_array() && !cats.empty(), value_error, "{}: 'categories' must be a non-empty array", source);
    std::map<std::int64_t, std::string> by_id;
    for (std::size_t k = 0; k < cats.size(); ++k) {
      const auto where = fmt::format("categories[{}]", k);
      const std::int64_t id = detail::json_int(cats[k], "id", source, where);
      const auto name_it = cats[k].find("name");
      const std::string name = name_it != cats[k].end() && name_it->is_string() ? name_it->get<std::string>() : "";
      LTL_CHECK(by_id.emplace(id, name).second, value_error, "{}: {} repeats category id {}", source, where, id);
    }
    for (auto& [id, name] : by_id) {
      out.categories.ids.push_back(id);
      out.categories.names.push_back(name);
    }
  }
  std::unordered_map<std::int64_t, std::size_t> position;  // image id → index in `images`
  position.reserve(images.size());
  out.file_names.reserve(images.size());
  for (std::size_t k = 0; k < images.size(); ++k) {
    const auto where = fmt::format("images[{}]", k);
    const std::int64_t id = detail::json_int(images[k], "id", source, where);
    const auto& fn = detail::json_field(images[k], "file_name", source, where);
    LTL_CHECK(fn.is_string(), value_error, "{}: field 'file_name' of {} is not a string", source, where);
    LTL_CHECK(position.emplace(id, k).second, value_error, "{}: {} repeats image id {}", source, where, id);
    out.file_names.push_back(fn.get<std::string>());
  }
  out.labels.assign(images.size(), -1);
  for (std::size_t k = 0; k < annotations.size(); ++k) {
    const auto where = fmt::format("annotations[{}]", k);
    const std::int64_t image_id = detail::json_int(annotations[k], "image_id", source, where);
    const std::int64_t cat = detail::json_int(annotations[k], "category_id", source, where);
    const auto it = position.find(image_id);
    LTL_CHECK(it != position.end(), value_error, "{}: {} refers to unknown image id {}", source, where, image_id);
    const std::int64_t label = out.categories.label_of(cat);
    LTL_CHECK(label >= 0, value_error, "{}: {} (image id {}) has unknown category id {}", source, where, image_id, cat);
    LTL_CHECK(out.labels[it->second] < 0, value_error, "{}: {} is a second annotation of image id {}", source, where,
              image_id);
    out.labels[it->second] = label;
  }
  for (std::size_t k = 0; k < images.size(); ++k)
    LTL_CHECK(out.labels[k] >= 0, value_error, "{}: image id {} ({}) has no annotation", source,
              images[k]["id"].get<std::int64_t>(), out.file_names[k]);
  return out;
}

/// Reads an iNaturalist annotation file; image paths (`file_name`) are relative to `image_root`
/// (the directory holding `train_val2018/`). Pass the training set's `category_map` as `fixed`
/// when reading the validation file; `mapping` (optional) receives the mapping used.
inline encoded_dataset read_inat(const std::filesystem::path& json_file, const std::filesystem::path& image_root,
                                 const category_map* fixed = nullptr, category_map* mapping = nullptr,
                                 std::string name = {}) {
  auto a = parse_inat_json(read_text_file(json_file), json_file.string(), fixed);
  std::vector<encoded_item> items;
  items.reserve(a.file_names.size());
  for (auto& f : a.file_names) items.push_back({.path = std::move(f)});
  const auto classes = static_cast<index_t>(a.categories.ids.size());
  std::vector<std::string> names = a.categories.names;
  if (mapping) *mapping = a.categories;
  return {name.empty() ? json_file.stem().string() : std::move(name), image_root, std::move(items),
          std::move(a.labels), classes, std::move(names)};
}

namespace detail {
/// read_image_folder without the translation of std::filesystem errors.
inline encoded_dataset read_image_folder_unchecked(const std::filesystem::path& root, std::string name) {
  namespace fs = std::filesystem;
  std::error_code ec;
  LTL_CHECK(fs::is_directory(root, ec), io_error, "{}: not a directory", root.string());
  std::vector<std::string> classes;
  for (const auto& e : fs::directory_iterator(root))
    if (e.is_directory()) classes.push_back(e.path().filename().string());
  std::sort(classes.begin(), classes.end());
  LTL_CHECK(!classes.empty(), io_error, "{}: no class sub-folders", root.string());
  std::vector<encoded_item> items;
  std::vector<std::int64_t> labels;
  for (std::size_t c = 0; c < classes.size(); ++c) {
    std::vector<std::string> files;
    for (const auto& e : fs::recursive_directory_iterator(root / classes[c], fs::directory_options::follow_directory_symlink)) {
      if (!e.is_regular_file()) continue;
      std::string ext = e.path().extension().string();
      std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
      if (ext == ".jpg" || ext == ".jpeg" || ext == ".png") files.push_back(fs::relative(e.path(), root).generic_string());
    }
    std::sort(files.begin(), files.end());
    for (auto& f : files) {
      items.push_back({.path = std::move(f)});
      labels.push_back(static_cast<std::int64_t>(c));
    }
  }
  LTL_CHECK(!items.empty(), io_error, "{}: no .jpg/.jpeg/.png files in its {} class folders", root.string(),
            classes.size());
  return {name.empty() ? root.filename().string() : std::move(name), root, std::move(items), std::move(labels),
          static_cast<index_t>(classes.size()), std::move(classes)};
}
}  // namespace detail

/// Reads a folder-per-class layout: class c is the c-th sub-folder of `root` in sorted (byte)
/// order, and its images are the files below it (recursively) whose extension is .jpg, .jpeg or
/// .png in any case, in sorted path order — torchvision's ImageFolder order. The decoder still
/// goes by magic bytes; the extension only filters out non-image files. io_error naming the
/// path for a folder that cannot be listed (permissions, a symbolic-link cycle, ...).
inline encoded_dataset read_image_folder(const std::filesystem::path& root, std::string name = {}) {
  namespace fs = std::filesystem;
  try {
    return detail::read_image_folder_unchecked(root, std::move(name));
  } catch (const fs::filesystem_error& e) {
    throw io_error(fmt::format("{}: cannot list the image folder: {}", root.string(), e.what()));
  }
}

}  // namespace ltl::data
