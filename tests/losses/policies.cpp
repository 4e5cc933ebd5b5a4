// Tests of losses/policies.hpp and losses/fused_loss.hpp: the papers' per-class terms, the fused
// loss against the unfused reference (tests/reference/loss_reference.hpp), NaN propagation and
// double-precision gradient checks.
#include <catch2/catch.hpp>

#include "reference/loss_reference.hpp"

#include <ltlearn/autograd/gradcheck.hpp>
#include <ltlearn/backends/cpu/loss.hpp>
#include <ltlearn/core/rng.hpp>
#include <ltlearn/losses/fused_loss.hpp>
#include <ltlearn/losses/policies.hpp>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

using ltl::index_t;

TEST_CASE("loss policies give the papers' per-class terms", "[losses]") {
  namespace l = ltl::losses;
  const std::vector<double> n{5000, 500, 50};
  auto cdt = l::make_terms(l::cdt{.gamma = 0.5}, n, 0);
  REQUIRE(cdt.temperatures[0] == Approx(1.0));
  REQUIRE(cdt.temperatures[2] == Approx(10.0));
  REQUIRE(l::make_terms(l::cdt{.gamma = 0.5, .start_epoch = 3}, n, 2).temperatures.empty());
  auto ld = l::make_terms(l::ldam{}, n, 0);
  REQUIRE(ld.margins[2] == Approx(0.5));
  REQUIRE(ld.margins[0] == Approx(0.5 * std::pow(50.0 / 5000.0, 0.25)));
  REQUIRE(ld.scale == 30);
  auto la = l::make_terms(l::logit_adjust{.tau = 1}, n, 0);
  REQUIRE(la.offsets[1] == Approx(std::log(500.0 / 5550.0)));
  auto cb = l::make_terms(l::class_balanced_weights{.beta = 0.9999}, n, 0);
  double s = 0;
  for (double w : cb.weights) s += w;
  REQUIRE(s == Approx(3.0));
  REQUIRE(cb.weights[2] / cb.weights[0] == Approx((1 - std::pow(0.9999, 5000)) / (1 - std::pow(0.9999, 50))));
  auto inv = l::make_terms(l::inverse_frequency_weights{.gamma = 1}, n, 0);
  REQUIRE(inv.weights[2] / inv.weights[0] == Approx(100.0));
  // DRW switches at its epoch; composition keeps each policy's fields
  auto ldam_drw = l::compose(l::ldam{}, l::drw(160));
  REQUIRE(l::make_terms(ldam_drw, n, 159).weights.empty());
  auto after = l::make_terms(ldam_drw, n, 160);
  REQUIRE(after.weights.size() == 3);
  REQUIRE(after.margins.size() == 3);
  REQUIRE_THROWS_AS(l::make_terms(l::cdt{}, std::vector<double>{10, 0}, 0), ltl::value_error);
}

