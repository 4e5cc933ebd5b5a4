// Feature space augmentation on an encoded-image data set (the imagenet_lt / inat_lt path): the
// bank built through an image_pipeline's evaluation transform, its size limit, and the phase-II
// grid evaluated on pipelines.
#include <catch2/catch.hpp>

#include "support/jpeg_set.hpp"
#include "support/module_state.hpp"

#include <ltlearn/augment/feature_bank.hpp>
#include <ltlearn/augment/fsa_grid.hpp>
#include <ltlearn/augment/streamed_bank.hpp>
#include <ltlearn/classifier/features.hpp>
#include <ltlearn/data/image/pipeline.hpp>
#include <ltlearn/eval/evaluate.hpp>
#include <ltlearn/nn/models/resnet.hpp>

#include <string>
#include <vector>

namespace {

namespace la = ltl::augment;
namespace ld = ltl::data;
using ltl::index_t;

// 12 JPEGs of three classes (6, 4, 2) and a held-out / test set of 6 (2 per class).
struct fsa_image_data {
  ltl_test::jpeg_set train{"test_fsa_images_train", {0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2}, 3, 11};
  ltl_test::jpeg_set test{"test_fsa_images_test", {0, 1, 2, 0, 1, 2}, 3, 12};
  ld::image_pipeline<float> train_src{train.ds, {.transform = ld::imagenet_eval_transform(73, 64)}};
  ld::image_pipeline<float> test_src{test.ds, {.transform = ld::imagenet_eval_transform(73, 64)}};
};

}  // namespace

TEST_CASE("FSA on encoded images: the bank through the evaluation transform", "[augment][image]") {
  const fsa_image_data d;
  ltl::nn::resnet<float> model({.depth = 10, .num_classes = 3, .seed = 5});
  model.train();
  const std::string last = model.points()[static_cast<std::size_t>(model.feature_point() - 1)];
  REQUIRE(last == "stage4");
  const auto bank = la::build_feature_bank(model, d.train_src, last, {.batch_size = 5, .workers = 2});
  REQUIRE(model.is_training());  // mode restored
  REQUIRE(bank.size() == 12);
  REQUIRE(bank.last_map);
  REQUIRE(bank.channels == 512);
  REQUIRE(bank.labels == std::vector<std::int64_t>{0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2});
  REQUIRE(bank.by_class[2] == std::vector<index_t>{10, 11});
  // The pooled rows are the backbone's features of the same images (other batch boundaries).
  const auto t = ltl::classifier::extract_features(model, d.train_src, 7);
  REQUIRE(t.features.sizes() == bank.pooled.sizes());
  for (index_t k = 0; k < t.features.numel(); ++k)
    REQUIRE(bank.pooled.data()[k] == Approx(t.features.data()[k]).margin(1e-5));
  // Its logits are the model's on those images.
  const auto z = la::bank_logits(model, bank);
  for (index_t k = 0; k < z.numel(); ++k) REQUIRE(z.data()[k] == Approx(bank.logits.data()[k]).margin(1e-4));

  // The size estimate covers every buffer the bank holds, and a limit below it refuses the bank
  // (naming both sizes) while one at it builds the same bank.
  const std::uint64_t need = la::feature_bank_bytes<float>(12, bank.channels, bank.height, bank.width, 3);
  const std::uint64_t held = 4 * static_cast<std::uint64_t>(bank.vectors.numel() + bank.cam.numel() +
                                                            bank.pooled.numel() + bank.logits.numel()) +
                             8 * bank.labels.size() + bank.nonzero.size();
  REQUIRE(need >= held);
  REQUIRE(need <= held + 8 * 12);  // plus the class lists' indices
  try {
    (void)la::build_feature_bank(model, d.train_src, last, {.batch_size = 5, .max_bytes = need - 1});
    FAIL("a bank over the limit was built");
  } catch (const ltl::value_error& e) {
    const std::string m = e.what();
    INFO(m);
    REQUIRE(m.find("12 maps [512, 2, 2]") != std::string::npos);
    REQUIRE(m.find("over the limit") != std::string::npos);
  }
  const auto again = la::build_feature_bank(model, d.train_src, last, {.batch_size = 12, .max_bytes = need});
  for (index_t k = 0; k < bank.pooled.numel(); ++k)
    REQUIRE(again.pooled.data()[k] == Approx(bank.pooled.data()[k]).margin(1e-5));
}

TEST_CASE("FSA on encoded images: the phase-II grid evaluated on pipelines", "[augment][image]") {
  const fsa_image_data d;
  ltl::nn::resnet<float> model({.depth = 10, .num_classes = 3, .seed = 5});
  const auto bank = la::build_feature_bank(model, d.train_src, "stage4", {.batch_size = 6});
  const std::vector<index_t> counts{6, 4, 2};
  const std::vector<double> dcounts{6, 4, 2};
  const auto p1 = ltl::eval::evaluate(model, d.test_src, dcounts);
  const auto phase1 = ltl_test::state_values(model);
  // h_r 0.6: head {0, 1} (class 0 alone holds 6 of 12 images, short of 60 %), tail {2}.
  const la::fsa_grid grid{.h_r = {0.6}, .n_a = {0, 1}, .n_f = {1}, .iterations = 3, .lr = 0.05, .batch = 8,
                          .seed = 2, .eval_workers = 1};
  const auto res = la::fsa_grid_search(model, bank, counts, &d.test_src, d.test_src, grid);
  REQUIRE(res.configs.size() == 2);
  REQUIRE(res.configs[0].split.tail == std::vector<index_t>{2});
  // Phase I from the cached pooled rows = the model on the decoded images, bit for bit.
  REQUIRE(res.phase1_test.loss == p1.loss);
  REQUIRE(res.phase1_test.confusion == p1.confusion);
  REQUIRE(res.selected.has_value());
  // The model holds the selected configuration's classifier; the backbone is untouched.
  const auto now = ltl_test::state_values(model);
  for (auto& [n, v] : phase1)
    if (n.rfind("fc.", 0) != 0) REQUIRE(now.at(n) == v);
  const auto again = ltl::eval::evaluate(model, d.test_src, dcounts);
  REQUIRE(again.loss == res.configs[*res.selected].test.loss);
}

