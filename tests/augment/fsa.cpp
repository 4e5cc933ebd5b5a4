// Feature space augmentation (Chu et al., ECCV 2020; SPEC §10): CAMs, masks, head/tail split,
// confusing classes, batch generation and the phase-II fine-tuning loop.
#include <catch2/catch.hpp>
#include <ltlearn/augment/cam.hpp>
#include <ltlearn/augment/confusion.hpp>
#include <ltlearn/augment/feature_bank.hpp>
#include <ltlearn/augment/finetune.hpp>
#include <ltlearn/augment/fsa.hpp>
#include <ltlearn/augment/fsa_grid.hpp>
#include <ltlearn/augment/head_tail.hpp>
#include <ltlearn/nn/models/resnet_cifar.hpp>
#include <ltlearn/ops/conv.hpp>

#include "support/module_state.hpp"
#include "support/test_aliases.hpp"

#include <cmath>
#include <map>
#include <set>

namespace la = ltl::augment;
using namespace ltl_test;  // test_aliases.hpp, module_state.hpp

namespace {

template <class T>
ltl::tensor<T> random_tensor(const ltl::shape& s, ltl::rng& g, double lo = -1, double hi = 1) {
  ltl::tensor<T> t(s);
  for (index_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<T>(g.uniform(lo, hi));
  return t;
}

// Spatial mean of one map [K, H, W] → K values.
std::vector<double> spatial_mean(const TD& map) {
  const index_t K = map.size(0), L = map.size(1) * map.size(2);
  std::vector<double> m(static_cast<std::size_t>(K), 0.0);
  for (index_t k = 0; k < K; ++k) {
    for (index_t p = 0; p < L; ++p) m[static_cast<std::size_t>(k)] += map.data()[k * L + p];
    m[static_cast<std::size_t>(k)] /= static_cast<double>(L);
  }
  return m;
}

// A bank of 13 samples, 4 classes with counts 6, 4, 2, 1, K = 3, 2×2 maps of positive values,
// CAMs from random classifier weights.
la::feature_bank<double> small_bank(std::uint64_t seed = 7) {
  ltl::rng g(seed);
  std::vector<std::int64_t> y;
  for (std::int64_t c : {0, 1, 2, 3})
    for (int i = 0; i < (c == 0 ? 6 : c == 1 ? 4 : c == 2 ? 2 : 1); ++i) y.push_back(c);
  const auto N = static_cast<index_t>(y.size());
  auto maps = random_tensor<double>({N, 3, 2, 2}, g, 0.1, 1.0);
  auto w = random_tensor<double>({4, 3}, g);
  auto cam = la::normalize_cam(la::true_class_cam(maps, w, y));
  return la::make_feature_bank(maps, cam, y, 4);
}

std::vector<std::vector<index_t>> small_confusing() { return {{}, {}, {0, 1}, {0, 2}}; }

/// 30 synthetic 8×8 one-channel images of three classes (20, 7, 3) whose brightness grows with
/// the class, with noise from ltl::rng(seed).
ltl::data::image_dataset brightness_images(std::uint64_t seed) {
  ltl::rng g(seed);
  std::vector<std::uint8_t> px;
  std::vector<std::int64_t> y;
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < (c == 0 ? 20 : c == 1 ? 7 : 3); ++i) {
      y.push_back(c);
      for (int p = 0; p < 64; ++p) px.push_back(static_cast<std::uint8_t>(40 * c + g.below(80)));
    }
  return ltl::data::image_dataset("synthetic", ltl::shape{1, 8, 8}, std::move(px), std::move(y), 3);
}

}  // namespace