TEST_CASE("fused loss equals the unfused reference for every variant", "[losses][fused]") {
  namespace l = ltl::losses;
  struct variant {
    const char* name;
    ltl::loss_terms (*make)(const std::vector<double>&);
  };
  const variant variants[] = {
      {"ce", [](const std::vector<double>& n) { return l::make_terms(l::cross_entropy{}, n, 0); }},
      {"cdt", [](const std::vector<double>& n) { return l::make_terms(l::cdt{.gamma = 0.3}, n, 0); }},
      {"ldam", [](const std::vector<double>& n) { return l::make_terms(l::ldam{}, n, 0); }},
      {"la", [](const std::vector<double>& n) { return l::make_terms(l::logit_adjust{.tau = 1.0}, n, 0); }},
      {"cb-focal", [](const std::vector<double>& n) { return l::make_terms(l::compose(l::class_balanced_weights{}, l::focal{.gamma = 1.0}), n, 0); }},
      {"ldam-drw", [](const std::vector<double>& n) { return l::make_terms(l::compose(l::ldam{}, l::drw(0)), n, 5); }},
      {"cdt-drw", [](const std::vector<double>& n) { return l::make_terms(l::compose(l::cdt{.gamma = 0.2}, l::drw(0)), n, 5); }},
      {"focal-0.5", [](const std::vector<double>& n) { return l::make_terms(l::focal{.gamma = 0.5}, n, 0); }},
  };
  // Besides the grid: one row of the pipelined path (prologue, one sweep, drain), rows
  // with a partial last vector, and a [260, 8142] gradient (8.5 MB) that is streamed past the
  // cache with unaligned row starts (the threshold set to 8 MiB for it, as on a machine with a
  // 21 MiB last-level cache; for the first variants only, to keep the reference cheap).
  // Rows of ≤ 16 classes run in transposed blocks of sixteen: whole and partial blocks, one
  // class, exactly sixteen, and (520, 11) split over two threads at a row that is not a block
  // boundary (260 = 16·16 + 4).
  const std::pair<index_t, index_t> sizes[] = {{4, 3},    {16, 10},  {37, 16},   {5, 1},     {520, 11},
                                               {8, 100},  {3, 8142}, {1, 300},   {7, 1001},  {260, 8142}};
  // The streamed-store path has no public switch (the fused loss takes no options; the choice is
  // a cache-size threshold), so the test lowers the threshold itself: set_stream_threshold is the
  // CPU backend's one knob for it, the loss is still computed through the public entry point.
  namespace ls = ltl::detail::loss_simd;
  struct restore {
    index_t bytes;
    ~restore() { ls::set_stream_threshold(bytes); }
  } restore_threshold{ls::set_stream_threshold(index_t{8} << 20)};
  for (auto [B, C] : sizes) {
    ltl::rng g(B * 1000 + C);
    std::vector<double> n(static_cast<std::size_t>(C));
    for (index_t c = 0; c < C; ++c) n[static_cast<std::size_t>(c)] = std::floor(5000.0 * std::pow(0.01, double(c) / double(std::max<index_t>(1, C - 1)))) + 1;
    ltl::tensor<float> z(ltl::shape{B, C});
    for (index_t i = 0; i < z.numel(); ++i) z.data()[i] = static_cast<float>(g.normal(0, 0.3));
    ltl::tensor<std::int64_t> y(ltl::shape{B});
    for (index_t i = 0; i < B; ++i) y.data()[i] = static_cast<std::int64_t>(g.below(static_cast<std::uint64_t>(C)));
    ltl::tensor<float> sw(ltl::shape{B});
    for (index_t i = 0; i < B; ++i) sw.data()[i] = static_cast<float>(g.uniform(0.2, 1.0));
    for (const auto& v : variants) {
      if (B * C > 1'000'000 && &v - variants > 3) break;
      for (bool weighted : {false, true}) {
        INFO(v.name << " B=" << B << " C=" << C << " sample weights " << weighted);
        const auto terms = v.make(n);
        ltl::variable<float> zf(z.clone(), true), zr(z.clone(), true);
        auto lf = ltl::logit_adjusted_loss(zf, y, terms, weighted ? sw : ltl::tensor<float>());
        auto lr = ltl_ref::logit_adjusted_loss(zr, y, terms, weighted ? sw : ltl::tensor<float>());
        REQUIRE(lf.value().item() == Approx(lr.value().item()).epsilon(1e-5));
        lf.backward();
        lr.backward();
        const auto gf = zf.grad().to_vector(), gr = zr.grad().to_vector();
        double max_ref = 0, max_diff = 0;
        for (std::size_t i = 0; i < gf.size(); ++i) {
          max_ref = std::max(max_ref, std::abs(double(gr[i])));
          max_diff = std::max(max_diff, std::abs(double(gf[i]) - double(gr[i])));
        }
        REQUIRE(max_diff <= 1e-5 * max_ref + 1e-9);
      }
    }
  }
}

TEST_CASE("fused loss is NaN when a logit is NaN, on every row length", "[losses][fused]") {
  namespace l = ltl::losses;
  for (index_t C : {3, 16, 100, 1001}) {
    const std::vector<double> n(static_cast<std::size_t>(C), 10.0);
    for (const auto& terms : {l::make_terms(l::cross_entropy{}, n, 0), l::make_terms(l::cdt{.gamma = 0.3}, n, 0)}) {
      for (index_t where : {index_t{0}, C - 1}) {
        INFO("C=" << C << " NaN at class " << where);
        ltl::tensor<float> z(ltl::shape{4, C});
        for (index_t i = 0; i < z.numel(); ++i) z.data()[i] = -1.0f + 0.01f * static_cast<float>(i % 7);
        z.data()[2 * C + where] = NAN;
        const auto y = ltl::tensor<std::int64_t>::from({4}, {0, 1, 2, 0});
        ltl::tensor<float> dz(ltl::shape{4, C});
        REQUIRE(std::isnan(ltl::cpu::fused_loss(z, y, terms, &dz)));
      }
    }
  }
}

TEST_CASE("fused loss gradients pass a double-precision gradient check", "[losses][fused][grad]") {
  namespace l = ltl::losses;
  const std::vector<double> n{300, 60, 12, 5};
  const ltl::loss_terms all[] = {
      l::make_terms(l::cross_entropy{}, n, 0), l::make_terms(l::cdt{.gamma = 0.4}, n, 0),
      l::make_terms(l::ldam{.max_margin = 0.5, .scale = 5}, n, 0), l::make_terms(l::logit_adjust{}, n, 0),
      l::make_terms(l::compose(l::class_balanced_weights{.beta = 0.99}, l::focal{.gamma = 2}), n, 0)};
  ltl::rng g(3);
  ltl::tensor<double> z(ltl::shape{5, 4});
  for (index_t i = 0; i < z.numel(); ++i) z.data()[i] = g.normal();
  const auto y = ltl::tensor<std::int64_t>::from({5}, {0, 3, 2, 1, 3});
  for (const auto& t : all) {
    auto r = ltl::gradcheck<ltl::cpu::device>(
        [&](const auto& x) { return ltl::logit_adjusted_loss(x[0], y, t); }, {ltl::variable<double>(z, true)});
    INFO(r.report);
    REQUIRE(r.ok);
  }
  REQUIRE_THROWS_AS(ltl::logit_adjusted_loss(ltl::variable<double>(z), ltl::tensor<std::int64_t>::from({5}, {0, 4, 0, 0, 0}), all[0]),
                    ltl::value_error);
}
