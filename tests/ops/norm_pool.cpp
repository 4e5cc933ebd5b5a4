// Tests of the batch-norm and pooling ops: hand-computed forwards, double-precision gradient
// checks and shape errors. (Convolution: backends/cpu/conv.cpp.)
#include <catch2/catch.hpp>
#include <ltlearn/autograd/gradcheck.hpp>
#include <ltlearn/ops/activation.hpp>
#include <ltlearn/ops/elementwise.hpp>
#include <ltlearn/ops/norm.hpp>
#include <ltlearn/ops/pool.hpp>

#include "support.hpp"
#include "support/test_aliases.hpp"

#include <cmath>
#include <functional>
#include <string>
#include <vector>

using namespace ltl_test;  // support.hpp, test_aliases.hpp

// ---------------------------------------------------------------------------------------------
// batch_norm2d

TEST_CASE("batch_norm2d training forward and running statistics by hand", "[ops][bn]") {
  // x [2, 2, 1, 2]: channel 0 holds {1, 2, 3, 4}, channel 1 holds {0, 0, 2, 6}.
  const VD x(TD::from({2, 2, 1, 2}, {1, 2, 0, 0, 3, 4, 2, 6}));
  const VD w(TD::from({2}, {2, 1}));
  const VD b(TD::from({2}, {0.5, -1}));
  TD rm = TD::zeros({2});
  TD rv = TD::ones({2});
  const auto y = ltl::batch_norm2d(x, w, b, rm, rv, {.training = true});
  // Channel 0: mean 2.5, biased var 1.25, unbiased 5/3. Channel 1: mean 2, biased var 6, unbiased 8.
  const double s0 = 1 / std::sqrt(1.25 + 1e-5), s1 = 1 / std::sqrt(6 + 1e-5);
  require_values(y.value(),
                 {2 * (1 - 2.5) * s0 + 0.5, 2 * (2 - 2.5) * s0 + 0.5, (0 - 2.0) * s1 - 1, (0 - 2.0) * s1 - 1,
                  2 * (3 - 2.5) * s0 + 0.5, 2 * (4 - 2.5) * s0 + 0.5, (2 - 2.0) * s1 - 1, (6 - 2.0) * s1 - 1},
                 1e-12);
  require_values(rm, {0.1 * 2.5, 0.1 * 2.0});
  require_values(rv, {0.9 + 0.1 * 5.0 / 3.0, 0.9 + 0.1 * 8.0});
  // A second step with momentum 0.5 moves halfway towards the batch statistics.
  (void)ltl::batch_norm2d(x, w, b, rm, rv, {.training = true, .momentum = 0.5});
  require_values(rm, {0.5 * 0.25 + 0.5 * 2.5, 0.5 * 0.2 + 0.5 * 2.0});
  require_values(rv, {0.5 * (0.9 + 0.5 / 3.0) + 0.5 * 5.0 / 3.0, 0.5 * 1.7 + 0.5 * 8.0});

  // Float path: statistics accumulated in double give the same running values to float precision.
  TF rmf = TF::zeros({2}), rvf = TF::ones({2});
  const ltl::variable<float> xf(TF::from({2, 2, 1, 2}, {1, 2, 0, 0, 3, 4, 2, 6}));
  (void)ltl::batch_norm2d(xf, ltl::variable<float>(), ltl::variable<float>(), rmf, rvf, {.training = true});
  REQUIRE(rmf.to_vector()[0] == Approx(0.25f));
  REQUIRE(rvf.to_vector()[1] == Approx(1.7f));
}

TEST_CASE("batch_norm2d evaluation forward uses the running statistics", "[ops][bn]") {
  const VD x(TD::from({1, 2, 1, 2}, {1, 3, -2, 4}));
  const TD rm = TD::from({2}, {1, 0.5});
  const TD rv = TD::from({2}, {4, 0.25});
  const auto y = ltl::batch_norm2d(x, VD(TD::from({2}, {3, 1})), VD(TD::from({2}, {0, 1})), rm, rv, {.training = false});
  const double s0 = 3 / std::sqrt(4 + 1e-5), s1 = 1 / std::sqrt(0.25 + 1e-5);
  require_values(y.value(), {0 * s0, 2 * s0, -2.5 * s1 + 1, 3.5 * s1 + 1});
  require_values(rm, {1, 0.5});  // evaluation never touches the running tensors
  require_values(rv, {4, 0.25});
  // Without affine parameters.
  require_values(ltl::batch_norm2d(x, VD(), VD(), rm, rv).value(),
                 {0, 2 / std::sqrt(4 + 1e-5), -2.5 / std::sqrt(0.25 + 1e-5), 3.5 / std::sqrt(0.25 + 1e-5)});
}