TEST_CASE("CAM equals a 1x1 convolution by the classifier weights", "[augment]") {
  ltl::rng g(1);
  auto f = random_tensor<double>({2, 5, 3, 4}, g);
  auto w = random_tensor<double>({3, 5}, g);
  auto cams = la::class_activation_maps(f, w);
  REQUIRE(cams.sizes() == ltl::shape{2, 3, 3, 4});
  auto oracle = ltl::conv2d(ltl::variable<double>(f), ltl::variable<double>(w.reshape({3, 5, 1, 1}))).value();
  REQUIRE(oracle.sizes() == cams.sizes());
  for (index_t i = 0; i < cams.numel(); ++i) REQUIRE(cams.data()[i] == Approx(oracle.data()[i]).margin(1e-12));

  const std::vector<std::int64_t> y{2, 0};
  auto own = la::true_class_cam(f, w, y);
  REQUIRE(own.sizes() == ltl::shape{2, 3, 4});
  for (index_t n = 0; n < 2; ++n)
    for (index_t p = 0; p < 12; ++p)
      REQUIRE(own.data()[n * 12 + p] == Approx(oracle.data()[(n * 3 + y[static_cast<std::size_t>(n)]) * 12 + p]));

  // Hand-computed: channels (1, 2) and (3, 4) over two locations, w = (2, 1) → (5, 8).
  auto m = la::class_activation_maps(TD::from({1, 2, 1, 2}, {1, 2, 3, 4}), TD::from({1, 2}, {2, 1}));
  REQUIRE(m.to_vector() == std::vector<double>{5, 8});

  REQUIRE_THROWS_AS(la::class_activation_maps(f, TD::zeros({3, 4})), ltl::shape_error);
  REQUIRE_THROWS_AS(la::true_class_cam(f, w, std::vector<std::int64_t>{0}), ltl::shape_error);
  REQUIRE_THROWS_AS(la::true_class_cam(f, w, std::vector<std::int64_t>{0, 3}), ltl::value_error);
}

TEST_CASE("CAM normalisation, thresholds, masks and resize", "[augment]") {
  auto n = la::normalize_cam(TD::from({2, 1, 4}, {-2, 0, 2, 6, 3, 3, 3, 3}));
  REQUIRE(n.to_vector() == std::vector<double>{0, 0.25, 0.5, 1, 0, 0, 0, 0});  // constant map → zeros

  auto s = la::specific_mask(n, 0.5);  // M ≥ τ_s: equality counts as specific
  auto gm = la::generic_mask(n, 0.5);  // M < τ_g: equality is not generic
  REQUIRE(s.to_vector() == std::vector<double>{0, 0, 1, 1, 0, 0, 0, 0});
  REQUIRE(gm.to_vector() == std::vector<double>{1, 1, 0, 0, 1, 1, 1, 1});
  REQUIRE(la::specific_mask(n, 0.0).to_vector() == std::vector<double>(8, 1.0));
  REQUIRE(la::generic_mask(n, 1.0).to_vector() == std::vector<double>{1, 1, 1, 0, 1, 1, 1, 1});
  REQUIRE_THROWS_AS(la::specific_mask(n, 1.5), ltl::value_error);
  REQUIRE_THROWS_AS(la::generic_mask(n, -0.1), ltl::value_error);

  // F ⊙ M^s with a mask broadcast over channels.
  auto f = TD::from({1, 2, 1, 2}, {1, 2, 3, 4});
  auto masked = la::apply_mask(f, TD::from({1, 1, 2}, {0, 1}));
  REQUIRE(masked.to_vector() == std::vector<double>{0, 2, 0, 4});
  REQUIRE_THROWS_AS(la::apply_mask(f, TD::from({1, 2, 1}, {0, 1})), ltl::shape_error);

  auto r = la::resize_nearest(TD::from({1, 2, 2}, {1, 2, 3, 4}), 4, 4);
  REQUIRE(r.to_vector() == std::vector<double>{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4});
}

