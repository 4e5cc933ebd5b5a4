#pragma once
/// \file
/// data::image_pipeline: decode + augment encoded images straight into a batch [B, 3, S, S],
/// one generator per image, so data::loader over it gives the same batches for any number of
/// worker threads (and any split of an epoch across data-parallel ranks).
///
///   data::image_pipeline<float> train_src(train_set, {.transform = data::imagenet_train_transform()});
///   data::loader<float, data::image_pipeline<float>> loader(train_src, {.batch_size = 256, .workers = 8});

#include "ltlearn/core/concepts.hpp"
#include "ltlearn/core/config.hpp"
#include "ltlearn/core/error.hpp"
#include "ltlearn/core/rng.hpp"
#include "ltlearn/core/shape.hpp"
#include "ltlearn/data/batch.hpp"
#include "ltlearn/data/image/augment.hpp"
#include "ltlearn/data/image/decode.hpp"
#include "ltlearn/data/image/encoded_dataset.hpp"
#include "ltlearn/data/loader.hpp"
#include "ltlearn/tensor/tensor.hpp"

#include <fmt/format.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <vector>

namespace ltl::data {

/// What an image_pipeline does to one image.
struct sample_transform {
  /// random_resized_crop: torchvision RandomResizedCrop. resize_center_crop: Resize + CenterCrop.
  /// square_resize_random_crop: Resize((resize, resize)) + RandomCrop(random_crop) (CDT's iNaturalist).
  enum class geometry { random_resized_crop, resize_center_crop, square_resize_random_crop };
  geometry kind = geometry::random_resized_crop;
  random_resized_crop crop{};  ///< train geometry (its `size` is the output side)
  index_t resize = 256;        ///< short side before the centre crop, or the square's side (square_resize)
  /// resize_center_crop: resize to resize × resize, aspect not kept (torchvision Resize((s, s)));
  /// square_resize_random_crop always does.
  bool square_resize = false;
  index_t center_crop = 224;   ///< resize_center_crop: output side
  index_t random_crop = 224;   ///< square_resize_random_crop: output side
  double flip_p = 0.0;         ///< horizontal flip probability (drawn only when > 0)
  color_jitter jitter{};       ///< applied after crop and flip
  std::vector<double> mean{};  ///< [3]; empty: no normalisation
  std::vector<double> stddev{};
  /// DCT-domain reduction for JPEGs: decode at 1/r (r ≤ max_reduction, a power of 2) when the
  /// crop still has at least the output's pixels after it, so the resize only shrinks. 1 = off
  /// (exact torchvision parity). Changes results slightly: the region is resampled from libjpeg's
  /// reduced-size IDCT instead of the full image (differences of a few grey levels at edges);
  /// random draws and crop boxes are unchanged.
  int max_reduction = 1;

