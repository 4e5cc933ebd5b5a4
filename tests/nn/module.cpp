// Tests of nn/module.hpp (parameter registration, state round trip) and nn/models/resnet_cifar.hpp
// (parameter counts, points, a training-mode backward).
#include <catch2/catch.hpp>
#include <ltlearn/nn/linear.hpp>
#include <ltlearn/nn/models/resnet_cifar.hpp>
#include <ltlearn/ops/reduce.hpp>

#include <string>
#include <vector>

TEST_CASE("modules register parameters and round-trip state", "[nn]") {
  ltl::rng g(0);
  ltl::nn::linear<double> fc({.in_features = 4, .out_features = 3}, g);
  REQUIRE(fc.num_parameters() == 15);
  auto named = fc.named_parameters();
  REQUIRE(named.size() == 2);
  REQUIRE(named[0].first == "weight");
  ltl::rng g2(1);
  ltl::nn::linear<double> other({.in_features = 4, .out_features = 3}, g2);
  REQUIRE(other.weight.value().to_vector() != fc.weight.value().to_vector());
  other.load_state_dict(fc.state_dict());
  REQUIRE(other.weight.value().to_vector() == fc.weight.value().to_vector());
  ltl::nn::linear<double> wrong({.in_features = 5, .out_features = 3}, g2);
  REQUIRE_THROWS_AS(wrong.load_state_dict(fc.state_dict()), ltl::shape_error);
  static_assert(ltl::nn::module_like<ltl::nn::linear<double>>);
}

TEST_CASE("resnet_cifar: parameter counts, points and a training-mode backward", "[nn][models]") {
  ltl::nn::resnet_cifar<float> r32({.depth = 32, .num_classes = 10});
  REQUIRE(r32.num_parameters() == 464154);  // 0.46 M as in He et al. / the LDAM code base
  ltl::nn::resnet_cifar<float> r20({.depth = 20, .num_classes = 10});
  REQUIRE(r20.num_parameters() == 269722);
  ltl::nn::resnet_cifar<float> r110({.depth = 110, .num_classes = 10});
  REQUIRE(r110.num_parameters() == 1727962);
  REQUIRE(r32.points() == std::vector<std::string>{"stem", "stage1", "stage2", "stage3", "pool", "fc"});
  REQUIRE(r32.group_point(2) == r32.point("stage1"));
  REQUIRE_THROWS_AS(r32.point("layer9"), ltl::value_error);
  REQUIRE_THROWS_AS(ltl::nn::resnet_cifar<float>({.depth = 33}), ltl::value_error);

  ltl::nn::resnet_cifar<float> m({.depth = 20, .num_classes = 3, .in_channels = 1, .seed = 3});
  ltl::rng g(5);
  ltl::tensor<float> x(ltl::shape{4, 1, 12, 12});
  for (ltl::index_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(g.normal());
  ltl::variable<float> in(x);
  auto h = m.run(in, -1, m.point("stage2"));
  REQUIRE(h.sizes() == ltl::shape{4, 32, 6, 6});
  auto z = m.run(h, m.point("stage2"), m.last_point());
  REQUIRE(z.sizes() == ltl::shape{4, 3});
  auto f = m.features(in);
  REQUIRE(f.sizes() == ltl::shape{4, 64});
  auto loss = ltl::sum(z * z);
  loss.backward();
  for (auto& [name, p] : m.named_parameters()) {
    INFO(name);
    REQUIRE(p.grad().defined());
  }
  // running statistics moved in training mode, not in eval mode
  auto bn_mean = m.state_dict().at("stem.1.running_mean").clone();
  REQUIRE(bn_mean.to_vector() != std::vector<float>(16, 0.0f));
  m.eval();
  const auto z_eval = m.forward(in).value();
  REQUIRE(m.state_dict().at("stem.1.running_mean").to_vector() == bn_mean.to_vector());
  // Inference (eval + no_grad) folds batch norm into the convolutions' epilogues: the same
  // logits as eval mode with gradients enabled (separate batch-norm passes), to float rounding.
  // The running statistics moved in the steps above; make them far from (0, 1) to matter.
  for (auto& [name, t] : m.state_dict()) {
    if (name.find("running_var") != std::string::npos) t.fill_(2.5f);
    if (name.find("running_mean") != std::string::npos) t.fill_(-0.3f);
  }
  const auto z_grad = m.forward(in).value();
  ltl::no_grad_guard ng;
  const auto z_inf = m.forward(in).value();
  const auto a = z_grad.to_vector(), b = z_inf.to_vector();
  REQUIRE(a != z_eval.to_vector());
  for (std::size_t i = 0; i < a.size(); ++i) REQUIRE(b[i] == Approx(a[i]).epsilon(1e-4).margin(1e-5));
}
