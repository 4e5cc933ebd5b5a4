// Tests of data/long_tail.hpp (profiles, make_long_tailed, held_out_split) and data/hash.hpp
// (content hashes of datasets and selections).
#include <catch2/catch.hpp>
#include <ltlearn/data/hash.hpp>
#include <ltlearn/data/long_tail.hpp>

#include "support/synthetic_dataset.hpp"

#include <algorithm>
#include <set>
#include <string>
#include <vector>

namespace ld = ltl::data;
using ltl::index_t;
using ltl::shape;
using ltl_test::synthetic;

// ---------------------------------------------------------------- long-tailed construction

TEST_CASE("long-tailed profiles reproduce the SPEC §3 check values", "[data][lt]") {
  using v = std::vector<index_t>;
  const auto c10 = ld::exponential_profile(5000, 10, 100);
  REQUIRE(c10 == v{5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50});
  REQUIRE(ld::total_count(c10) == 12406);
  REQUIRE(ld::total_count(ld::exponential_profile(5000, 10, 50)) == 13996);
  REQUIRE(ld::total_count(ld::exponential_profile(5000, 10, 10)) == 20431);
  const auto c100 = ld::exponential_profile(500, 100, 100);
  REQUIRE(c100.size() == 100);
  REQUIRE(c100.front() == 500);
  REQUIRE(c100.back() == 5);
  REQUIRE(ld::total_count(c100) == 10847);
  const auto step = ld::step_profile(5000, 10, 100);
  REQUIRE(step == v{5000, 5000, 5000, 5000, 5000, 50, 50, 50, 50, 50});
  REQUIRE(ld::total_count(step) == 25250);
  const auto fm = ld::exponential_profile(6000, 10, 100);
  REQUIRE(fm == v{6000, 3596, 2156, 1292, 774, 464, 278, 166, 100, 60});
  REQUIRE(ld::total_count(fm) == 14886);

  REQUIRE(ld::step_profile(10, 5, 2) == v{10, 10, 5, 5, 5});  // ⌊C/2⌋ head classes for odd C
  REQUIRE(ld::exponential_profile(7, 1, 100) == v{7});
  REQUIRE(ld::exponential_profile(100, 4, 1) == v{100, 100, 100, 100});
  REQUIRE_THROWS_AS(ld::exponential_profile(100, 10, 0.5), ltl::value_error);
  REQUIRE_THROWS_AS(ld::exponential_profile(100, 0, 10), ltl::value_error);
  REQUIRE_THROWS_AS(ld::step_profile(-1, 10, 10), ltl::value_error);
}

TEST_CASE("make_long_tailed: per-class seeded selection, deterministic", "[data][lt]") {
  const auto ds = synthetic(10, 60);
  const auto counts = ld::exponential_profile(60, 10, 10);
  const auto a = ld::make_long_tailed(ds, counts, 0);
  const auto b = ld::make_long_tailed(ds, counts, 0);
  const auto c = ld::make_long_tailed(ds, counts, 1);
  REQUIRE(a.name() == "synthetic-lt");
  REQUIRE(a.size() == ld::total_count(counts));
  REQUIRE(a.class_counts() == counts);
  // Class-major, each image from its class, no repeats.
  std::set<index_t> seen;
  for (index_t i = 0; i < a.size(); ++i) {
    const index_t src = a.source_indices()[static_cast<std::size_t>(i)];
    REQUIRE(ds.label(src) == a.label(i));
    REQUIRE(a.image(i)[0] == src % 256);
    REQUIRE(seen.insert(src).second);
    if (i > 0) REQUIRE(a.label(i) >= a.label(i - 1));
  }
  // Same seed → identical; another seed → another selection of the same sizes.
  REQUIRE(std::equal(a.source_indices().begin(), a.source_indices().end(), b.source_indices().begin(),
                     b.source_indices().end()));
  REQUIRE(a.content_hash() == b.content_hash());
  REQUIRE(c.class_counts() == counts);
  REQUIRE_FALSE(std::equal(a.source_indices().begin(), a.source_indices().end(), c.source_indices().begin(),
                           c.source_indices().end()));
  REQUIRE(a.content_hash() != c.content_hash());
  // The selection of a class does not depend on the other classes' counts (per-class streams).
  auto counts2 = counts;
  counts2[0] = 1;
  const auto d = ld::make_long_tailed(ds, counts2, 0);
  REQUIRE(std::equal(a.source_indices().begin() + 60, a.source_indices().end(), d.source_indices().begin() + 1,
                     d.source_indices().end()));
  // Class 0 keeps a prefix of the same permutation.
  REQUIRE(d.source_indices()[0] == a.source_indices()[0]);

  auto too_many = counts;
  too_many[3] = 61;
  REQUIRE_THROWS_AS(ld::make_long_tailed(ds, too_many, 0), ltl::value_error);
  REQUIRE_THROWS_AS(ld::make_long_tailed(ds, std::vector<index_t>{1, 2}, 0), ltl::value_error);
}

