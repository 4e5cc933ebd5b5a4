// Issue 20 finding 1 in eval/evaluate.hpp: evaluating a model whose weights are not finite names
// the problem instead of reporting a meaningless accuracy.
#include <catch2/catch.hpp>
#include <ltlearn/eval/evaluate.hpp>
#include <ltlearn/nn/models/resnet_cifar.hpp>

#include "support.hpp"
#include "support/toy_data.hpp"

#include <limits>
#include <vector>

using ltl_test::require_error;
using ltl_test::toy_dataset;

TEST_CASE("evaluating a model with non-finite weights names the problem", "[reliability][finding1]") {
  const auto data = toy_dataset(6, 3, 2);
  ltl::nn::resnet_cifar<float> m({.depth = 8, .num_classes = 3, .in_channels = 1, .width = 4, .seed = 11});
  auto first = m.named_parameters().front().second.value();
  first.data()[0] = std::numeric_limits<float>::infinity();
  require_error<ltl::value_error>(
      [&] { (void)ltl::eval::evaluate(m, data, {{0.3}, {0.3}}, std::vector<double>{8, 5, 4}); },
      {"not finite", "diverged"});
}