TEST_CASE("head/tail split at the cumulative share h_r", "[augment]") {
  const std::vector<index_t> counts{50, 30, 10, 5, 5};
  auto s = la::split_head_tail(counts, 0.8);  // 50 + 30 = 80 of 100 meets 0.8 exactly
  REQUIRE(s.head == std::vector<index_t>{0, 1});
  REQUIRE(s.tail == std::vector<index_t>{2, 3, 4});
  REQUIRE(s.head_share == Approx(0.8));
  REQUIRE(s.is_head == std::vector<bool>{true, true, false, false, false});
  REQUIRE(s.is_tail(3));
  REQUIRE_FALSE(s.is_tail(1));
  REQUIRE(la::split_head_tail(counts, 0.81).head == std::vector<index_t>{0, 1, 2});
  REQUIRE(la::split_head_tail(counts, 0.9).head == std::vector<index_t>{0, 1, 2});  // 90/100 despite 0.9·100 rounding
  REQUIRE(la::split_head_tail(counts, 0.9000001).head == std::vector<index_t>{0, 1, 2, 3});
  // 0.55·100 = 55.00000000000001 in binary: 55 of 100 images must still meet h_r = 0.55.
  REQUIRE(la::split_head_tail(std::vector<index_t>{30, 25, 20, 15, 10}, 0.55).head == std::vector<index_t>{0, 1});
  REQUIRE(la::split_head_tail(counts, 0.1).head == std::vector<index_t>{0});  // never empty
  auto all = la::split_head_tail(counts, 1.0);
  REQUIRE(all.head.size() == 5);
  REQUIRE(all.tail.empty());

  // Unsorted counts, ties kept in index order, an empty class is neither head nor tail.
  auto u = la::split_head_tail(std::vector<index_t>{5, 50, 0, 30, 10, 5}, 0.8);
  REQUIRE(u.head == std::vector<index_t>{1, 3});
  REQUIRE(u.tail == std::vector<index_t>{4, 0, 5});
  REQUIRE(u.empty == std::vector<index_t>{2});

  REQUIRE(la::split_head_tail(std::vector<index_t>{7}, 0.9).head == std::vector<index_t>{0});
  REQUIRE_THROWS_AS(la::split_head_tail(counts, 0.0), ltl::value_error);
  REQUIRE_THROWS_AS(la::split_head_tail(counts, 1.01), ltl::value_error);
  REQUIRE_THROWS_AS(la::split_head_tail(std::vector<index_t>{3, -1}, 0.9), ltl::value_error);
  REQUIRE_THROWS_AS(la::split_head_tail(std::vector<index_t>{0, 0}, 0.9), ltl::value_error);
}

TEST_CASE("confusing classes from mean softmax scores", "[augment]") {
  // Class 0: logits (ln 3, 0) → (0.75, 0.25) and (0, 0) → (0.5, 0.5): mean (0.625, 0.375).
  // Class 1 has no sample: zero row. Scale 2 on (ln 3 / 2, 0) gives (0.75, 0.25) again.
  auto m = la::mean_class_scores(TD::from({2, 2}, {std::log(3.0), 0, 0, 0}), std::vector<std::int64_t>{0, 0});
  REQUIRE(m.to_vector()[0] == Approx(0.625));
  REQUIRE(m.to_vector()[1] == Approx(0.375));
  REQUIRE(m.to_vector()[2] == 0);
  REQUIRE(m.to_vector()[3] == 0);
  auto m2 = la::mean_class_scores(TF::from({1, 2}, {static_cast<float>(std::log(3.0) / 2), 0.f}),
                                  std::vector<std::int64_t>{1}, 2.0);
  REQUIRE(m2.to_vector()[2] == Approx(0.75).epsilon(1e-6));
  REQUIRE_THROWS_AS(la::mean_class_scores(TD::zeros({2, 2}), std::vector<std::int64_t>{0, 2}), ltl::value_error);

  // Row 3 scores itself highest; 0 and 2 tie (lower index first), then 1.
  auto scores = TD::from({4, 4}, {0.7, 0.1, 0.1, 0.1,  //
                                  0.2, 0.5, 0.2, 0.1,  //
                                  0.1, 0.2, 0.6, 0.1,  //
                                  0.2, 0.1, 0.2, 0.5});
  const std::vector<index_t> tail{2, 3};
  auto cc = la::confusing_classes(scores, tail, 2);
  REQUIRE(cc.size() == 4);
  REQUIRE(cc[0].empty());
  REQUIRE(cc[1].empty());
  REQUIRE(cc[2] == std::vector<index_t>{1, 0});
  REQUIRE(cc[3] == std::vector<index_t>{0, 2});
  REQUIRE(la::confusing_classes(scores, tail, 9)[3] == std::vector<index_t>{0, 2, 1});  // fewer than N_f exist
  // Candidates restricted to head classes {0, 1}.
  REQUIRE(la::confusing_classes(scores, tail, 2, {true, true, false, false})[3] == std::vector<index_t>{0, 1});
  REQUIRE_THROWS_AS(la::confusing_classes(scores, tail, 0), ltl::value_error);
  REQUIRE_THROWS_AS(la::confusing_classes(scores, std::vector<index_t>{4}, 1), ltl::value_error);
  REQUIRE_THROWS_AS(la::confusing_classes(scores, tail, 1, {true}), ltl::shape_error);
}

