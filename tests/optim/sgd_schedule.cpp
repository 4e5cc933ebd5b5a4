// Tests of optim/sgd.hpp (hand-computed PyTorch updates) and optim/schedule.hpp (the recipe's rates).
#include <catch2/catch.hpp>
#include <ltlearn/nn/linear.hpp>
#include <ltlearn/optim/schedule.hpp>
#include <ltlearn/optim/sgd.hpp>

using V = ltl::variable<double>;
using TD = ltl::tensor<double>;

TEST_CASE("sgd matches hand-computed PyTorch updates", "[optim]") {
  // p = 1, g = 0.5 every step, lr 0.1, momentum 0.9, wd 0.01.
  V p(TD::from({1}, {1.0}), true);
  ltl::optim::sgd<double> opt({{"p", p}}, {.momentum = 0.9, .weight_decay = 0.01});
  p.grad() = TD::from({1}, {0.5});
  opt.step(0.1);
  // d = 0.5 + 0.01·1 = 0.51; b = 0.51; p = 1 − 0.051 = 0.949
  REQUIRE(p.value().item() == Approx(0.949).epsilon(1e-12));
  opt.step(0.1);
  // d = 0.5 + 0.00949 = 0.50949; b = 0.9·0.51 + 0.50949 = 0.96849; p = 0.949 − 0.096849
  REQUIRE(p.value().item() == Approx(0.949 - 0.096849).epsilon(1e-12));

  V q(TD::from({1}, {1.0}), true);
  ltl::optim::sgd<double> nest({{"q", q}}, {.momentum = 0.9, .nesterov = true});
  q.grad() = TD::from({1}, {1.0});
  nest.step(0.1);  // b = 1; d = 1 + 0.9 = 1.9; q = 1 − 0.19
  REQUIRE(q.value().item() == Approx(0.81).epsilon(1e-12));
  nest.step(0.1);  // b = 0.9 + 1 = 1.9; d = 1 + 1.71 = 2.71
  REQUIRE(q.value().item() == Approx(0.81 - 0.271).epsilon(1e-12));

  auto st = nest.state_dict();
  REQUIRE(st.at("q").item() == Approx(1.9));
  REQUIRE_THROWS_AS(nest.load_state_dict({{"nope", TD::zeros({1})}}), ltl::value_error);
  REQUIRE_THROWS_AS((ltl::optim::sgd<double>({{"q", q}}, {.momentum = 0, .nesterov = true})), ltl::value_error);
}

TEST_CASE("schedules give the recipe's rates at chosen iterations", "[optim]") {
  // SPEC §5: 100 iterations per epoch, warm-up over epoch 0 to 0.1, ×0.1 from 16, ×0.01 from 18.
  auto s = ltl::optim::make_step_recipe(0.1, 100, 1, 16, 18);
  REQUIRE(s(0) == Approx(0.001));
  REQUIRE(s(49) == Approx(0.05));
  REQUIRE(s(99) == Approx(0.1));
  REQUIRE(s(100) == Approx(0.1));
  REQUIRE(s(1599) == Approx(0.1));
  REQUIRE(s(1600) == Approx(0.01));
  REQUIRE(s(1799) == Approx(0.01));
  REQUIRE(s(1800) == Approx(0.001));
  ltl::optim::multistep_lr m{.lr = 0.2, .milestones = {30, 60, 80}, .gamma = 0.1};
  REQUIRE(m(29) == Approx(0.2));
  REQUIRE(m(30) == Approx(0.02));
  REQUIRE(m(85) == Approx(0.0002));
  auto c = ltl::optim::make_cosine_recipe(0.1, 10, 5, 300);
  REQUIRE(c(49) == Approx(0.1));
  REQUIRE(c(50) == Approx(0.1));
  REQUIRE(c(50 + 1475) == Approx(0.05));
  REQUIRE(c(3000) == Approx(0.0).margin(1e-12));
  static_assert(ltl::optim::lr_schedule<decltype(s)>);
}