TEST_CASE("batch_norm2d gradients in double", "[ops][bn][grad]") {
  SECTION("training, affine, running statistics updated on the side") {
    TD rm = TD::zeros({3}), rv = TD::ones({3});
    require_gradcheck(
        [rm, rv](const std::vector<VD>& v) { return ltl::batch_norm2d(v[0], v[1], v[2], rm, rv, {.training = true}); },
        {leaf({3, 3, 2, 3}, 70), leaf({3}, 71, 0.5, 2), leaf({3}, 72)});
  }
  SECTION("training without running statistics, N = 1") {
    require_gradcheck(
        [](const std::vector<VD>& v) { return ltl::batch_norm2d(v[0], v[1], v[2], TD(), TD(), {.training = true}); },
        {leaf({1, 2, 3, 3}, 73), leaf({2}, 74, 0.5, 2), leaf({2}, 75)});
  }
  SECTION("training without affine parameters") {
    require_gradcheck(
        [](const std::vector<VD>& v) { return ltl::batch_norm2d(v[0], VD(), VD(), TD(), TD(), {.training = true}); },
        {leaf({4, 2, 2, 2}, 76)});
  }
  SECTION("evaluation") {
    const TD rm = random_tensor({3}, 77), rv = random_tensor({3}, 78, 0.5, 2);
    require_gradcheck(
        [rm, rv](const std::vector<VD>& v) { return ltl::batch_norm2d(v[0], v[1], v[2], rm, rv, {.training = false}); },
        {leaf({2, 3, 2, 2}, 79), leaf({3}, 80, 0.5, 2), leaf({3}, 81)});
  }
}