TEST_CASE("recipes draw only non-zero vectors; known pooled value", "[augment]") {
  // Two samples, K = 2, four locations. Tail sample 1 (class 1): locations 0 and 1 are specific
  // (CAM 1.0, 0.9) but 0 is a zero vector. Partner 0 (class 0): locations 1, 2, 3 are generic
  // (CAM 0.1, 0.3, 0.0) but 1 and 3 are zero vectors.
  const std::vector<double> tail_maps{/*k0*/ 0, 1, 3, 0, /*k1*/ 0, 2, 4, 0};
  const std::vector<double> part_maps{/*k0*/ 5, 0, 7, 0, /*k1*/ 6, 0, 8, 0};
  std::vector<double> maps(part_maps);
  maps.insert(maps.end(), tail_maps.begin(), tail_maps.end());
  auto bank = la::make_feature_bank(TD::from({2, 2, 2, 2}, maps),
                                    TD::from({2, 2, 2}, {1.0, 0.1, 0.3, 0.0, 1.0, 0.9, 0.2, 0.0}),
                                    std::vector<std::int64_t>{0, 1}, 2);
  REQUIRE(bank.nonzero == std::vector<std::uint8_t>{1, 0, 1, 0, 0, 1, 1, 0});
  la::head_tail_split split{.head = {0}, .tail = {1}, .empty = {}, .is_head = {true, false}, .head_share = 0.5};
  la::fsa_generator<double> gen(bank, split, {{}, {0}}, {.tau_s = 0.5, .tau_g = 0.5, .tail_per_batch = 1});
  REQUIRE(gen.specific_locations(1) == std::vector<index_t>{1});
  REQUIRE(gen.generic_locations(0) == std::vector<index_t>{2});
  // At the thresholds: CAM 0.9 ≥ τ_s = 0.9 is specific; CAM 0.3 < τ_g = 0.3 is not generic.
  la::fsa_generator<double> edge(bank, split, {{}, {0}}, {.tau_s = 0.9, .tau_g = 0.3, .tail_per_batch = 1});
  REQUIRE(edge.specific_locations(1) == std::vector<index_t>{1});
  REQUIRE(edge.generic_locations(0).empty());

  ltl::rng g(3);
  auto r = gen.make_recipe(1, 0, 0.5, g);
  REQUIRE(r.n_specific == 2);
  for (std::size_t p = 0; p < 4; ++p) {
    REQUIRE(r.sample[p] == (p < 2 ? 1 : 0));
    REQUIRE(r.location[p] == (p < 2 ? 1 : 2));
  }
  // (2·(1, 2) + 2·(7, 8)) / 4
  REQUIRE(gen.compose_pooled(r).to_vector() == std::vector<double>{4, 5});
  REQUIRE(spatial_mean(gen.compose_map(r)) == std::vector<double>{4, 5});
  REQUIRE(gen.make_recipe(1, 0, 0.0, g).n_specific == 0);
  REQUIRE(gen.make_recipe(1, 0, 1.0, g).location == std::vector<index_t>{1, 1, 1, 1});

  // A partner without a non-zero generic vector contributes zero vectors, and is counted.
  REQUIRE(gen.generic_locations(1) == std::vector<index_t>{2});  // CAM < 0.5 at 2 and 3; 3 is a zero vector
  la::fsa_generator<double> strict(bank, split, {{}, {0}}, {.tau_s = 0.5, .tau_g = 0.05, .tail_per_batch = 1});
  REQUIRE(strict.generic_locations(0).empty());  // only location 3 has CAM < 0.05, and it is zero
  auto z = strict.make_recipe(1, 0, 0.5, g);
  REQUIRE(z.empty_generic);
  REQUIRE_FALSE(z.empty_specific);
  REQUIRE(strict.compose_pooled(z).to_vector() == std::vector<double>{0.5, 1.0});  // 2·(1, 2) / 4
  REQUIRE_THROWS_AS(gen.make_recipe(1, 2, 0.5, g), ltl::value_error);
  REQUIRE_THROWS_AS(gen.make_recipe(1, 0, 1.5, g), ltl::value_error);
}

