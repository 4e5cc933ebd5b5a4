// classifier/image_features.hpp: features of an encoded-image data set through an
// image_pipeline, against the model run image by image on the pipeline's own batches.
#include <catch2/catch.hpp>

#include "support.hpp"
#include "support/jpeg_set.hpp"

#include <ltlearn/classifier/image_features.hpp>
#include <ltlearn/data/image/encode.hpp>
#include <ltlearn/nn/models/resnet.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace cl = ltl::classifier;
namespace ld = ltl::data;
using ltl::index_t;

}  // namespace

TEST_CASE("image features: every item through the eval transform and the frozen backbone, in order",
          "[classifier][image]") {
  const ltl_test::jpeg_set set("test_image_features", {2, 0, 1, 0, 2, 1, 0}, 3);
  const ld::image_pipeline<float> src(set.ds, {.transform = ld::imagenet_eval_transform(18, 16)});
  ltl::nn::resnet<float> model({.depth = 10, .num_classes = 3, .seed = 5});
  model.train();  // extraction must switch to eval mode (running statistics) and back

  const auto t = cl::extract_image_features(model, src, {.batch_size = 3, .workers = 0});
  REQUIRE(model.is_training());
  REQUIRE(t.size() == 7);
  REQUIRE(t.dim() == 512);
  REQUIRE(t.num_classes == 3);
  REQUIRE(t.class_counts() == std::vector<index_t>{3, 2, 2});

  // Row i is the backbone's feature of item i decoded on its own, in eval mode.
  model.eval();
  ltl::no_grad_guard ng;
  for (index_t i = 0; i < 7; ++i) {
    INFO("item " << i);
    const index_t idx[1] = {i};
    const auto b = src.make_batch(idx, 0, i, 0);
    REQUIRE(t.labels.data()[i] == set.ds.label(i));
    const auto f = model.features(ltl::variable<float>(b.images)).value().contiguous();
    REQUIRE(f.size(1) == 512);
    for (index_t j = 0; j < 512; ++j) REQUIRE(t.features.data()[i * 512 + j] == Approx(f.data()[j]).margin(1e-5));
  }
  model.train();

  // Loader threads and batch boundaries change nothing.
  const auto t2 = cl::extract_image_features(model, src, {.batch_size = 3, .workers = 2});
  REQUIRE(std::equal(t.features.data(), t.features.data() + t.features.numel(), t2.features.data()));
  const auto t3 = cl::extract_image_features(model, src, {.batch_size = 7, .workers = 1});
  for (index_t k = 0; k < t.features.numel(); ++k) REQUIRE(t3.features.data()[k] == Approx(t.features.data()[k]).margin(1e-5));

  REQUIRE_THROWS_AS(cl::extract_image_features(model, src, {.batch_size = 0}), ltl::value_error);
}

TEST_CASE("image backbone source: augmented crops at their epoch positions through the frozen backbone",
          "[classifier][image]") {
  const ltl_test::jpeg_set set("test_image_backbone_source", {2, 0, 1, 0, 2, 1, 0}, 3);
  const ld::image_pipeline<float> src(set.ds, {.transform = ld::imagenet_train_transform(16)});
  ltl::nn::resnet<float> model({.depth = 10, .num_classes = 3, .seed = 5});
  model.train();
  const cl::image_backbone_source<float, ltl::cpu::device> fs(model, src, 4, 9);
  static_assert(cl::feature_source<cl::image_backbone_source<float, ltl::cpu::device>, float>);
  REQUIRE(fs.dim() == 512);
  REQUIRE(fs.num_classes() == 3);
  REQUIRE(std::vector<std::int64_t>(fs.labels().begin(), fs.labels().end()) == std::vector<std::int64_t>{2, 0, 1, 0, 2, 1, 0});

  const std::vector<index_t> idx{6, 1, 1};
  const auto [f, y] = fs.batch(3, 1, idx);
  REQUIRE(model.is_training());  // the pass switched to eval mode and back
  REQUIRE(f.sizes() == ltl::shape{3, 512});
  REQUIRE(y.to_vector() == std::vector<std::int64_t>{0, 0, 0});
  // Row k is the backbone (eval mode) on the pipeline's crop of item idx[k] at position 1·4 + k
  // of epoch 3 with the source's seed.
  model.eval();
  ltl::no_grad_guard ng;
  const auto b = src.make_batch(idx, 3, 4, 9);
  const auto expect = model.features(ltl::variable<float>(b.images)).value().contiguous();
  for (index_t k = 0; k < expect.numel(); ++k) REQUIRE(f.data()[k] == Approx(expect.data()[k]).margin(1e-5));
  model.train();
  // The repeated item is cropped anew at its second position; another epoch crops differently.
  double diff = 0, other = 0;
  const auto [g, yg] = fs.batch(4, 1, idx);
  for (index_t k = 0; k < 512; ++k) {
    diff += std::abs(f.data()[512 + k] - f.data()[1024 + k]);
    other += std::abs(f.data()[k] - g.data()[k]);
  }
  REQUIRE(diff > 1e-3);
  REQUIRE(other > 1e-3);
  // The same call again gives the same features.
  const auto [f2, y2] = fs.batch(3, 1, idx);
  REQUIRE(f2.to_vector() == f.to_vector());
}