  /// Output side length.
  [[nodiscard]] index_t output_size() const noexcept {
    return kind == geometry::random_resized_crop ? crop.size
           : kind == geometry::resize_center_crop ? center_crop
                                                  : random_crop;
  }
};

/// ImageNet mean and standard deviation (RGB).
inline const std::vector<double> imagenet_mean{0.485, 0.456, 0.406};
inline const std::vector<double> imagenet_std{0.229, 0.224, 0.225};
/// iNaturalist 2018 mean and standard deviation (RGB, SPEC §12).
inline const std::vector<double> inat_mean{0.466, 0.471, 0.380};
inline const std::vector<double> inat_std{0.195, 0.194, 0.192};

/// Training transform of the recipes: RandomResizedCrop(size), flip ½, ColorJitter(0.4, 0.4, 0.4)
/// when `jitter` (not for iNaturalist), normalisation by mean/std.
inline sample_transform imagenet_train_transform(index_t size = 224, bool jitter = true,
                                                 const std::vector<double>& mean = imagenet_mean,
                                                 const std::vector<double>& stddev = imagenet_std) {
  return {.kind = sample_transform::geometry::random_resized_crop, .crop = {.size = size}, .flip_p = 0.5,
          .jitter = jitter ? color_jitter{0.4, 0.4, 0.4} : color_jitter{}, .mean = mean, .stddev = stddev};
}
/// Evaluation transform: Resize(resize) short side, CenterCrop(crop), normalisation.
inline sample_transform imagenet_eval_transform(index_t resize = 256, index_t crop = 224,
                                                const std::vector<double>& mean = imagenet_mean,
                                                const std::vector<double>& stddev = imagenet_std) {
  return {.kind = sample_transform::geometry::resize_center_crop, .resize = resize, .center_crop = crop,
          .mean = mean, .stddev = stddev};
}

/// CDT's iNaturalist training transform (Ye et al., SPEC §4): Resize((resize, resize)) — both
/// sides, aspect not kept, bilinear with antialiasing — RandomCrop(crop) at uniform offsets,
/// flip ½, then `mean` subtracted per channel (no division: stddev 1). Values are on the [0, 1]
/// scale of every other transform here (torchvision's ToTensor), so `mean` is too.
inline sample_transform cdt_train_transform(index_t resize, index_t crop, const std::vector<double>& mean) {
  return {.kind = sample_transform::geometry::square_resize_random_crop, .resize = resize, .square_resize = true,
          .random_crop = crop, .flip_p = 0.5, .mean = mean, .stddev = std::vector<double>(mean.size(), 1.0)};
}
/// Its evaluation counterpart: Resize((resize, resize)) + CenterCrop(crop), `mean` subtracted.
inline sample_transform cdt_eval_transform(index_t resize, index_t crop, const std::vector<double>& mean) {
  return {.kind = sample_transform::geometry::resize_center_crop, .resize = resize, .square_resize = true,
          .center_crop = crop, .mean = mean, .stddev = std::vector<double>(mean.size(), 1.0)};
}

/// One image's drawn geometry and colour.
struct sample_plan {
  resize_geometry geo;
  bool flip = false;
  jitter_params jitter{};
};

/// Draws image i's plan for a full-resolution h × w image: crop (train), flip, jitter, in that order.
inline sample_plan plan_sample(const sample_transform& t, index_t h, index_t w, rng& g) {
  sample_plan p;
  if (t.kind == sample_transform::geometry::random_resized_crop) {
    const crop_box b = t.crop.draw(h, w, g);
    p.geo = {.y0 = double(b.top), .x0 = double(b.left), .y1 = double(b.top + b.height), .x1 = double(b.left + b.width),
             .out_h = t.crop.size, .out_w = t.crop.size, .top = 0, .left = 0, .win_h = t.crop.size, .win_w = t.crop.size};
  } else if (t.kind == sample_transform::geometry::square_resize_random_crop) {
    // torchvision RandomCrop.get_params: top, then left, each uniform over every valid offset.
    LTL_CHECK(t.resize > 0 && t.random_crop > 0 && t.random_crop <= t.resize, value_error,
              "square_resize_random_crop: crop {} must be in [1, resize {}]", t.random_crop, t.resize);
    const auto span = static_cast<std::uint64_t>(t.resize - t.random_crop + 1);
    const auto top = static_cast<index_t>(g.below(span));
    const auto left = static_cast<index_t>(g.below(span));
    p.geo = {.y0 = 0, .x0 = 0, .y1 = double(h), .x1 = double(w), .out_h = t.resize, .out_w = t.resize, .top = top,
             .left = left, .win_h = t.random_crop, .win_w = t.random_crop};
  } else {
    const auto [nh, nw] = t.square_resize ? std::array<index_t, 2>{t.resize, t.resize} : resize_short_side(h, w, t.resize);
    const crop_box c = center_crop_box(nh, nw, t.center_crop, t.center_crop);
    p.geo = {.y0 = 0, .x0 = 0, .y1 = double(h), .x1 = double(w), .out_h = nh, .out_w = nw, .top = c.top,
             .left = c.left, .win_h = c.height, .win_w = c.width};
  }
  if (t.flip_p > 0) p.flip = g.uniform() < t.flip_p;
  if (t.jitter.active()) p.jitter = draw_jitter(t.jitter, g);
  return p;
}

/// Decodes `bytes` and writes the transformed image into `dst` ([3, S, S], S = output_size()).
/// `name` names the file in errors. The generator is consumed as plan_sample says.
template <real_scalar T>
void load_sample(std::span<const std::uint8_t> bytes, const std::string& name, const sample_transform& t, rng& g,
                 T* dst, const decode_options& d = {}) {
  image_decoder dec(bytes, name);
  sample_plan p = plan_sample(t, dec.height(), dec.width(), g);
  decode_options o = d;
  o.reduction = 1;
  if (t.max_reduction > 1 && dec.format() == image_format::jpeg)
    o.reduction = choose_reduction(p.geo.y1 - p.geo.y0, p.geo.x1 - p.geo.x0, p.geo.out_h, p.geo.out_w, t.max_reduction);
  const decoded_image im = dec.decode(o);
  if (im.height != im.full_height || im.width != im.full_width) {
    const double sy = double(im.height) / double(im.full_height), sx = double(im.width) / double(im.full_width);
    p.geo.y0 *= sy, p.geo.y1 *= sy, p.geo.x0 *= sx, p.geo.x1 *= sx;
  }
  resize_window(im.rgb.data(), im.height, im.width, p.geo, p.flip, dst);
  const index_t n = p.geo.win_h * p.geo.win_w;
  if (t.jitter.active()) apply_jitter(dst, n, p.jitter);
  if (!t.mean.empty()) normalize_planes(dst, n, t.mean, t.stddev);
}

/// What to do with an image that cannot be read or decoded.
enum class bad_image_policy {
  stop,     ///< throw io_error naming the file (default)
  replace,  ///< log it, count it, and use the next decodable item (index + 1, + 2, … mod N) instead
};

/// Options of image_pipeline.
struct pipeline_options {
  sample_transform transform = imagenet_train_transform();
  bad_image_policy on_bad_image = bad_image_policy::stop;
  int max_replacements = 16;   ///< replace: items tried after a bad one before giving up
  decode_options decode{};     ///< warnings_are_errors (reduction comes from the transform)
  /// replace: receives one line per bad image (default: stderr).
  std::function<void(const std::string&)> log{};
};

/// A batch source (see data::loader) over an encoded_dataset: item i at epoch position p is
/// decoded and transformed with `rng(seed, sample_stream(epoch, p))`.
template <real_scalar T = float>
class image_pipeline {
 public:
  image_pipeline(const encoded_dataset& ds, pipeline_options o) : ds_(&ds), opt_(std::move(o)) {
    const auto& t = opt_.transform;
    LTL_CHECK(t.output_size() > 0, value_error, "image_pipeline: output size must be positive");
    LTL_CHECK(t.mean.size() == t.stddev.size() && (t.mean.empty() || t.mean.size() == 3), shape_error,
              "image_pipeline: {} means and {} standard deviations (need 3 each, or none)", t.mean.size(),
              t.stddev.size());
    for (double s : t.stddev) LTL_CHECK(s > 0 && std::isfinite(s), value_error, "image_pipeline: stddev {} must be > 0", s);
    LTL_CHECK(t.max_reduction >= 1 && t.max_reduction <= 8, value_error,
              "image_pipeline: max_reduction must be in [1, 8], got {}", t.max_reduction);
    LTL_CHECK(opt_.max_replacements >= 1, value_error, "image_pipeline: max_replacements must be >= 1");
  }