TEST_CASE("augmented batch size and composition", "[augment]") {
  auto bank = small_bank();
  const std::vector<index_t> counts{6, 4, 2, 1};
  auto split = la::split_head_tail(counts, 0.75);  // 10 of 13 ≥ 9.75: head {0, 1}, tail {2, 3}
  REQUIRE(split.head == std::vector<index_t>{0, 1});
  REQUIRE(split.tail == std::vector<index_t>{2, 3});
  const auto conf = small_confusing();
  la::fsa_generator<double> gen(bank, split, conf, {.tail_per_batch = 3, .augment_per_tail = 2, .seed = 5});
  REQUIRE(gen.batch_size() == 18);
  REQUIRE(gen.pooled_output());
  for (int rep = 0; rep < 20; ++rep) {
    auto b = gen.next();
    REQUIRE(b.x.sizes() == ltl::shape{18, 3});
    REQUIRE(b.labels.numel() == 18);
    std::map<la::fsa_role, int> n;
    for (std::size_t r = 0; r < 18; ++r) {
      ++n[b.role[r]];
      const auto y = b.labels.data()[r];
      const auto src = b.source[r];
      if (r < 9) {  // tail row followed by its two augmented rows
        REQUIRE(b.role[r] == (r % 3 == 0 ? la::fsa_role::tail : la::fsa_role::augmented));
        REQUIRE((y == 2 || y == 3));
        REQUIRE(bank.labels[static_cast<std::size_t>(src)] == y);
        if (r % 3 != 0) {
          REQUIRE(src == b.source[r - r % 3]);  // the augmented sample's tail sample
          REQUIRE(y == b.labels.data()[r - r % 3]);
          const auto u = bank.labels[static_cast<std::size_t>(b.partner[r])];
          const auto& cu = conf[static_cast<std::size_t>(y)];
          REQUIRE(std::find(cu.begin(), cu.end(), u) != cu.end());
        } else {
          REQUIRE(b.partner[r] == -1);
        }
      } else {
        REQUIRE(b.role[r] == la::fsa_role::head);
        REQUIRE((y == 0 || y == 1));
        REQUIRE(bank.labels[static_cast<std::size_t>(src)] == y);
      }
      if (b.role[r] != la::fsa_role::augmented)  // real rows are the pooled maps
        for (index_t k = 0; k < 3; ++k) REQUIRE(b.x.data()[r * 3 + k] == bank.pooled.data()[src * 3 + k]);
    }
    REQUIRE(n[la::fsa_role::tail] == 3);
    REQUIRE(n[la::fsa_role::augmented] == 6);
    REQUIRE(n[la::fsa_role::head] == 9);
  }
  // N_a = N_f: each confusing class once per tail sample.
  la::fsa_generator<double> once(bank, split, conf, {.tail_per_batch = 4, .augment_per_tail = 2, .seed = 1});
  auto b = once.next();
  for (std::size_t r = 0; r < 12; r += 3) {
    std::set<std::int64_t> us{bank.labels[static_cast<std::size_t>(b.partner[r + 1])],
                              bank.labels[static_cast<std::size_t>(b.partner[r + 2])]};
    REQUIRE(us.size() == 2);
  }
  // N_a = 0: the paper's "No Aug" balanced batches.
  la::fsa_generator<double> noaug(bank, split, conf, {.tail_per_batch = 5, .augment_per_tail = 0});
  auto b0 = noaug.next();
  REQUIRE(b0.labels.numel() == 10);
  REQUIRE(std::count(b0.role.begin(), b0.role.end(), la::fsa_role::tail) == 5);
  REQUIRE(std::count(b0.role.begin(), b0.role.end(), la::fsa_role::head) == 5);

  REQUIRE_THROWS_AS(la::fsa_generator<double>(bank, split, {{}, {}, {}, {0}}, {}), ltl::value_error);
  REQUIRE_THROWS_AS(la::fsa_generator<double>(bank, split, conf, {.tau_s = 2}), ltl::value_error);
  REQUIRE_THROWS_AS(la::fsa_generator<double>(bank, la::split_head_tail(counts, 1.0), conf, {}), ltl::value_error);
}