TEST_CASE("batch_norm2d with fused residual and ReLU: gradients and the unfused composition", "[ops][bn][grad]") {
  SECTION("gradcheck, training, with residual") {
    TD rm = TD::zeros({3}), rv = TD::ones({3});
    require_gradcheck(
        [rm, rv](const std::vector<VD>& v) {
          return ltl::batch_norm2d(v[0], v[1], v[2], rm, rv, {.training = true, .relu = true}, v[3]);
        },
        {leaf({3, 3, 3, 3}, 82), leaf({3}, 83, 0.5, 2), leaf({3}, 84), leaf({3, 3, 3, 3}, 85)});
  }
  SECTION("gradcheck, evaluation, ReLU only") {
    const TD rm = random_tensor({2}, 86), rv = random_tensor({2}, 87, 0.5, 2);
    require_gradcheck(
        [rm, rv](const std::vector<VD>& v) {
          return ltl::batch_norm2d(v[0], v[1], v[2], rm, rv, {.training = false, .relu = true});
        },
        {leaf({2, 2, 3, 5}, 88), leaf({2}, 89, 0.5, 2), leaf({2}, 90)});
  }
  SECTION("float: equal to relu(batch_norm2d(x) + r) built from separate ops") {
    const TF x0 = random_tensor<float>({4, 5, 7, 7}, 91, -2, 3), r0 = random_tensor<float>({4, 5, 7, 7}, 92);
    const TF w0 = random_tensor<float>({5}, 93, 0.5, 2), b0 = random_tensor<float>({5}, 94);
    const TF dy = random_tensor<float>({4, 5, 7, 7}, 95);
    TF rm1 = TF::zeros({5}), rv1 = TF::ones({5}), rm2 = TF::zeros({5}), rv2 = TF::ones({5});
    VF x1(x0.clone(), true), w1(w0.clone(), true), b1(b0.clone(), true), r1(r0.clone(), true);
    VF x2(x0.clone(), true), w2(w0.clone(), true), b2(b0.clone(), true), r2(r0.clone(), true);
    auto fused = ltl::batch_norm2d(x1, w1, b1, rm1, rv1, {.training = true, .relu = true}, r1);
    auto plain = ltl::relu(ltl::batch_norm2d(x2, w2, b2, rm2, rv2, {.training = true}) + r2);
    require_close(fused.value(), plain.value(), 1e-5, 1e-5);
    require_close(rm1, rm2, 1e-6, 1e-5);
    require_close(rv1, rv2, 1e-6, 1e-5);
    fused.backward(dy);
    plain.backward(dy);
    require_close(x1.grad(), x2.grad(), 1e-5, 1e-4);
    require_close(w1.grad(), w2.grad(), 1e-4, 1e-4);
    require_close(b1.grad(), b2.grad(), 1e-4, 1e-4);
    require_close(r1.grad(), r2.grad(), 0);
  }
  SECTION("float backward (vectorised sums, masked gradient in the same pass) equals double") {
    // 32×32 planes (64 vectors per plane) and a mean far from zero relative to the spread, so
    // that x − mean in float against the rounded mean would show if uncorrected.
    const TF xf0 = random_tensor<float>({3, 4, 32, 32}, 96, 40, 44), rf0 = random_tensor<float>({3, 4, 32, 32}, 97);
    const TF dyf = random_tensor<float>({3, 4, 32, 32}, 98);
    const TF wf0 = random_tensor<float>({4}, 99, 0.5, 2), bf0 = random_tensor<float>({4}, 100);
    for (bool fused : {false, true}) {
      INFO("fused residual + ReLU " << fused);
      VF xf(xf0.clone(), true), wf(wf0.clone(), true), bf(bf0.clone(), true), rf(rf0.clone(), true);
      VD xd(to_double(xf0), true), wd(to_double(wf0), true), bd(to_double(bf0), true), rd(to_double(rf0), true);
      const ltl::batch_norm_options o{.training = true, .relu = fused};
      auto yf = ltl::batch_norm2d(xf, wf, bf, TF(), TF(), o, fused ? rf : VF());
      auto yd = ltl::batch_norm2d(xd, wd, bd, TD(), TD(), o, fused ? rd : VD());
      require_close(yf.value(), yd.value(), 2e-5, 1e-5);
      yf.backward(dyf);
      yd.backward(to_double(dyf));
      require_close(xf.grad(), xd.grad(), 1e-5, 1e-4);
      require_close(wf.grad(), wd.grad(), 2e-4, 1e-5);
      require_close(bf.grad(), bd.grad(), 2e-4, 1e-5);
      if (fused) require_close(rf.grad(), rd.grad(), 1e-7);
    }
  }
  SECTION("a residual of the wrong shape is rejected") {
    const VD x(TD::zeros({2, 3, 4, 4})), r(TD::zeros({2, 3, 4, 5}));
    REQUIRE_THROWS_AS(ltl::batch_norm2d(x, VD(), VD(), TD(), TD(), {.training = true}, r), ltl::shape_error);
  }
}

TEST_CASE("batch_norm2d rejects bad input", "[ops][bn][errors]") {
  const VD x(TD::zeros({2, 3, 4, 4}));
  require_error<ltl::shape_error>(
      [&] { (void)ltl::batch_norm2d(x, VD(TD::ones({4})), VD(), TD(), TD(), {.training = true}); },
      {"batch_norm2d", "[4]", "[2, 3, 4, 4]"});
  require_error<ltl::shape_error>(
      [&] { (void)ltl::batch_norm2d(x, VD(), VD(), TD::zeros({2}), TD::ones({2}), {.training = true}); },
      {"batch_norm2d", "running_mean", "[2, 3, 4, 4]"});
  require_error<ltl::value_error>([&] { (void)ltl::batch_norm2d(x, VD(), VD(), TD(), TD()); },
                                  {"batch_norm2d", "running", "[2, 3, 4, 4]"});
  require_error<ltl::value_error>(
      [&] {
        (void)ltl::batch_norm2d(VD(TD::zeros({1, 3, 1, 1})), VD(), VD(), TD(), TD(), {.training = true});
      },
      {"batch_norm2d", "[1, 3, 1, 1]"});
  require_error<ltl::shape_error>(
      [&] {
        (void)ltl::batch_norm2d(VD(TD::zeros({2, 3})), VD(), VD(), TD(), TD());
      },
      {"batch_norm2d", "[2, 3]"});
}

// ---------------------------------------------------------------------------------------------
// pooling

