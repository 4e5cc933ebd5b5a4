// Tests of eval/scope.hpp (eval mode and no-grad, restored also on an exception) and
// eval/batched_pass.hpp (in-order visits, collected outputs of a point).
#include <catch2/catch.hpp>
#include <ltlearn/classifier/decoupled.hpp>
#include <ltlearn/classifier/features.hpp>
#include <ltlearn/classifier/posthoc.hpp>
#include <ltlearn/eval/analysis.hpp>
#include <ltlearn/eval/batched_pass.hpp>
#include <ltlearn/eval/scope.hpp>
#include <ltlearn/metrics/analysis.hpp>
#include <ltlearn/metrics/calibration.hpp>
#include <ltlearn/metrics/class_analysis.hpp>
#include <ltlearn/nn/activation.hpp>
#include <ltlearn/ops/shape_ops.hpp>
#include <ltlearn/train/evaluate.hpp>

#include "support/test_aliases.hpp"
#include "support/tiny_model.hpp"

#include <cmath>
#include <functional>
#include <map>
#include <numeric>
#include <span>
#include <vector>

using namespace ltl_test;  // test_aliases.hpp, tiny_model.hpp

TEST_CASE("eval_scope sets eval mode and no-grad, and restores both, also on an exception", "[eval]") {
  tiny_model model;
  REQUIRE(model.is_training());
  REQUIRE(ltl::grad_enabled());
  {
    ltl::eval::eval_scope scope(model);
    REQUIRE_FALSE(model.is_training());
    REQUIRE_FALSE(model.fc->is_training());  // submodules too
    REQUIRE_FALSE(ltl::grad_enabled());
  }
  REQUIRE(model.is_training());
  REQUIRE(model.fc->is_training());
  REQUIRE(ltl::grad_enabled());
  // A model already in eval mode stays there; a scope that records the graph keeps grad on.
  model.eval();
  {
    ltl::no_grad_guard ng;
    ltl::eval::eval_scope scope(model, {.record_graph = true});
    REQUIRE(ltl::grad_enabled());
  }
  REQUIRE_FALSE(model.is_training());
  REQUIRE(ltl::grad_enabled());
  model.train();
  try {
    ltl::eval::eval_scope scope(model);
    throw ltl::value_error("x");
  } catch (const ltl::value_error&) {
  }
  REQUIRE(model.is_training());
  REQUIRE(ltl::grad_enabled());
}

TEST_CASE("the batched pass visits the dataset in order and collects a point's outputs", "[eval]") {
  tiny_model model;
  const auto ds = tiny_dataset(23, 3);
  // for_each_batch: consecutive batches of 10, 10, 3 images, each as make_batch normalises them.
  std::vector<index_t> firsts, sizes;
  ltl::eval::for_each_batch<double>(
      ds, tiny_norm,
      [&](const ltl::eval::pass_batch<double, ltl::cpu::device>& b) {
        firsts.push_back(b.first);
        sizes.push_back(b.size());
        std::vector<index_t> idx(static_cast<std::size_t>(b.size()));
        std::iota(idx.begin(), idx.end(), b.first);
        const auto ref = ltl::data::make_batch<double>(ds, std::span<const index_t>(idx), tiny_norm);
        REQUIRE(b.images.to_vector() == ref.images.to_vector());
        REQUIRE(b.labels.to_vector() == ref.labels.to_vector());
      },
      {.batch_size = 10});
  REQUIRE(firsts == std::vector<index_t>{0, 10, 20});
  REQUIRE(sizes == std::vector<index_t>{10, 10, 3});
  // run_batches holds an eval scope during the pass only.
  ltl::eval::run_batches(
      model, ds, tiny_norm, [&](const auto&) { REQUIRE_FALSE(model.is_training()); }, {.batch_size = 8});
  REQUIRE(model.is_training());
  // collect at "stem" = the stem applied to the whole normalised set at once.
  const auto c = ltl::eval::collect(model, ds, tiny_norm, {.point = "stem", .batch_size = 4});
  std::vector<index_t> all(23);
  std::iota(all.begin(), all.end(), 0);
  const auto whole = ltl::data::make_batch<double>(ds, std::span<const index_t>(all), tiny_norm);
  model.eval();
  const auto ref = model.run(VD(whole.images), -1, model.point("stem")).value();
  model.train();
  REQUIRE(c.outputs.sizes() == ref.sizes());
  const auto got = c.outputs.to_vector(), want = ref.to_vector();
  for (std::size_t i = 0; i < got.size(); ++i) REQUIRE(got[i] == Approx(want[i]).epsilon(1e-12));
  REQUIRE(c.labels.to_vector() == whole.labels.to_vector());
  REQUIRE_THROWS_AS(ltl::eval::collect(model, ds, tiny_norm, {.point = "nowhere"}), ltl::value_error);
}