TEST_CASE("seeded batches are reproducible", "[augment]") {
  auto bank = small_bank();
  auto split = la::split_head_tail(std::vector<index_t>{6, 4, 2, 1}, 0.75);
  auto draw = [&](std::uint64_t seed) {
    la::fsa_generator<double> gen(bank, split, small_confusing(), {.tail_per_batch = 2, .seed = seed});
    std::vector<double> all;
    for (int i = 0; i < 3; ++i) {
      auto b = gen.next();
      auto x = b.x.to_vector();
      all.insert(all.end(), x.begin(), x.end());
      for (std::size_t r = 0; r < b.source.size(); ++r) {
        all.push_back(static_cast<double>(b.source[r]));
        all.push_back(static_cast<double>(b.partner[r]));
        all.push_back(static_cast<double>(b.labels.data()[r]));
      }
    }
    return all;
  };
  REQUIRE(draw(11) == draw(11));
  REQUIRE(draw(11) != draw(12));
}

TEST_CASE("the mean of the drawn vectors equals the pooled explicit map", "[augment]") {
  auto bank = small_bank(21);
  auto split = la::split_head_tail(std::vector<index_t>{6, 4, 2, 1}, 0.75);
  la::fsa_generator<double> pooled(bank, split, small_confusing(), {.tau_s = 0.3, .tau_g = 0.7, .seed = 9});
  la::fsa_generator<double> maps(bank, split, small_confusing(),
                                 {.tau_s = 0.3, .tau_g = 0.7, .explicit_maps = true, .seed = 9});
  REQUIRE_FALSE(maps.pooled_output());
  for (int i = 0; i < 5; ++i) {
    auto a = pooled.next(), b = maps.next();
    REQUIRE(b.x.sizes() == ltl::shape{a.labels.numel(), 3, 2, 2});
    REQUIRE(a.source == b.source);
    for (index_t r = 0; r < a.labels.numel(); ++r) {
      auto m = spatial_mean(b.x.select(0, r).contiguous());
      for (index_t k = 0; k < 3; ++k)
        REQUIRE(a.x.data()[r * 3 + k] == Approx(m[static_cast<std::size_t>(k)]).margin(1e-14));
    }
  }
  ltl::rng g(4);
  for (int i = 0; i < 50; ++i) {
    auto r = pooled.make_recipe(static_cast<index_t>(10 + i % 3), static_cast<index_t>(i % 10), g.uniform(), g);
    auto m = spatial_mean(pooled.compose_map(r));
    auto v = pooled.compose_pooled(r).to_vector();
    for (std::size_t k = 0; k < 3; ++k) REQUIRE(v[k] == Approx(m[k]).margin(1e-14));
  }
}

TEST_CASE("an earlier augmentation point keeps the partner's spatial layout", "[augment]") {
  // Same two samples as above, as maps before the last stage.
  auto bank = la::make_feature_bank(TD::from({2, 2, 2, 2}, {5, 0, 7, 0, 6, 0, 8, 0, 0, 1, 3, 0, 0, 2, 4, 0}),
                                    TD::from({2, 2, 2}, {1.0, 0.1, 0.3, 0.0, 1.0, 0.9, 0.2, 0.0}),
                                    std::vector<std::int64_t>{0, 1}, 2, /*last_map=*/false);
  la::head_tail_split split{.head = {0}, .tail = {1}, .empty = {}, .is_head = {true, false}, .head_share = 0.5};
  la::fsa_generator<double> gen(bank, split, {{}, {0}}, {.tail_per_batch = 1});
  REQUIRE_FALSE(gen.pooled_output());
  ltl::rng g(8);
  for (int i = 0; i < 20; ++i) {
    auto r = gen.make_recipe(1, 0, 0.5, g);  // two of u's three non-generic locations get c's vectors
    REQUIRE(r.sample[2] == 0);
    REQUIRE(r.location[2] == 2);  // u's generic vector stays in place
    index_t spec = 0;
    for (std::size_t p = 0; p < 4; ++p) {
      if (r.sample[p] == 1) {
        ++spec;
        REQUIRE(r.location[p] == 1);
      } else {
        REQUIRE(r.location[p] == 2);  // u's only non-zero generic vector, kept or drawn
      }
    }
    REQUIRE(spec == 2);
  }
  auto full = gen.make_recipe(1, 0, 1.0, g);
  REQUIRE(full.sample == std::vector<index_t>{1, 1, 1, 1});
  auto b = gen.next();
  REQUIRE(b.x.sizes() == ltl::shape{gen.batch_size(), 2, 2, 2});
}

