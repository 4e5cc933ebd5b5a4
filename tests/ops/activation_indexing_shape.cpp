// Tests of the normalising activations, label indexing, per-sample mixing and shape ops.
#include <catch2/catch.hpp>

#include "support.hpp"
#include "support/test_aliases.hpp"
#include <ltlearn/autograd/gradcheck.hpp>
#include <ltlearn/ops/activation.hpp>
#include <ltlearn/ops/indexing.hpp>
#include <ltlearn/ops/reduce.hpp>
#include <ltlearn/ops/shape_ops.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

using namespace ltl_test;  // support.hpp, test_aliases.hpp

namespace {
void require_close(const std::vector<double>& got, const std::vector<double>& want, double tol = 1e-12) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i);
    REQUIRE(got[i] == Approx(want[i]).margin(tol));
  }
}
}  // namespace

TEST_CASE("softmax and log_softmax known values", "[ops][softmax]") {
  const auto y = ltl::softmax(VD(TD::from({3}, {1, 2, 3}))).value().to_vector();
  // e^k / (e + e^2 + e^3)
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  require_close(y, {std::exp(1.0) / z, std::exp(2.0) / z, std::exp(3.0) / z});
  require_close(y, {0.09003057317038046, 0.24472847105479764, 0.6652409557748219});

  const auto yf = ltl::softmax(VF(TF::from({3}, {1, 2, 3}))).value().to_vector();
  REQUIRE(yf[0] == Approx(0.0900306f).epsilon(1e-6));
  REQUIRE(yf[2] == Approx(0.6652410f).epsilon(1e-6));

  // Along dim 0 of [2, 2]: columns (0, 1) and (0, 0).
  const auto y0 = ltl::softmax(VD(TD::from({2, 2}, {0, 0, 1, 0})), 0).value().to_vector();
  const double s = 1.0 / (1.0 + std::exp(1.0));
  require_close(y0, {s, 0.5, 1 - s, 0.5});

  // Huge logits: exp(1000) overflows, the shifted form does not.
  const auto ls = ltl::log_softmax(VD(TD::from({3}, {1000, 0, -1000}))).value().to_vector();
  require_close(ls, {0, -1000, -2000}, 1e-9);
  const auto lsf = ltl::log_softmax(VF(TF::from({2, 2}, {1000, 1000, -1000, 999}))).value().to_vector();
  for (float v : lsf) REQUIRE(std::isfinite(v));
  REQUIRE(lsf[0] == Approx(-std::log(2.0f)));
  REQUIRE(lsf[1] == Approx(-std::log(2.0f)));
  REQUIRE(lsf[2] == Approx(-1999.0f));
  REQUIRE(lsf[3] == Approx(0.0f).margin(1e-6));
  const auto sf = ltl::softmax(VF(TF::from({2}, {1000, 1000}))).value().to_vector();
  REQUIRE(sf[0] == Approx(0.5f));
}

TEST_CASE("softmax on views, rank 3 and many rows matches a direct reference", "[ops][softmax]") {
  // 600 × 70 rows: enough to run the OpenMP path; one view transposed (non-contiguous).
  const TD x = random_tensor({70, 600}, 3, -20, 20);
  const TD xt = x.t();
  for (int variant = 0; variant < 2; ++variant) {
    const auto y = variant == 0 ? ltl::softmax(VD(xt), 1).value() : ltl::log_softmax(VD(xt), 1).value();
    REQUIRE(y.sizes() == shape{600, 70});
    for (index_t r = 0; r < 600; r += 37) {
      double m = -1e300, sum = 0;
      for (index_t c = 0; c < 70; ++c) m = std::max(m, x.at({c, r}));
      for (index_t c = 0; c < 70; ++c) sum += std::exp(x.at({c, r}) - m);
      for (index_t c = 0; c < 70; ++c) {
        const double want = variant == 0 ? std::exp(x.at({c, r}) - m) / sum : x.at({c, r}) - m - std::log(sum);
        REQUIRE(y.at({r, c}) == Approx(want).margin(1e-12));
      }
    }
  }
  // Middle dimension of [2, 3, 4]: every (n, w) line sums to one.
  const auto y = ltl::softmax(VD(random_tensor({2, 3, 4}, 4)), 1).value();
  for (index_t n = 0; n < 2; ++n)
    for (index_t w = 0; w < 4; ++w) {
      double s = 0;
      for (index_t c = 0; c < 3; ++c) s += y.at({n, c, w});
      REQUIRE(s == Approx(1.0).margin(1e-14));
    }
}

