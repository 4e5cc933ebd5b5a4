#pragma once
/// \file
/// data::rgb_mean: the per-channel mean of a training set's images after Resize((S, S)), the
/// "training-set RGB mean" CDT's iNaturalist recipe subtracts (SPEC §4). Computed over a fixed,
/// evenly spaced sample of the set — items ⌊k·n/N⌋ for k = 0 … N−1, all of them when n ≤ N — so
/// the same set and options always give the same sample and the same numbers, for any worker or
/// thread count: images are decoded through an image_pipeline (its loader's workers, OpenMP
/// inside a batch) and summed in item order in double.
///
///   auto m = data::rgb_mean(train_set, {.resize = 256, .max_images = 10000, .workers = 4});
///   auto t = data::cdt_train_transform(256, 224, m.mean);

#include "ltlearn/core/config.hpp"
#include "ltlearn/core/error.hpp"
#include "ltlearn/data/image/encoded_dataset.hpp"
#include "ltlearn/data/image/pipeline.hpp"
#include "ltlearn/data/loader.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace ltl::data {

/// Options of rgb_mean.
struct rgb_mean_options {
  index_t resize = 256;        ///< images are resized to resize × resize first (aspect not kept)
  index_t max_images = 10000;  ///< sample size N (≤ 0: every image)
  index_t batch_size = 64;     ///< images decoded per batch
  int workers = 4;             ///< loader threads (batches decoded ahead)
  bad_image_policy on_bad_image = bad_image_policy::stop;  ///< replace: the next decodable item stands in
};

/// A training-set mean and the sample it came from.
struct rgb_mean_result {
  std::vector<double> mean;     ///< [3], RGB on the [0, 1] scale of the pipeline's output
  std::vector<index_t> sample;  ///< the items averaged, increasing
};

/// The items rgb_mean averages for a set of n: ⌊k·n/N⌋, k < N (every item when N ≤ 0 or n ≤ N).
inline std::vector<index_t> rgb_mean_sample(index_t n, index_t max_images) {
  LTL_CHECK(n >= 0, value_error, "rgb_mean_sample: set size {} is negative", n);
  const index_t k = max_images <= 0 || n <= max_images ? n : max_images;
  std::vector<index_t> pick(static_cast<std::size_t>(k));
  for (index_t i = 0; i < k; ++i) pick[static_cast<std::size_t>(i)] = static_cast<index_t>(
      static_cast<unsigned __int128>(i) * static_cast<unsigned __int128>(n) / static_cast<unsigned __int128>(k));
  return pick;
}

/// Per-channel mean of `ds`'s sampled images after Resize((resize, resize)) (bilinear with
/// antialiasing, as the transforms resize): each image's channel means, averaged over the sample
/// (every image has resize² pixels, so this is the mean over all sampled pixels).
inline rgb_mean_result rgb_mean(const encoded_dataset& ds, const rgb_mean_options& o = {}) {
  LTL_CHECK(ds.size() > 0, value_error, "rgb_mean: the set {} is empty", ds.name());
  LTL_CHECK(o.resize > 0 && o.batch_size > 0, value_error, "rgb_mean: resize {} and batch_size {} must be positive",
            o.resize, o.batch_size);
  // The whole resized image: a centre crop as large as the square, no normalisation.
  const image_pipeline<float> src(
      ds, {.transform = {.kind = sample_transform::geometry::resize_center_crop, .resize = o.resize,
                         .square_resize = true, .center_crop = o.resize},
           .on_bad_image = o.on_bad_image});
  rgb_mean_result r;
  r.sample = rgb_mean_sample(ds.size(), o.max_images);
  loader<float, image_pipeline<float>> load(src, {.batch_size = o.batch_size, .workers = o.workers});
  const index_t plane = o.resize * o.resize;
  double sum[3] = {0, 0, 0};
  auto run = load.run(0, r.sample);
  while (auto b = run->next()) {
    const float* x = b->images.data();
    for (index_t i = 0; i < b->images.size(0); ++i)
      for (index_t c = 0; c < 3; ++c) {
        const float* q = x + (3 * i + c) * plane;
        double s = 0;
        for (index_t p = 0; p < plane; ++p) s += static_cast<double>(q[p]);
        sum[c] += s / static_cast<double>(plane);
      }
  }
  const auto n = static_cast<double>(r.sample.size());
  r.mean = {sum[0] / n, sum[1] / n, sum[2] / n};
  return r;
}

}  // namespace ltl::data