TEST_CASE("feature bank from a model, and phase-II fine-tuning", "[augment]") {
  auto ds = brightness_images(2);
  ltl::nn::resnet_cifar<float> model({.depth = 8, .num_classes = 3, .in_channels = 1, .width = 4, .seed = 3});
  const ltl::data::normalize norm{{0.3}, {0.3}};
  auto bank = la::build_feature_bank(model, ds, norm, "stage3", 16);
  REQUIRE(bank.size() == 30);
  REQUIRE(bank.last_map);
  REQUIRE(bank.vectors.sizes() == ltl::shape{30, 4, 16});
  REQUIRE(bank.logits.sizes() == ltl::shape{30, 3});
  REQUIRE(model.is_training());  // mode restored
  {
    model.eval();
    ltl::no_grad_guard ng;
    std::vector<index_t> idx(30);
    std::iota(idx.begin(), idx.end(), index_t{0});
    auto bt = ltl::data::make_batch<float>(ds, std::span<const index_t>(idx), norm);
    auto f = model.features(ltl::variable<float>(bt.images)).value();
    auto z = model.forward(ltl::variable<float>(bt.images)).value();
    for (index_t i = 0; i < f.numel(); ++i) REQUIRE(bank.pooled.data()[i] == Approx(f.data()[i]).margin(1e-5));
    for (index_t i = 0; i < z.numel(); ++i) REQUIRE(bank.logits.data()[i] == Approx(z.data()[i]).margin(1e-5));
    auto cam = la::normalize_cam(la::true_class_cam(model.run(ltl::variable<float>(bt.images), -1, 3).value(),
                                                     la::classifier_weight<float>(model), ds.labels()));
    for (index_t i = 0; i < cam.numel(); ++i) REQUIRE(bank.cam.data()[i] == Approx(cam.data()[i]).margin(1e-5));
    model.train();
  }
  auto z2 = la::bank_logits(model, bank);
  for (index_t i = 0; i < z2.numel(); ++i) REQUIRE(z2.data()[i] == Approx(bank.logits.data()[i]).margin(1e-5));

  std::vector<index_t> counts{20, 7, 3};
  auto split = la::split_head_tail(counts, 0.6);  // head {0}, tail {1, 2}
  auto conf = la::confusing_classes(la::mean_class_scores(bank.logits, bank.labels), split.tail, 2);
  const auto before = state_values(model);
  la::fsa_generator<float> gen(bank, split, conf, {.tail_per_batch = 2, .augment_per_tail = 2, .seed = 1});
  index_t steps = 0;
  auto res = la::fsa_finetune(model, gen, {.iterations = 5, .lr = 0.05, .on_step = [&](index_t, double) { ++steps; }});
  REQUIRE(res.iterations == 5);
  REQUIRE(steps == 5);
  REQUIRE(res.trained == std::vector<std::string>{"fc.weight", "fc.bias"});
  REQUIRE(res.augmented_rows == 5 * 4);
  const auto after = state_values(model);
  for (auto& [n, v] : before) {
    if (n.rfind("fc.", 0) == 0) REQUIRE(after.at(n) != v);
    else REQUIRE(after.at(n) == v);  // backbone and batch-norm statistics untouched
  }
  for (auto& [n, p] : model.named_parameters()) REQUIRE(p.requires_grad());
  REQUIRE(model.is_training());

  // An earlier point: maps of stage2 [N, 8, 4, 4], the last-map CAM resized; stage3 is trained.
  auto bank2 = la::build_feature_bank(model, ds, norm, "stage2", 7);
  REQUIRE_FALSE(bank2.last_map);
  REQUIRE(bank2.vectors.sizes() == ltl::shape{30, 16, 8});
  auto z3 = la::bank_logits(model, bank2);
  auto z4 = la::bank_logits(model, bank);
  for (index_t i = 0; i < z3.numel(); ++i) REQUIRE(z3.data()[i] == Approx(z4.data()[i]).margin(1e-4));
  la::fsa_generator<float> gen2(bank2, split, conf, {.tail_per_batch = 1, .augment_per_tail = 1});
  auto res2 = la::fsa_finetune(model, gen2, {.iterations = 2, .lr = 0.05});
  REQUIRE(std::count_if(res2.trained.begin(), res2.trained.end(),
                        [](const std::string& n) { return n.rfind("stage3.", 0) == 0; }) > 0);
  REQUIRE(std::find(res2.trained.begin(), res2.trained.end(), "stage2.0.conv1.weight") == res2.trained.end());
  auto res3 = la::fsa_finetune(model, gen2, {.iterations = 1, .train_stages = false});
  REQUIRE(res3.trained == std::vector<std::string>{"fc.weight", "fc.bias"});
  REQUIRE_THROWS_AS(la::build_feature_bank(model, ds, norm, "pool"), ltl::value_error);
}

