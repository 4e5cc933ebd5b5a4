// train::trainer over a batch source (train/training_source.hpp): data::image_pipeline on a tiny
// generated JPEG set trains, evaluates and resumes bit for bit; rank_slices cut every global
// batch into slices that put together are the single-process batch; the training_source concept
// and its archetype.
#include <catch2/catch.hpp>

#include <ltlearn/data/image/encode.hpp>
#include <ltlearn/data/image/encoded_dataset.hpp>
#include <ltlearn/data/image/pipeline.hpp>
#include <ltlearn/losses/policies.hpp>
#include <ltlearn/mixing/policies.hpp>
#include <ltlearn/nn/models/resnet_cifar.hpp>
#include <ltlearn/optim/schedule.hpp>
#include <ltlearn/sampling/samplers.hpp>
#include <ltlearn/train/evaluate.hpp>
#include <ltlearn/train/trainer.hpp>
#include <ltlearn/train/training_source.hpp>

#include "support/module_state.hpp"
#include "support/temp_dir.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace ld = ltl::data;
using ltl::index_t;
using ltl_test::flat_state;

namespace {

std::filesystem::path fresh_dir(const std::string& name) { return ltl_test::scratch_dir("bsrc_" + name); }

/// 3 classes with 9, 5 and 3 JPEGs of varied sizes (class-coloured with noise) under `dir`.
ld::encoded_dataset tiny_jpeg_set(const std::filesystem::path& dir) {
  ltl::rng g(5);
  std::vector<ld::encoded_item> items;
  std::vector<std::int64_t> labels;
  const int per_class[3] = {9, 5, 3};
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < per_class[c]; ++i) {
      const index_t h = 18 + (5 * i + 3 * c) % 13, w = 20 + (7 * i + c) % 17;
      std::vector<std::uint8_t> px(static_cast<std::size_t>(h * w * 3));
      for (std::size_t k = 0; k < px.size(); ++k)
        px[k] = static_cast<std::uint8_t>(40 + 60 * ((static_cast<int>(k % 3) + c) % 3) + 50 * g.uniform());
      const auto bytes = ld::encode_jpeg(px, h, w, {.quality = 90});
      const std::string name = fmt::format("c{}_{}.jpg", c, i);
      std::ofstream(dir / name, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                                       static_cast<std::streamsize>(bytes.size()));
      items.push_back({.path = name});
      labels.push_back(c);
    }
  return {"tiny", dir, std::move(items), std::move(labels), 3};
}


std::vector<nlohmann::json> read_log(const std::filesystem::path& f) {
  std::vector<nlohmann::json> out;
  std::ifstream in(f);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(nlohmann::json::parse(l));
  return out;
}

const ld::sample_transform train_tf = ld::imagenet_train_transform(16);
const ld::sample_transform eval_tf = ld::imagenet_eval_transform(18, 16);

