// classifier/any_source.hpp: the type-erased feature source gives its source's rows and labels,
// keeps what it was handed alive, and trains a cRT head exactly as the source itself does.
#include <catch2/catch.hpp>
#include <ltlearn/classifier/any_source.hpp>
#include <ltlearn/classifier/features.hpp>
#include <ltlearn/nn/models/resnet_cifar.hpp>
#include "support/toy_data.hpp"

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

using ltl::index_t;
using ltl::shape;
namespace cl = ltl::classifier;

namespace {
cl::feature_table<float> small_table() {
  ltl::rng g(3);
  ltl::tensor<float> f(shape{12, 4});
  for (index_t i = 0; i < f.numel(); ++i) f.data()[i] = static_cast<float>(g.uniform(-1, 1));
  std::vector<std::int64_t> y{0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 0};
  return cl::make_feature_table(f, ltl::tensor<std::int64_t>::from({12}, y), 3);
}
}  // namespace

TEST_CASE("any_feature_source forwards its source and owns what it keeps alive", "[classifier]") {
  auto table = std::make_shared<const cl::feature_table<float>>(small_table());
  auto src = std::make_shared<const cl::cached_source<float>>(*table);
  const cl::any_feature_source<float> any(src, table);
  static_assert(cl::feature_source<cl::any_feature_source<float>, float>);
  const std::weak_ptr<const cl::feature_table<float>> watch = table;
  table.reset();
  src.reset();
  REQUIRE_FALSE(watch.expired());  // the source's table lives on inside `any`
  const cl::cached_source<float> direct(*watch.lock());
  REQUIRE(any.num_classes() == 3);
  REQUIRE(any.dim() == 4);
  REQUIRE(any.labels().size() == 12);
  REQUIRE(any.labels().data() == direct.labels().data());
  const std::vector<index_t> idx{11, 2, 7};
  const auto [fa, ya] = any.batch(1, 0, idx);
  const auto [fd, yd] = direct.batch(1, 0, idx);
  REQUIRE(fa.to_vector() == fd.to_vector());
  REQUIRE(ya.to_vector() == yd.to_vector());
  // cRT through the wrapper is cRT on the source: the same weights, bit for bit.
  const cl::stage2_options o{.epochs = 2, .batch_size = 4, .seed = 9};
  const auto w_any = cl::crt<float>(any, o)->weight.value().to_vector();
  const auto w_direct = cl::crt<float>(direct, o)->weight.value().to_vector();
  REQUIRE(w_any.size() == w_direct.size());
  REQUIRE(std::memcmp(w_any.data(), w_direct.data(), w_any.size() * sizeof(float)) == 0);
  const auto copy = any;  // copies share the source
  REQUIRE(copy.batch(1, 0, idx).first.to_vector() == fa.to_vector());
}

TEST_CASE("owning_backbone_source builds its model in place, prepares it, then reads it", "[classifier]") {
  // The path examples/device.hpp takes for a backbone on a device chosen at run time, here on
  // the CPU: the owned model, filled by `prepare`, gives the features of a backbone_source over
  // an identical model.
  const auto ds = ltl_test::toy_dataset(6, 3, 2);
  const ltl::nn::resnet_cifar_options mo{.depth = 8, .num_classes = 3, .in_channels = 1, .width = 4, .seed = 5};
  ltl::nn::resnet_cifar<float> reference(mo);
  for (auto& [name, p] : reference.named_parameters()) p.value().fill_(0.01f);
  int prepared = 0;
  using owned_t = cl::owning_backbone_source<float, ltl::cpu::device, ltl::nn::resnet_cifar<float>>;
  auto owned = std::make_shared<const owned_t>(
      [&] { return ltl::nn::resnet_cifar<float>(mo); },
      [&](ltl::nn::resnet_cifar<float>& m) {
        ++prepared;
        for (auto& [name, p] : m.named_parameters()) p.value().fill_(0.01f);
      },
      ds, nullptr, 7);
  REQUIRE(prepared == 1);
  const cl::any_feature_source<float> any(owned);
  const cl::backbone_source<float> direct(reference, ds, nullptr, 7);
  REQUIRE(any.dim() == direct.dim());
  const std::vector<index_t> idx{0, 5, static_cast<index_t>(ds.size()) - 1};
  const auto a = any.batch(0, 1, idx).first.to_vector(), d = direct.batch(0, 1, idx).first.to_vector();
  REQUIRE(a.size() == d.size());
  REQUIRE(std::memcmp(a.data(), d.data(), a.size() * sizeof(float)) == 0);
}