TEST_CASE("make_long_tailed on CIFAR-sized label sets gives the SPEC totals", "[data][lt]") {
  const auto c10 = synthetic(10, 5000, "cifar10-like");
  REQUIRE(ld::make_long_tailed(c10, ld::exponential_profile(5000, 10, 100), 0).size() == 12406);
  REQUIRE(ld::make_long_tailed(c10, ld::step_profile(5000, 10, 100), 0).size() == 25250);
  const auto c100 = synthetic(100, 500, "cifar100-like");
  const auto lt = ld::make_long_tailed(c100, ld::exponential_profile(500, 100, 100), 0);
  REQUIRE(lt.size() == 10847);
  REQUIRE(lt.class_counts() == ld::exponential_profile(500, 100, 100));
}

TEST_CASE("held_out_split: balanced, disjoint, skips small classes", "[data][lt]") {
  const auto ds = synthetic(5, 20);
  // Classes with 20, 9, 4, 3, 0 images.
  const auto lt = ld::make_long_tailed(ds, std::vector<index_t>{20, 9, 4, 3, 0}, 7);
  const auto s = ld::held_out_split(lt, 3, 11);
  REQUIRE(s.skipped_classes == std::vector<index_t>{3, 4});
  REQUIRE(s.val.class_counts() == std::vector<index_t>{3, 3, 3, 0, 0});
  REQUIRE(s.train.class_counts() == std::vector<index_t>{17, 6, 1, 3, 0});
  REQUIRE(s.train.size() + s.val.size() == lt.size());
  REQUIRE(s.val.name() == lt.name() + "-val");
  std::set<index_t> tr(s.train.source_indices().begin(), s.train.source_indices().end());
  std::set<index_t> va(s.val.source_indices().begin(), s.val.source_indices().end());
  std::set<index_t> all(lt.source_indices().begin(), lt.source_indices().end());
  REQUIRE(tr.size() == static_cast<std::size_t>(s.train.size()));
  REQUIRE(va.size() == 9);
  for (index_t i : va) REQUIRE(tr.count(i) == 0);
  std::set<index_t> uni = tr;
  uni.insert(va.begin(), va.end());
  REQUIRE(uni == all);
  // Train keeps the original order.
  REQUIRE(std::is_sorted(s.train.labels().begin(), s.train.labels().end()));

  const auto again = ld::held_out_split(lt, 3, 11);
  REQUIRE(again.val.content_hash() == s.val.content_hash());
  REQUIRE(again.train.content_hash() == s.train.content_hash());
  REQUIRE(ld::held_out_split(lt, 3, 12).val.content_hash() != s.val.content_hash());
  REQUIRE_THROWS_AS(ld::held_out_split(lt, 0, 1), ltl::value_error);
}

// ---------------------------------------------------------------- hashing

TEST_CASE("content hash: FNV-1a, stable, sensitive to content and selection", "[data][hash]") {
  REQUIRE(ld::fnv1a64{}.value() == 0xcbf29ce484222325ull);
  REQUIRE(ld::fnv1a64{}.text("a").value() == 0xaf63dc4c8601ec8cull);  // published FNV-1a test vectors
  REQUIRE(ld::fnv1a64{}.text("foobar").value() == 0x85944171f73967e8ull);
  REQUIRE(ld::hash_hex(0xabcull) == "0000000000000abc");

  const auto ds = synthetic(3, 4);
  const auto h = ds.content_hash();
  REQUIRE(ds.hash_hex().size() == 16);
  // Pinned: the hash must not change across runs, platforms or library versions.
  REQUIRE(ds.hash_hex() == "ce59c0a4769a2cf6");
  REQUIRE(synthetic(3, 4, "renamed").content_hash() == h);  // name is not content

  std::vector<index_t> all(12);
  for (index_t i = 0; i < 12; ++i) all[static_cast<std::size_t>(i)] = i;
  REQUIRE(ds.subset(all).content_hash() == h);  // the identity subset is the dataset
  const std::vector<index_t> p{1, 2, 3}, q{1, 3, 2}, r{1, 2, 4};
  REQUIRE(ds.subset(p).content_hash() != ds.subset(q).content_hash());
  REQUIRE(ds.subset(p).content_hash() != ds.subset(r).content_hash());
  // Two routes to the same images give the same hash.
  REQUIRE(ds.subset(all).subset(p).content_hash() == ds.subset(p).content_hash());
  REQUIRE(ds.subset(p).source_id() == ds.source_id());

  // One changed pixel or label changes the source identity.
  auto px = std::vector<std::uint8_t>(ds.pixels().begin(), ds.pixels().end());
  auto y = std::vector<std::int64_t>(ds.labels().begin(), ds.labels().end());
  px[5] ^= 1;
  REQUIRE(ld::image_dataset("x", ds.image_shape(), px, y, 3).content_hash() != h);
  px[5] ^= 1;
  REQUIRE(ld::image_dataset("x", ds.image_shape(), px, y, 3).content_hash() == h);
  y[0] = 1;
  REQUIRE(ld::image_dataset("x", ds.image_shape(), px, y, 3).content_hash() != h);
}