// ---- train::training_source<S, T>: size, num_classes, image_shape, class_counts, content_hash,
// and make_batch (a batch source). Drop = k removes requirement k.
template <unsigned Drop, unsigned K>
concept keep = Drop != K;
template <unsigned Drop = 0>
struct source_archetype {
  [[nodiscard]] ld::batch<float> make_batch(std::span<const index_t> idx, index_t, index_t, std::uint64_t) const
    requires keep<Drop, 1>
  {
    const auto n = static_cast<index_t>(idx.size());
    return {ltl::tensor<float>(ltl::shape{n, 1, 1, 1}), ltl::tensor<std::int64_t>(ltl::shape{n})};
  }
  [[nodiscard]] index_t size() const requires keep<Drop, 2> { return 4; }
  [[nodiscard]] index_t num_classes() const requires keep<Drop, 3> { return 2; }
  [[nodiscard]] ltl::shape image_shape() const requires keep<Drop, 4> { return {1, 1, 1}; }
  [[nodiscard]] std::vector<index_t> class_counts() const requires keep<Drop, 5> { return {3, 1}; }
  [[nodiscard]] std::uint64_t content_hash() const requires keep<Drop, 6> { return 7; }
};
static_assert(ltl::train::training_source<source_archetype<>, float>, "the archetype must model training_source");
static_assert(!ltl::train::training_source<source_archetype<1>, float>, "training_source without make_batch");
static_assert(!ltl::train::training_source<source_archetype<2>, float>, "training_source without size()");
static_assert(!ltl::train::training_source<source_archetype<3>, float>, "training_source without num_classes()");
static_assert(!ltl::train::training_source<source_archetype<4>, float>, "training_source without image_shape()");
static_assert(!ltl::train::training_source<source_archetype<5>, float>, "training_source without class_counts()");
static_assert(!ltl::train::training_source<source_archetype<6>, float>, "training_source without content_hash()");
static_assert(!ltl::train::training_source<source_archetype<>, double>, "a float source is not a double source");
static_assert(ltl::train::training_source<ld::image_pipeline<float>, float>);
static_assert(ltl::train::training_source<ld::image_dataset, float>);
static_assert(ltl::data::batch_source<ltl::train::rank_slices<float, ld::image_pipeline<float>>, float>);
static_assert(ltl::eval::pass_source<ld::image_pipeline<float>, float>);

}  // namespace

TEST_CASE("rank slices of a batch source put together are the global batch, bit for bit", "[train][batch_source]") {
  const auto dir = fresh_dir("slices");
  const auto ds = tiny_jpeg_set(dir);
  REQUIRE(ds.size() == 17);
  const ld::image_pipeline<float> src(ds, {.transform = train_tf});
  const auto y = ds.labels();
  const auto order = ltl::sampling::power_sampler(y, 3, 0.5, 4).epoch_indices(1);
  for (const index_t B : {6, 4}) {  // 17 = 2·6 + 5 and 4·4 + 1 (rank 0's last slice is empty)
    INFO("global batch " << B);
    const ld::loader<float, ld::image_pipeline<float>> whole(src, {.batch_size = B, .workers = 0, .seed = 9});
    const ltl::train::rank_slices<float, ld::image_pipeline<float>> r0(src, 0, 2), r1(src, 1, 2);
    const ld::loader<float, ltl::train::rank_slices<float, ld::image_pipeline<float>>> l0(
        r0, {.batch_size = B, .workers = 2, .seed = 9}),
        l1(r1, {.batch_size = B, .workers = 0, .seed = 9});
    auto rw = whole.run(1, order);
    auto run0 = l0.run(1, order), run1 = l1.run(1, order);
    index_t steps = 0, empty = 0;
    while (auto g = rw->next()) {
      auto a = run0->next(), b = run1->next();
      REQUIRE(a);
      REQUIRE(b);  // every rank takes every step
      const index_t m = g->labels.numel();
      REQUIRE(a->labels.numel() == m / 2);  // dist::rank_slice: [0, ⌊m/2⌋), [⌊m/2⌋, m)
      REQUIRE(b->labels.numel() == m - m / 2);
      empty += a->labels.numel() == 0;
      auto labels = a->labels.to_vector(), more = b->labels.to_vector();
      labels.insert(labels.end(), more.begin(), more.end());
      auto images = a->images.to_vector(), more_images = b->images.to_vector();
      images.insert(images.end(), more_images.begin(), more_images.end());
      REQUIRE(labels == g->labels.to_vector());
      REQUIRE(images == g->images.to_vector());
      ++steps;
    }
    REQUIRE_FALSE(run0->next());
    REQUIRE_FALSE(run1->next());
    REQUIRE(steps == ltl::dist::global_steps(17, B));
    REQUIRE(empty == (B == 4 ? 1 : 0));
  }
  // World 1 is the source itself.
  const ltl::train::rank_slices<float, ld::image_pipeline<float>> one(src, 0, 1);
  const std::vector<index_t> idx{3, 16, 0};
  REQUIRE(one.make_batch(idx, 2, 5, 1).images.to_vector() == src.make_batch(idx, 2, 5, 1).images.to_vector());
  REQUIRE_THROWS_AS((ltl::train::rank_slices<float, ld::image_pipeline<float>>(src, 2, 2)), ltl::value_error);
  std::filesystem::remove_all(dir);
}