TEST_CASE("FSA on encoded images: a streamed bank gives the resident bank's batches", "[augment][image]") {
  const fsa_image_data d;
  ltl::nn::resnet<float> model({.depth = 10, .num_classes = 3, .seed = 5});
  using streamed = la::streamed_bank<float, ltl::cpu::device, ld::image_pipeline<float>>;
  const auto resident = la::build_feature_bank(model, d.train_src, "stage4", {.batch_size = 5});
  // The same pass (batches of 5): the pooled features and class scores are the resident bank's,
  // bit for bit (the confusing classes must not depend on the kind of bank).
  const streamed bank(model, d.train_src, "stage4", 1.0, {.batch_size = 5, .workers = 1});
  REQUIRE(bank.size() == 12);
  REQUIRE(bank.labels == resident.labels);
  REQUIRE(bank.by_class == resident.by_class);
  REQUIRE((bank.channels == 512 && bank.height == 2 && bank.width == 2));
  REQUIRE(bank.pooled.to_vector() == resident.pooled.to_vector());
  const auto scores = bank.class_scores(1.0), expected = resident.class_scores(1.0);
  REQUIRE(scores.to_vector() == expected.to_vector());
  REQUIRE_THROWS_AS(bank.class_scores(2.0), ltl::value_error);  // the logits are not kept

  // Maps are readable once prepared, and only the last batch's.
  REQUIRE_THROWS_AS(bank.vector(3, 0), ltl::value_error);
  const index_t some[] = {11, 3, 3};
  bank.prepare(some);
  for (index_t i : {3, 11})
    for (index_t p = 0; p < 4; ++p) {
      REQUIRE(bank.cam_at(i, p) == Approx(resident.cam_at(i, p)).margin(1e-5));
      REQUIRE(bank.is_nonzero(i, p) == resident.is_nonzero(i, p));
      for (index_t k = 0; k < 512; ++k) REQUIRE(bank.vector(i, p)[k] == Approx(resident.vector(i, p)[k]).margin(1e-5));
    }
  const index_t other[] = {0};
  bank.prepare(other);
  REQUIRE_THROWS_AS(bank.cam_at(3, 0), ltl::value_error);

  // The same generator on either bank draws the same batches.
  const std::vector<index_t> counts{6, 4, 2};
  const auto split = la::split_head_tail(counts, 0.6);
  const auto conf = la::confusing_classes(expected, split.tail, 1, std::vector<bool>{true, true, true});
  const la::fsa_options o{.tau_s = 0.5, .tau_g = 0.5, .tail_per_batch = 2, .augment_per_tail = 1, .seed = 2};
  la::fsa_generator<float> from_resident(resident, split, conf, o);
  la::fsa_generator<float, streamed> from_streamed(bank, split, conf, o);
  for (int t = 0; t < 4; ++t) {
    const auto a = from_resident.next(), b = from_streamed.next();
    REQUIRE(a.role == b.role);
    REQUIRE(a.source == b.source);
    REQUIRE(a.partner == b.partner);
    REQUIRE((a.empty_specific == b.empty_specific && a.empty_generic == b.empty_generic));
    REQUIRE(a.labels.to_vector() == b.labels.to_vector());
    REQUIRE(a.x.sizes() == b.x.sizes());
    for (index_t k = 0; k < a.x.numel(); ++k) REQUIRE(a.x.data()[k] == Approx(b.x.data()[k]).margin(1e-5));
  }

  // The grid on a streamed bank: the resident bank's outcome (fine-tuning on the same batches).
  const std::vector<double> dcounts{6, 4, 2};
  const la::fsa_grid grid{.h_r = {0.6}, .n_a = {1}, .n_f = {1}, .iterations = 3, .lr = 0.05, .batch = 8, .seed = 2};
  ltl::nn::resnet<float> twin({.depth = 10, .num_classes = 3, .seed = 5});  // the phase-I weights again
  const auto by_streaming = la::fsa_grid_search(model, bank, counts, &d.test_src, d.test_src, grid);
  const auto by_resident = la::fsa_grid_search(twin, resident, counts, &d.test_src, d.test_src, grid);
  REQUIRE(by_streaming.configs.size() == 1);
  REQUIRE(by_streaming.configs[0].finetune.last_loss == Approx(by_resident.configs[0].finetune.last_loss).epsilon(1e-4));
  REQUIRE(by_streaming.configs[0].test.loss == Approx(by_resident.configs[0].test.loss).epsilon(1e-4));

  // Only the last feature map streams: an earlier point fine-tunes the layers of the CAM.
  REQUIRE_THROWS_AS(streamed(model, d.train_src, "stage3", 1.0), ltl::value_error);
}
