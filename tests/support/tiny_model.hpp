#pragma once
// A tiny staged model (stem, pool, fc over 1x2x2 images) and its dataset, shared by the tests of
// classifier/, metrics/ and eval/ that run a model over a dataset.

#include <ltlearn/core/rng.hpp>
#include <ltlearn/data/dataset.hpp>
#include <ltlearn/data/transforms.hpp>
#include <ltlearn/nn/activation.hpp>
#include <ltlearn/nn/linear.hpp>
#include <ltlearn/nn/staged_model.hpp>
#include <ltlearn/ops/shape_ops.hpp>

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace ltl_test {

/// Row r of a 2-d tensor as a vector.
template <class T>
std::vector<T> row(const ltl::tensor<T>& t, ltl::index_t r) {
  const auto c = t.contiguous();
  return {c.data() + r * t.size(1), c.data() + (r + 1) * t.size(1)};
}

/// stem: flatten + linear 4 → 3; pool: relu (f(x) = relu(stem)); fc: linear 3 → 2.
class tiny_model : public ltl::nn::staged_model<double> {
 public:
  struct flat_linear : ltl::nn::unary_module<double> {
    std::shared_ptr<ltl::nn::linear<double>> fc;
    explicit flat_linear(ltl::rng& g)
        : fc(register_module("fc", std::make_shared<ltl::nn::linear<double>>(
                                       ltl::nn::linear_options{.in_features = 4, .out_features = 3}, g))) {}
    ltl::variable<double> forward(const ltl::variable<double>& x) override { return fc->forward(ltl::flatten(x, 1)); }
  };
  tiny_model() {
    ltl::rng g(11);
    stem = add_stage("stem", std::make_shared<flat_linear>(g));
    add_stage("pool", std::make_shared<ltl::nn::relu<double>>());
    fc = add_stage("fc", std::make_shared<ltl::nn::linear<double>>(
                             ltl::nn::linear_options{.in_features = 3, .out_features = 2}, g));
  }
  std::shared_ptr<flat_linear> stem;
  std::shared_ptr<ltl::nn::linear<double>> fc;
};

/// n random 1x2x2 images of two classes, every third one of class 1.
inline ltl::data::image_dataset tiny_dataset(ltl::index_t n, std::uint64_t seed) {
  ltl::rng g(seed);
  std::vector<std::uint8_t> px;
  std::vector<std::int64_t> y;
  for (ltl::index_t i = 0; i < n; ++i) {
    for (int j = 0; j < 4; ++j) px.push_back(static_cast<std::uint8_t>(g.below(256)));
    y.push_back(i % 3 == 0 ? 1 : 0);  // 2:1 imbalance
  }
  return ltl::data::image_dataset("tiny", ltl::shape{1, 2, 2}, std::move(px), std::move(y), 2);
}

/// The normalisation tiny_dataset is read with.
inline const ltl::data::normalize tiny_norm{{0.5}, {0.25}};

}  // namespace ltl_test