TEST_CASE("softmax and log_softmax gradients along several dims", "[ops][softmax][grad]") {
  for (int d : {-1, 0, 1}) {
    INFO("dim " << d);
    require_gradcheck([d](const auto& x) { return ltl::softmax(x[0], d); }, {leaf({2, 3, 4}, 10 + d, -3, 3)});
    require_gradcheck([d](const auto& x) { return ltl::log_softmax(x[0], d); }, {leaf({2, 3, 4}, 20 + d, -3, 3)});
  }
  require_gradcheck([](const auto& x) { return ltl::softmax(x[0]); }, {leaf({5}, 30)});
  require_gradcheck([](const auto& x) { return ltl::log_softmax(x[0], 0); }, {leaf({4, 3}, 31)});
  REQUIRE_THROWS_AS(ltl::softmax(leaf({2, 3}, 1), 2), ltl::shape_error);
}

TEST_CASE("l2_normalize forward and gradient", "[ops][l2_normalize]") {
  const auto y = ltl::l2_normalize(VD(TD::from({2, 2}, {3, 4, 0, 0}))).value().to_vector();
  require_close(y, {0.6, 0.8, 0, 0});
  const auto y0 = ltl::l2_normalize(VD(TD::from({2, 2}, {3, 4, 4, 3})), 0).value().to_vector();
  require_close(y0, {0.6, 0.8, 0.8, 0.6});
  // Norm below eps: divided by eps.
  const auto ye = ltl::l2_normalize(VD(TD::from({1, 2}, {0.03, 0.04})), -1, 0.1).value().to_vector();
  require_close(ye, {0.3, 0.4});

  require_gradcheck([](const auto& x) { return ltl::l2_normalize(x[0]); }, {leaf({3, 4}, 40)});
  require_gradcheck([](const auto& x) { return ltl::l2_normalize(x[0], 0); }, {leaf({3, 4}, 41)});
  require_gradcheck([](const auto& x) { return ltl::l2_normalize(x[0], 1); }, {leaf({2, 3, 2}, 42)});
  // Rows of norm ≈ 0.03 are clamped with eps = 0.5, rows of norm > 1 are not.
  TD mixed = random_tensor({2, 3}, 43, -0.02, 0.02);
  for (index_t c = 0; c < 3; ++c) mixed.at({1, c}) = 1.0 + static_cast<double>(c);
  require_gradcheck([](const auto& x) { return ltl::l2_normalize(x[0], -1, 0.5); }, {VD(mixed, true)});
}

TEST_CASE("index_select forward, repeated-index gradient and errors", "[ops][indexing]") {
  const auto x = VD(TD::from({3, 2}, {1, 2, 3, 4, 5, 6}), true);
  const auto idx = TL::from({4}, {2, 0, 0, 1});
  auto y = ltl::index_select(x, 0, idx);
  REQUIRE(y.sizes() == shape{4, 2});
  require_close(y.value().to_vector(), {5, 6, 1, 2, 1, 2, 3, 4});
  ltl::sum(y).backward();
  require_close(x.grad().to_vector(), {2, 2, 1, 1, 1, 1});  // row 0 picked twice
  const auto y1 = ltl::index_select(x, 1, TL::from({3}, {1, 1, 0}));
  require_close(y1.value().to_vector(), {2, 2, 1, 4, 4, 3, 6, 6, 5});

  require_gradcheck([idx](const auto& v) { return ltl::index_select(v[0], 0, idx); }, {leaf({3, 2, 2}, 50)});
  require_gradcheck([](const auto& v) { return ltl::index_select(v[0], 1, TL::from({5}, {3, 0, 3, 3, 1})); },
                    {leaf({2, 4, 3}, 51)});
  require_gradcheck([](const auto& v) { return ltl::index_select(v[0], -1, TL::from({2}, {0, 0})); },
                    {leaf({2, 3}, 52)});

  require_error<ltl::value_error>([&] { (void)ltl::index_select(x, 0, TL::from({3}, {0, 7, 1})); },
                                  {"index_select", "7", "position 1", "[0, 3)"});
  require_error<ltl::value_error>([&] { (void)ltl::index_select(x, 1, TL::from({1}, {-1})); },
                                  {"index_select", "-1", "[0, 2)"});
  REQUIRE_THROWS_AS(ltl::index_select(x, 0, TL::from({1, 1}, {0})), ltl::shape_error);
}