  [[nodiscard]] const encoded_dataset& dataset() const noexcept { return *ds_; }
  [[nodiscard]] const pipeline_options& options() const noexcept { return opt_; }
  [[nodiscard]] index_t size() const noexcept { return ds_->size(); }
  [[nodiscard]] index_t num_classes() const noexcept { return ds_->num_classes(); }
  /// The dataset's items per class, and its content hash (the transform is not part of it).
  [[nodiscard]] std::vector<index_t> class_counts() const { return ds_->class_counts(); }
  [[nodiscard]] std::uint64_t content_hash() const noexcept { return ds_->content_hash(); }
  /// Shape of one output image, [3, S, S].
  [[nodiscard]] shape image_shape() const { return {3, opt_.transform.output_size(), opt_.transform.output_size()}; }

  /// Decodes and transforms item i into dst ([3, S, S]) with generator g (io_error naming the file).
  void load(index_t i, rng& g, T* dst) const {
    const auto bytes = ds_->read(i);
    load_sample(std::span<const std::uint8_t>(bytes), ds_->file(i).string(), opt_.transform, g, dst, opt_.decode);
  }

  /// Batch of items `indices`, which sit at positions first_position, first_position + 1, … of
  /// epoch `epoch`'s order. Images are built in parallel (OpenMP); the result does not depend on
  /// the thread count. With bad_image_policy::stop the first bad item (in batch order) throws.
  [[nodiscard]] batch<T> make_batch(std::span<const index_t> indices, index_t epoch, index_t first_position,
                                    std::uint64_t seed) const {
    const auto B = static_cast<index_t>(indices.size());
    const index_t S = opt_.transform.output_size(), k = 3 * S * S;
    for (index_t b = 0; b < B; ++b)
      LTL_CHECK(indices[static_cast<std::size_t>(b)] >= 0 && indices[static_cast<std::size_t>(b)] < size(), value_error,
                "image_pipeline: index {} (batch position {}) is outside [0, {})", indices[static_cast<std::size_t>(b)],
                b, size());
    batch<T> out{tensor<T>(shape{B, 3, S, S}), tensor<std::int64_t>(shape{B})};
    T* x = out.images.data();
    std::int64_t* y = out.labels.data();
    std::vector<std::exception_ptr> errors(static_cast<std::size_t>(B));
    LTL_OMP(omp parallel for schedule(dynamic, 1))
    for (index_t b = 0; b < B; ++b) {
      try {
        y[b] = build(indices[static_cast<std::size_t>(b)], seed, sample_stream(epoch, first_position + b), x + b * k);
      } catch (...) {
        errors[static_cast<std::size_t>(b)] = std::current_exception();
      }
    }
    for (auto& e : errors)
      if (e) std::rethrow_exception(e);
    return out;
  }