TEST_CASE("the trainer over an image pipeline trains, evaluates and resumes bit for bit", "[train][batch_source]") {
  const auto data_dir = fresh_dir("data");
  const auto ds = tiny_jpeg_set(data_dir);
  const ld::image_pipeline<float> train_src(ds, {.transform = train_tf});
  const ld::image_pipeline<float> eval_src(ds, {.transform = eval_tf});
  const auto y = ds.labels();
  const std::vector<double> counts{9, 5, 3};
  auto run = [&](const std::filesystem::path& dir, index_t stop, bool resume) {
    ltl::nn::resnet_cifar<float> m({.depth = 8, .num_classes = 3, .in_channels = 3, .width = 4, .seed = 11});
    const auto init = flat_state(m);
    ltl::train::trainer tr(m, train_src,
                           {.epochs = 3, .batch_size = 6, .seed = 4, .out_dir = dir, .stop_after_steps = stop,
                            .loader_workers = 2, .progress = false, .print_epochs = false, .eval_batch_size = 5,
                            .test_every = 2},
                           ltl::sampling::power_sampler(y, 3, 0.5, 4),
                           ltl::losses::compose(ltl::losses::ldam{}, ltl::losses::drw(1)),
                           ltl::mixing::mixup{.alpha = 1.0}, ltl::optim::make_step_recipe(0.05, 3, 1, 2, 3));
    static_assert(std::is_same_v<decltype(tr), ltl::train::trainer<float, ltl::sampling::power_sampler,
                                                                   decltype(ltl::losses::compose(ltl::losses::ldam{},
                                                                                                 ltl::losses::drw(1))),
                                                                   ltl::mixing::mixup,
                                                                   decltype(ltl::optim::make_step_recipe(0.05, 3, 1, 2, 3)),
                                                                   ltl::cpu::device, ld::image_pipeline<float>>>);
    REQUIRE(tr.class_counts() == counts);
    tr.set_eval_sets(&eval_src, &eval_src);
    if (resume) tr.resume(dir / "checkpoint.safetensors");
    const auto summaries = tr.fit();
    REQUIRE(flat_state(m) != init);
    return std::tuple{flat_state(m), tr.state().iteration, summaries};
  };
  const auto d1 = fresh_dir("full"), d2 = fresh_dir("part");
  const auto [full, steps, sums] = run(d1, -1, false);
  REQUIRE(steps == 9);  // 3 epochs of ⌈17 / 6⌉ steps
  REQUIRE(sums.size() == 3);
  // Validation every epoch, test every second epoch and after the last, each over all 17 images.
  REQUIRE(sums[0].val);
  REQUIRE_FALSE(sums[0].test);
  REQUIRE(sums[1].test);
  REQUIRE(sums[2].test);
  REQUIRE(sums[2].test->n == 17);
  REQUIRE(sums[2].test->confusion == sums[2].val->confusion);

  const auto [partial, at, none] = run(d2, 4, false);  // "killed" after 4 steps, mid-epoch 1
  REQUIRE(at == 4);
  REQUIRE(none.size() == 1);
  REQUIRE(partial != full);
  const auto [resumed, end, rest] = run(d2, -1, true);
  REQUIRE(end == steps);
  REQUIRE(resumed == full);
  REQUIRE(rest.size() == 2);
  REQUIRE(rest.back().test->confusion == sums.back().test->confusion);
  REQUIRE(rest.back().test->loss == sums.back().test->loss);
  const auto log_full = read_log(d1 / "log.jsonl"), log_resumed = read_log(d2 / "log.jsonl");
  REQUIRE(log_full.size() == 3);
  REQUIRE(log_resumed.size() == 3);
  for (std::size_t e = 0; e < 3; ++e) {
    INFO("epoch " << e);
    REQUIRE(log_resumed[e]["train_loss"].get<double>() == log_full[e]["train_loss"].get<double>());
    REQUIRE(log_resumed[e]["train_acc"].get<double>() == log_full[e]["train_acc"].get<double>());
  }
  // Another training transform is another experiment only through the caller's run_config; another
  // item selection is refused by the fingerprint's data hash.
  {
    const auto fewer = ds.subset(std::vector<index_t>{0, 1, 2, 9, 10, 14, 15});
    const ld::image_pipeline<float> fewer_src(fewer, {.transform = train_tf});
    ltl::nn::resnet_cifar<float> m({.depth = 8, .num_classes = 3, .in_channels = 3, .width = 4, .seed = 11});
    const auto fy = fewer.labels();
    ltl::train::trainer tr(m, fewer_src, {.epochs = 3, .batch_size = 6, .seed = 4, .progress = false},
                           ltl::sampling::power_sampler(fy, 3, 0.5, 4),
                           ltl::losses::compose(ltl::losses::ldam{}, ltl::losses::drw(1)), ltl::mixing::mixup{.alpha = 1.0},
                           ltl::optim::make_step_recipe(0.05, 3, 1, 2, 3));
    REQUIRE_THROWS_WITH(tr.resume(d1 / "checkpoint.safetensors"), Catch::Contains("train_data"));
  }
  std::filesystem::remove_all(d1);
  std::filesystem::remove_all(d2);
  std::filesystem::remove_all(data_dir);
}