TEST_CASE("gather and one_hot", "[ops][indexing]") {
  const auto x = VD(TD::from({3, 4}, {0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23}), true);
  const auto labels = TL::from({3}, {2, 0, 3});
  auto y = ltl::gather(x, labels);
  require_close(y.value().to_vector(), {2, 10, 23});
  y.backward(TD::from({3}, {1, 2, 3}));
  require_close(x.grad().to_vector(), {0, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 3});
  // A transposed (non-contiguous) input.
  const auto xt = VD(TD::from({4, 3}, {0, 10, 20, 1, 11, 21, 2, 12, 22, 3, 13, 23}).t());
  require_close(ltl::gather(xt, labels).value().to_vector(), {2, 10, 23});
  require_gradcheck([labels](const auto& v) { return ltl::gather(v[0], labels); }, {leaf({3, 4}, 60)});

  const auto oh = ltl::one_hot<float>(labels, 4);
  REQUIRE(oh.sizes() == shape{3, 4});
  REQUIRE(oh.to_vector() == std::vector<float>{0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1});
  const auto oh2 = ltl::one_hot<std::int64_t>(TL::from({2, 2}, {1, 0, 1, 1}), 2);
  REQUIRE(oh2.sizes() == shape{2, 2, 2});
  REQUIRE(oh2.to_vector() == std::vector<std::int64_t>{0, 1, 1, 0, 0, 1, 0, 1});

  require_error<ltl::value_error>([&] { (void)ltl::gather(x, TL::from({3}, {1, 4, 0})); },
                                  {"gather", "label 4", "position 1", "[0, 4)"});
  require_error<ltl::value_error>([&] { (void)ltl::gather(x, TL::from({3}, {1, 0, -2})); },
                                  {"gather", "-2", "position 2"});
  require_error<ltl::value_error>([&] { (void)ltl::one_hot<double>(TL::from({3}, {0, 1, 5}), 5); },
                                  {"one_hot", "label 5", "position 2", "[0, 5)"});
  REQUIRE_THROWS_AS(ltl::one_hot<double>(labels, 0), ltl::value_error);
  require_error<ltl::shape_error>([&] { (void)ltl::gather(x, TL::from({2}, {0, 1})); }, {"gather", "[3, 4]", "[2]"});
}