  /// replace: distinct bad files seen so far, sorted.
  [[nodiscard]] std::vector<std::string> bad_images() const {
    std::lock_guard lock(mu_);
    return {bad_.begin(), bad_.end()};
  }
  /// replace: number of distinct bad files seen so far.
  [[nodiscard]] index_t bad_image_count() const {
    std::lock_guard lock(mu_);
    return static_cast<index_t>(bad_.size());
  }

 private:
  // Loads item i (or its replacement) into dst; returns the label used.
  std::int64_t build(index_t i, std::uint64_t seed, std::uint64_t stream, T* dst) const {
    if (opt_.on_bad_image == bad_image_policy::stop) {
      rng g(seed, stream);
      load(i, g, dst);
      return ds_->label(i);
    }
    for (int attempt = 0; attempt <= opt_.max_replacements; ++attempt) {
      const index_t j = (i + attempt) % size();
      rng g(seed, stream);  // the same stream for every attempt: the result depends only on j
      try {
        load(j, g, dst);
        return ds_->label(j);
      } catch (const io_error& e) {
        note_bad(ds_->file(j).string(), e.what());
      }
    }
    throw io_error(fmt::format("image_pipeline: item {} ({}) and the {} items after it could not be decoded", i,
                               ds_->file(i).string(), opt_.max_replacements));
  }
  void note_bad(const std::string& path, const std::string& why) const {
    std::lock_guard lock(mu_);
    if (!bad_.insert(path).second) return;
    const std::string line = fmt::format("bad image skipped: {}", why);
    if (opt_.log) opt_.log(line);
    else fmt::print(stderr, "{}\n", line);
  }

  const encoded_dataset* ds_;
  pipeline_options opt_;
  mutable std::mutex mu_;
  mutable std::set<std::string> bad_;
};

}  // namespace ltl::data