TEST_CASE("pooling forwards on hand-computed values", "[ops][pool]") {
  const VD x(iota({1, 1, 3, 3}));  // 1..9
  require_values(ltl::max_pool2d(x, {.kernel = 2, .stride = 1}).value(), {5, 6, 8, 9});
  require_values(ltl::max_pool2d(x, {.kernel = 2, .stride = 2, .padding = 1}).value(), {1, 3, 7, 9});
  // Padding is −∞ for max pooling: with negative inputs it must never win.
  const VD neg(iota({1, 1, 3, 3}, -1, -1));  // −1..−9
  require_values(ltl::max_pool2d(neg, {.kernel = 2, .stride = 2, .padding = 1}).value(), {-1, -2, -4, -5});
  // Stride defaults to the kernel size.
  REQUIRE(ltl::max_pool2d(VD(iota({2, 3, 8, 6})), {.kernel = 2}).sizes() == shape{2, 3, 4, 3});
  // Average pooling counts padded zeros in the divisor.
  require_values(ltl::avg_pool2d(x, {.kernel = 2, .stride = 2, .padding = 1}).value(),
                 {1 / 4.0, (2 + 3) / 4.0, (4 + 7) / 4.0, (5 + 6 + 8 + 9) / 4.0});
  require_values(ltl::avg_pool2d(x, {.kernel = {1, 3}}).value(), {2, 5, 8});
  const auto g = ltl::global_avg_pool(VD(iota({2, 2, 1, 3})));  // planes 1..3, 4..6, 7..9, 10..12
  REQUIRE(g.sizes() == shape{2, 2});
  require_values(g.value(), {2, 5, 8, 11});
}

TEST_CASE("max_pool2d routes gradients to the argmax, summing overlaps", "[ops][pool]") {
  const VD x(TD::from({1, 1, 3, 3}, {0, 1, 0, 2, 9, 3, 0, 4, 0}), true);
  auto y = ltl::max_pool2d(x, {.kernel = 2, .stride = 1});  // every window's max is the centre
  require_values(y.value(), {9, 9, 9, 9});
  y.backward(TD::from({1, 1, 2, 2}, {1, 2, 3, 4}));
  require_values(x.grad(), {0, 0, 0, 0, 10, 0, 0, 0, 0});
}

TEST_CASE("pooling gradients in double", "[ops][pool][grad]") {
  // Uniform random inputs have no ties within a window, so max pooling is differentiable there.
  require_gradcheck([](const auto& v) { return ltl::max_pool2d(v[0], {.kernel = 3, .stride = 2, .padding = 1}); },
                    {leaf({2, 2, 5, 5}, 90)});
  require_gradcheck([](const auto& v) { return ltl::max_pool2d(v[0], {.kernel = 2}); }, {leaf({2, 2, 4, 6}, 91)});
  require_gradcheck(
      [](const auto& v) {
        return ltl::max_pool2d(v[0], {.kernel = {2, 3}, .stride = 1});
      },
      {leaf({1, 2, 4, 5}, 92)});
  require_gradcheck([](const auto& v) { return ltl::avg_pool2d(v[0], {.kernel = 3, .stride = 2, .padding = 1}); },
                    {leaf({2, 2, 5, 5}, 93)});
  require_gradcheck(
      [](const auto& v) {
        return ltl::avg_pool2d(v[0], {.kernel = {2, 3}, .stride = {1, 2}});
      },
      {leaf({2, 2, 4, 7}, 94)});
  require_gradcheck([](const auto& v) { return ltl::global_avg_pool(v[0]); }, {leaf({2, 3, 3, 4}, 95)});
}

TEST_CASE("pooling rejects bad shapes with messages naming the op and shapes", "[ops][pool][errors]") {
  const VD x(TD::zeros({2, 3, 4, 4}));
  require_error<ltl::shape_error>([&] { (void)ltl::max_pool2d(x, {.kernel = 2, .padding = 2}); },
                                  {"max_pool2d", "[2, 3, 4, 4]", "padding"});
  require_error<ltl::shape_error>([&] { (void)ltl::avg_pool2d(x, {.kernel = 5}); }, {"avg_pool2d", "[2, 3, 4, 4]"});
  require_error<ltl::shape_error>(
      [&] {
        (void)ltl::max_pool2d(VD(TD::zeros({3, 4, 4})), {.kernel = 2});
      },
      {"max_pool2d", "[3, 4, 4]"});
  require_error<ltl::shape_error>(
      [&] {
        (void)ltl::global_avg_pool(VD(TD::zeros({2, 3})));
      },
      {"global_avg_pool", "[2, 3]"});
}