TEST_CASE("lerp_mix forward and gradients into a and b", "[ops][mixing]") {
  const auto a = VD(TD::from({2, 2}, {1, 2, 3, 4}), true);
  const auto b = VD(TD::from({2, 2}, {10, 20, 30, 40}), true);
  const auto lam = TD::from({2}, {0.25, 0.5});
  const auto perm = TL::from({2}, {1, 0});
  auto y = ltl::lerp_mix(a, b, lam, perm);
  // row 0: 0.75·[1, 2] + 0.25·[30, 40]; row 1: 0.5·[3, 4] + 0.5·[10, 20]
  require_close(y.value().to_vector(), {8.25, 11.5, 6.5, 12});
  y.backward(TD::from({2, 2}, {1, 1, 1, 1}));
  require_close(a.grad().to_vector(), {0.75, 0.75, 0.5, 0.5});
  require_close(b.grad().to_vector(), {0.5, 0.5, 0.25, 0.25});

  const auto lam3 = TD::from({3}, {0.2, 0.7, 0.4});
  const auto perm3 = TL::from({3}, {2, 0, 1});
  require_gradcheck([&](const auto& v) { return ltl::lerp_mix(v[0], v[1], lam3, perm3); },
                    {leaf({3, 2, 2}, 70), leaf({3, 2, 2}, 71)});
  // A perm with a repeated entry still accumulates correctly.
  const auto rep = TL::from({3}, {1, 1, 0});
  require_gradcheck([&](const auto& v) { return ltl::lerp_mix(v[0], v[1], lam3, rep); },
                    {leaf({3, 2}, 72), leaf({3, 2}, 73)});
  // The same variable as a and b: both contributions are summed by the engine.
  require_gradcheck([&](const auto& v) { return ltl::lerp_mix(v[0], v[0], lam3, perm3); }, {leaf({3, 2}, 74)});

  // Closed form for a == b, perm = [1, 0]: out_0 = (1−λ0)x_0 + λ0 x_1, out_1 = (1−λ1)x_1 + λ1 x_0.
  auto x = VD(TD::from({2, 3}, {1, 2, 3, 4, 5, 6}), true);
  auto z = ltl::lerp_mix(x, x, lam, perm);
  z.backward(TD::from({2, 3}, {1, 1, 1, 0, 0, 0}), {.retain_graph = true});
  require_close(x.grad().to_vector(), {0.75, 0.75, 0.75, 0.25, 0.25, 0.25});  // d out_0/d x_1 = λ_0
  x.zero_grad();
  z.backward(TD::from({2, 3}, {1, 1, 1, 1, 1, 1}));
  require_close(x.grad().to_vector(), {1.25, 1.25, 1.25, 0.75, 0.75, 0.75});  // (1−λ0)+λ1, (1−λ1)+λ0

  // Only a requires grad: b gets nothing.
  const auto bc = VD(TD::from({2, 2}, {1, 1, 1, 1}));
  const auto ac = VD(TD::from({2, 2}, {1, 1, 1, 1}), true);
  ltl::sum(ltl::lerp_mix(ac, bc, lam, perm)).backward();
  REQUIRE_FALSE(bc.grad().defined());
  require_close(ac.grad().to_vector(), {0.75, 0.75, 0.5, 0.5});

  require_error<ltl::value_error>([&] { (void)ltl::lerp_mix(a, b, lam, TL::from({2}, {0, 2})); },
                                  {"lerp_mix", "2", "position 1", "[0, 2)"});
  require_error<ltl::shape_error>([&] { (void)ltl::lerp_mix(a, leaf({2, 3}, 1), lam, perm); },
                                  {"lerp_mix", "[2, 2]", "[2, 3]"});
}

TEST_CASE("pad2d forward and gradient", "[ops][shape]") {
  const auto x = VD(TD::from({1, 1, 2, 2}, {1, 2, 3, 4}));
  const auto y = ltl::pad2d(x, 1, 0, 0, 2, -1.0);
  REQUIRE(y.sizes() == shape{1, 1, 3, 4});
  require_close(y.value().to_vector(), {-1, -1, -1, -1, 1, 2, -1, -1, 3, 4, -1, -1});
  const auto y2 = ltl::pad2d(x, {.top = 0, .bottom = 1, .left = 1});
  require_close(y2.value().to_vector(), {0, 1, 2, 0, 3, 4, 0, 0, 0});
  require_gradcheck([](const auto& v) { return ltl::pad2d(v[0], 1, 2, 2, 1); }, {leaf({2, 2, 2, 3}, 80)});
  REQUIRE_THROWS_AS(ltl::pad2d(x, -1, 0, 0, 0), ltl::value_error);
  REQUIRE_THROWS_AS(ltl::pad2d(VD(TD::zeros({2, 2})), 1, 1, 1, 1), ltl::shape_error);
}

