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