TEST_CASE("the phase-II grid: each configuration from the phase-I weights, held-out selection", "[augment]") {
  const auto ds = brightness_images(5);
  const auto val = ds.subset(std::vector<index_t>{0, 1, 2, 20, 21, 27, 28});
  ltl::nn::resnet_cifar<float> model({.depth = 8, .num_classes = 3, .in_channels = 1, .width = 4, .seed = 3});
  const ltl::data::normalize norm{{0.3}, {0.3}};
  const std::vector<index_t> counts{20, 7, 3};
  const std::vector<double> dcounts{20, 7, 3};
  const auto bank = la::build_feature_bank(model, ds, norm, "stage3", 16);
  const auto phase1 = state_values(model);
  const auto p1_test = ltl::eval::evaluate(model, ds, norm, dcounts);
  // h_r 1 has no tail class (skipped); 0.6 and 0.9 × N_a {0, 1}: four configurations.
  const la::fsa_grid grid{.h_r = {0.6, 1.0, 0.9}, .n_a = {0, 1}, .n_f = {1}, .iterations = 3, .lr = 0.05, .batch = 8,
                          .seed = 2};
  int skipped = 0, splits = 0;
  la::fsa_grid_hooks hooks;
  hooks.on_skip = [&](double hr, double, double, index_t, index_t) { skipped += hr == 1.0; };
  hooks.on_split = [&](double, index_t, const la::head_tail_split&, const auto&) { ++splits; };
  const auto res = la::fsa_grid_search(model, bank, counts, &val, ds, norm, grid, hooks);
  REQUIRE(skipped == 2);
  REQUIRE(splits == 3);
  REQUIRE(res.configs.size() == 4);
  REQUIRE(res.phase1_test.loss == p1_test.loss);  // cached pooled rows = the images, bit for bit
  REQUIRE(res.phase1_test.confusion == p1_test.confusion);
  REQUIRE(res.configs[1].h_r == 0.6);
  REQUIRE(res.configs[1].n_a == 1);
  REQUIRE(res.configs[2].split.tail == std::vector<index_t>{2});
  // Selection: metrics::held_out_selector on the held-out mean per-class accuracies.
  std::vector<double> scores;
  for (auto& r : res.configs) scores.push_back(r.val->mean_per_class);
  REQUIRE(res.selected == ltl::metrics::select_held_out(scores));
  // The model holds the selected configuration: its held-out report again.
  const auto now = ltl::eval::evaluate(model, val, norm, dcounts);
  REQUIRE(now.loss == res.configs[*res.selected].val->loss);
  // Configuration 1 by hand from the phase-I weights gives the same test report.
  ltl::nn::resnet_cifar<float> fresh({.depth = 8, .num_classes = 3, .in_channels = 1, .width = 4, .seed = 3});
  const auto split = la::split_head_tail(counts, 0.6);
  const auto conf = la::confusing_classes(la::mean_class_scores(bank.logits, bank.labels), split.tail, 1,
                                          std::vector<bool>{true, true, true});
  la::fsa_generator<float> gen(bank, split, conf, {.tail_per_batch = 2, .augment_per_tail = 1, .seed = 2});
  (void)la::fsa_finetune(fresh, gen, {.iterations = 3, .lr = 0.05});
  const auto by_hand = ltl::eval::evaluate(fresh, ds, norm, dcounts);
  REQUIRE(by_hand.loss == res.configs[1].test.loss);
  REQUIRE(by_hand.confusion == res.configs[1].test.confusion);
  REQUIRE(state_values(model) != phase1);
  // Without a held-out split a grid of several configurations selects none: the weights the
  // search started from stay.
  const auto start = state_values(model);
  const auto none = la::fsa_grid_search<float, ltl::cpu::device, ltl::data::image_dataset>(model, bank, counts, nullptr,
                                                                                          ds, norm, grid);
  REQUIRE_FALSE(none.selected.has_value());
  REQUIRE_FALSE(none.configs[0].val.has_value());
  REQUIRE(state_values(model) == start);
}