TEST_CASE("evaluation over a batch source counts as the model's own predictions, for any batching", "[train][batch_source]") {
  const auto dir = fresh_dir("eval");
  const auto ds = tiny_jpeg_set(dir);
  const ld::image_pipeline<float> src(ds, {.transform = eval_tf});
  ltl::nn::resnet_cifar<float> m({.depth = 8, .num_classes = 3, .in_channels = 3, .width = 4, .seed = 3});
  const std::vector<double> counts{9, 5, 3};
  const auto r = ltl::train::evaluate(m, src, counts, {.batch_size = 5, .workers = 2});
  const auto again = ltl::train::evaluate(m, src, counts, {.batch_size = 17});
  REQUIRE(r.n == 17);
  REQUIRE(r.confusion == again.confusion);
  // The oracle: the whole set in one batch in eval mode, predictions counted by hand.
  std::vector<index_t> all(17);
  std::iota(all.begin(), all.end(), index_t{0});
  const auto b = src.make_batch(all, 0, 0, 0);
  m.eval();
  const auto z = m.forward(ltl::variable<float>(b.images)).value().to_vector();
  m.train();
  std::vector<index_t> confusion(9, 0);
  for (index_t i = 0; i < 17; ++i) {
    const float* row = z.data() + 3 * i;
    const auto pred = std::max_element(row, row + 3) - row;
    ++confusion[static_cast<std::size_t>(b.labels.data()[i] * 3 + pred)];
  }
  REQUIRE(r.confusion == confusion);
  // A shard is a range of the pass: the two halves' batches are the whole pass's.
  index_t seen = 0;
  for (const auto& [lo, hi] : {std::pair<index_t, index_t>{0, 8}, {8, 17}})
    ltl::eval::run_batches(
        m, src,
        [&](const ltl::eval::pass_batch<float, ltl::cpu::device>& pb) {
          REQUIRE(pb.first == seen);
          std::vector<index_t> idx(static_cast<std::size_t>(pb.size()));
          std::iota(idx.begin(), idx.end(), pb.first);
          REQUIRE(pb.images.to_vector() == src.make_batch(idx, 0, 0, 0).images.to_vector());
          seen += pb.size();
        },
        {.batch_size = 3, .begin = lo, .end = hi, .workers = 1});
  REQUIRE(seen == 17);
  std::filesystem::remove_all(dir);
}