TEST_CASE("shortcut_a subsamples and pads channels", "[ops][shape]") {
  TD xv({1, 2, 4, 4});
  for (index_t i = 0; i < 32; ++i) xv.data()[i] = static_cast<double>(i + 1);
  const auto y = ltl::shortcut_a(VD(xv), 4, 2).value();
  REQUIRE(y.sizes() == shape{1, 4, 2, 2});
  // Channel 0 and 3 are zero padding; channels 1, 2 are x[0, c, ::2, ::2].
  require_close(y.to_vector(), {0, 0, 0, 0, 1, 3, 9, 11, 17, 19, 25, 27, 0, 0, 0, 0});
  // Odd spatial size keeps the last row/column (⌈5/2⌉ = 3), and stride 1 only pads.
  REQUIRE(ltl::shortcut_a(VD(TD::zeros({1, 1, 5, 5})), 3, 2).sizes() == shape{1, 3, 3, 3});
  require_gradcheck([](const auto& v) { return ltl::shortcut_a(v[0], 4, 2); }, {leaf({2, 2, 4, 4}, 90)});
  require_gradcheck([](const auto& v) { return ltl::shortcut_a(v[0], 5, 2); }, {leaf({1, 3, 3, 5}, 91)});
  require_gradcheck([](const auto& v) { return ltl::shortcut_a(v[0], 4, 1); }, {leaf({1, 2, 2, 3}, 92)});
  require_error<ltl::shape_error>([] { (void)ltl::shortcut_a(VD(TD::zeros({1, 2, 4, 4})), 5, 2); },
                                  {"shortcut_a", "[1, 2, 4, 4]", "5"});
  REQUIRE_THROWS_AS(ltl::shortcut_a(VD(TD::zeros({1, 4, 4, 4})), 2, 2), ltl::shape_error);
}

TEST_CASE("concat along dims 0 and 1", "[ops][shape]") {
  const auto a = VD(TD::from({1, 2}, {1, 2}));
  const auto b = VD(TD::from({2, 2}, {3, 4, 5, 6}));
  require_close(ltl::concat({a, b}, 0).value().to_vector(), {1, 2, 3, 4, 5, 6});
  const auto c = VD(TD::from({1, 1}, {9}));
  require_close(ltl::concat({a, c}, 1).value().to_vector(), {1, 2, 9});
  require_close(ltl::concat({a, c}, -1).value().to_vector(), {1, 2, 9});

  require_gradcheck([](const auto& v) { return ltl::concat({v[0], v[1], v[2]}, 0); },
                    {leaf({1, 3}, 100), leaf({2, 3}, 101), leaf({3, 3}, 102)});
  require_gradcheck([](const auto& v) { return ltl::concat(std::vector<VD>{v[0], v[1]}, 1); },
                    {leaf({2, 1, 2}, 103), leaf({2, 3, 2}, 104)});
  // Only the second input requires grad; the first is a constant.
  const auto k = VD(random_tensor({2, 2}, 105));
  require_gradcheck([k](const auto& v) { return ltl::concat({k, v[0]}, 1); }, {leaf({2, 3}, 106)});

  require_error<ltl::shape_error>([&] { (void)ltl::concat({a, VD(TD::zeros({2, 3}))}, 0); },
                                  {"concat", "[1, 2]", "[2, 3]"});
  require_error<ltl::shape_error>([&] { (void)ltl::concat({a, VD(TD::zeros({2}))}, 0); }, {"concat", "[2]"});
  REQUIRE_THROWS_AS(ltl::concat(std::vector<VD>{}, 0), ltl::shape_error);
}

TEST_CASE("flatten and reshape", "[ops][shape]") {
  const auto x = VD(random_tensor({2, 3, 2, 2}, 110), true);
  const auto f = ltl::flatten(x);
  REQUIRE(f.sizes() == shape{2, 12});
  REQUIRE(f.value().to_vector() == x.value().to_vector());
  REQUIRE(ltl::flatten(x, 0).sizes() == shape{24});
  REQUIRE(ltl::flatten(x, 1, 2).sizes() == shape{2, 6, 2});
  REQUIRE(ltl::reshape(x, {4, -1}).sizes() == shape{4, 6});
  require_gradcheck([](const auto& v) { return ltl::flatten(v[0]); }, {leaf({2, 3, 2}, 111)});
  require_gradcheck([](const auto& v) { return ltl::flatten(v[0], 1, 2); }, {leaf({2, 2, 2, 2}, 112)});
  // Through a transposed (non-contiguous) intermediate.
  require_gradcheck([](const auto& v) { return ltl::reshape(ltl::softmax(v[0], 0), {-1}); }, {leaf({3, 2}, 113)});
  REQUIRE_THROWS_AS(ltl::reshape(x, {5, -1}), ltl::shape_error);
  REQUIRE_THROWS_AS(ltl::flatten(x, 2, 1), ltl::shape_error);
}
