// The ImageNet ResNets / ResNeXt (nn/models/resnet.hpp) and the few-shot ResNet-12
// (nn/models/resnet12.hpp): parameter counts against the published numbers, the named points,
// a training-mode forward + backward, batch-norm statistics in eval mode, initialisation scales
// and hand-computed block outputs.
#include <catch2/catch.hpp>
#include <ltlearn/nn/models/resnet.hpp>
#include <ltlearn/nn/models/resnet12.hpp>
#include <ltlearn/ops/reduce.hpp>

#include "support/model_checks.hpp"

#include <array>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace {

using ltl::index_t;
using ltl::shape;

using ltl_test::random_input;

/// Runs the model point by point, checking each point's shape, then a backward through a loss
/// that depends on every logit; every parameter must receive a gradient of its own shape.
/// Returns the logits.
template <class Model>
ltl::variable<float> check_points_and_backward(Model& m, const ltl::variable<float>& x,
                                               const std::vector<shape>& expected) {
  REQUIRE(m.points().size() == expected.size());
  const auto h = ltl_test::run_points(m, x, expected);
  ltl_test::backward_through_logits(m, h, [](const auto& param) { REQUIRE(param.grad().sizes() == param.sizes()); });
  return h;
}

/// Running statistics move in training mode and stay put in eval mode.
template <class Model>
void check_eval_keeps_running_stats(Model& m, const ltl::variable<float>& x) {
  std::map<std::string, std::vector<float>> before;
  for (auto& [name, b] : m.named_buffers()) before.emplace(name, b.to_vector());
  // The training-mode forward before this call moved the running means away from 0.
  int moved = 0;
  for (auto& [name, b] : m.named_buffers())
    if (name.find("running_mean") != std::string::npos && b.to_vector() != std::vector<float>(b.numel(), 0.0f)) ++moved;
  REQUIRE(moved > 0);
  m.eval();
  const auto z1 = m.forward(x).value().to_vector();
  const auto z2 = m.forward(x).value().to_vector();
  for (auto& [name, b] : m.named_buffers()) {
    INFO(name);
    REQUIRE(b.to_vector() == before.at(name));
  }
  REQUIRE(z1 == z2);  // eval mode is a deterministic function of the input
  {
    // Inference (eval + no_grad) folds batch norm into the convolutions (nn::conv_bn): the same
    // logits to float rounding, and the running statistics untouched.
    ltl::no_grad_guard ng;
    const auto z3 = m.forward(x).value().to_vector();
    REQUIRE(z3.size() == z1.size());
    for (std::size_t i = 0; i < z1.size(); ++i) REQUIRE(z3[i] == Approx(z1[i]).epsilon(1e-4).margin(1e-5));
  }
  m.train();
}

double sample_std(const ltl::tensor<float>& t) {
  const auto v = t.to_vector();
  double s = 0, s2 = 0;
  for (float x : v) {
    s += x;
    s2 += static_cast<double>(x) * x;
  }
  const double n = static_cast<double>(v.size()), mean = s / n;
  return std::sqrt(s2 / n - mean * mean);
}

}  // namespace

TEST_CASE("resnet: parameter counts match torchvision", "[nn][models]") {
  using ltl::nn::resnet;
  // torchvision.models.resnetXX(num_classes=1000): sum(p.numel() for p in m.parameters()).
  REQUIRE(resnet<float>({.depth = 18}).num_parameters() == 11'689'512);
  REQUIRE(resnet<float>({.depth = 34}).num_parameters() == 21'797'672);
  REQUIRE(resnet<float>({.depth = 50}).num_parameters() == 25'557'032);
  REQUIRE(resnet<float>({.depth = 101}).num_parameters() == 44'549'160);
  REQUIRE(resnet<float>({.depth = 152}).num_parameters() == 60'192'808);
  REQUIRE(resnet<float>(ltl::nn::resnext50_32x4d_options()).num_parameters() == 25'028'904);
  // ResNet-10 (not in torchvision; BasicBlock, [1, 1, 1, 1]), 1000 classes:
  //   stem   conv 3·64·49 + BN 2·64                                                =     9,536
  //   stage1 2·(64·64·9) + 2·(2·64)                                                =    73,984
  //   stageK in → out (stride 2): 9·in·out + 9·out² + in·out (1×1 proj) + 3·(2·out) BNs
  //          64 → 128: 73,728 + 147,456 + 8,192 + 768                              =   230,144
  //          128 → 256: 294,912 + 589,824 + 32,768 + 1,536                         =   919,040
  //          256 → 512: 1,179,648 + 2,359,296 + 131,072 + 3,072                    = 3,673,088
  //   fc     512·1000 + 1000                                                       =   513,000
  //                                                                          total = 5,418,792
  REQUIRE(resnet<float>({.depth = 10}).num_parameters() == 5'418'792);
  // Only the classifier depends on C, only the stem on the input channels.
  REQUIRE(resnet<float>({.depth = 10, .num_classes = 10}).num_parameters() == 5'418'792 - 990 * 513);
  REQUIRE(resnet<float>({.depth = 10, .in_channels = 1}).num_parameters() == 5'418'792 - 2 * 64 * 49);
  // Cosine classifier: 512·C weights, no bias.
  REQUIRE(resnet<float>({.depth = 10, .num_classes = 10, .normed_classifier = true}).num_parameters() ==
          5'418'792 - 513 * 1000 + 512 * 10);
}

TEST_CASE("resnet12: parameter count", "[nn][models]") {
  // Block in → out: three 3×3 convs 9·in·out + 2·9·out², a 1×1 projection in·out and four BNs
  // 4·2·out: 10·in·out + 18·out² + 8·out.
  //   3 → 64: 1,920 + 73,728 + 512 = 76,160;  64 → 160: 102,400 + 460,800 + 1,280 = 564,480;
  //   160 → 320: 512,000 + 1,843,200 + 2,560 = 2,357,760;  320 → 640: 2,048,000 + 7,372,800 + 5,120
  //   = 9,425,920.  Backbone: 12,424,320 (≈ 12.4 M, as quoted for ResNet-12); fc 640·C + C.
  ltl::nn::resnet12<float> m({});
  REQUIRE(m.num_parameters() == 12'424'320 + 641 * 351);
  REQUIRE(ltl::nn::resnet12<float>({.num_classes = 100}).num_parameters() == 12'424'320 + 641 * 100);
  REQUIRE(m.feature_dim() == 640);
}

TEST_CASE("resnet: names, shapes and errors", "[nn][models]") {
  ltl::nn::resnet<float> r18({.depth = 18, .num_classes = 7});
  REQUIRE(r18.points() == std::vector<std::string>{"stem", "stage1", "stage2", "stage3", "stage4", "pool", "fc"});
  REQUIRE(r18.group_point(1) == r18.point("stem"));
  REQUIRE(r18.group_point(2) == r18.point("stage1"));
  REQUIRE(r18.group_point(5) == r18.point("stage4"));
  REQUIRE_THROWS_AS(r18.group_point(6), ltl::value_error);
  REQUIRE(r18.feature_dim() == 512);

  const auto sd = r18.state_dict();
  REQUIRE(sd.at("stem.0.weight").sizes() == shape{64, 3, 7, 7});
  REQUIRE(sd.at("stem.1.running_var").sizes() == shape{64});
  REQUIRE(sd.at("stage1.1.conv2.weight").sizes() == shape{64, 64, 3, 3});
  REQUIRE(sd.count("stage1.0.downsample.0.weight") == 0);  // identity shortcut
  REQUIRE(sd.at("stage2.0.conv1.weight").sizes() == shape{128, 64, 3, 3});
  REQUIRE(sd.at("stage2.0.downsample.0.weight").sizes() == shape{128, 64, 1, 1});
  REQUIRE(sd.at("stage4.1.bn2.running_mean").sizes() == shape{512});
  REQUIRE(sd.at("fc.weight").sizes() == shape{7, 512});
  REQUIRE(sd.at("fc.bias").sizes() == shape{7});


  REQUIRE_THROWS_AS(ltl::nn::resnet<float>({.depth = 20}), ltl::value_error);
  REQUIRE_THROWS_AS(ltl::nn::resnet<float>({.depth = 18, .groups = 32, .width_per_group = 4}), ltl::value_error);
  REQUIRE_THROWS_AS(ltl::nn::resnet<float>({.depth = 50, .num_classes = 0}), ltl::value_error);
  REQUIRE_THROWS_AS(ltl::nn::resnet<float>({.depth = 50, .groups = 0}), ltl::value_error);
  REQUIRE(ltl::nn::resnet_layout_for(101).blocks == std::array<int, 4>{3, 4, 23, 3});
  REQUIRE(ltl::nn::resnet_layout_for(152).blocks == std::array<int, 4>{3, 8, 36, 3});
}

TEST_CASE("resnet: ResNeXt layout, initialisation as torchvision, reproducible from the seed", "[nn][models]") {
  ltl::nn::resnet<float> rx(ltl::nn::resnext50_32x4d_options(10, 1));
  const auto s = rx.state_dict();
  REQUIRE(rx.feature_dim() == 2048);
  REQUIRE(s.at("stage1.0.conv1.weight").sizes() == shape{128, 64, 1, 1});
  REQUIRE(s.at("stage1.0.conv2.weight").sizes() == shape{128, 4, 3, 3});  // 32 groups of 4
  REQUIRE(s.at("stage1.0.conv3.weight").sizes() == shape{256, 128, 1, 1});
  REQUIRE(s.at("stage1.0.downsample.0.weight").sizes() == shape{256, 64, 1, 1});  // channels change
  REQUIRE(s.count("stage1.1.downsample.0.weight") == 0);
  REQUIRE(s.at("stage4.0.conv2.weight").sizes() == shape{1024, 32, 3, 3});
  REQUIRE(s.at("fc.weight").sizes() == shape{10, 2048});
  // Kaiming normal, fan_out = weight.size(0)·KH·KW (PyTorch counts all output maps of a grouped
  // conv): the grouped 3×3 conv of stage 1 has std √(2/(128·9)), not √(2/(4·9)).
  REQUIRE(sample_std(s.at("stage1.0.conv2.weight")) == Approx(std::sqrt(2.0 / (128 * 9))).epsilon(0.05));
  REQUIRE(sample_std(s.at("stage2.0.conv3.weight")) == Approx(std::sqrt(2.0 / 512)).epsilon(0.05));
  REQUIRE(sample_std(s.at("stem.0.weight")) == Approx(std::sqrt(2.0 / (64 * 49))).epsilon(0.05));
  // fc: PyTorch's default U(±1/√F).
  const auto fc = s.at("fc.weight").to_vector();
  const float bound = 1.0f / std::sqrt(2048.0f);
  for (float w : fc) REQUIRE(std::abs(w) <= bound);
  REQUIRE(sample_std(s.at("fc.weight")) == Approx(bound / std::sqrt(3.0)).epsilon(0.1));
  REQUIRE(s.at("stage3.2.bn3.weight").to_vector() == std::vector<float>(1024, 1.0f));
  REQUIRE(s.at("stage3.2.bn3.bias").to_vector() == std::vector<float>(1024, 0.0f));

  ltl::nn::resnet<float> a({.depth = 10, .num_classes = 3, .seed = 9}), b({.depth = 10, .num_classes = 3, .seed = 9}),
      c({.depth = 10, .num_classes = 3, .seed = 10});
  const auto sa = a.state_dict(), sb = b.state_dict(), sc = c.state_dict();
  for (auto& [name, t] : sa) {
    INFO(name);
    REQUIRE(t.to_vector() == sb.at(name).to_vector());
  }
  REQUIRE(sa.at("stage3.0.conv1.weight").to_vector() != sc.at("stage3.0.conv1.weight").to_vector());
}

TEST_CASE("resnet-18: forward and backward at every point, eval mode", "[nn][models]") {
  ltl::nn::resnet<float> m({.depth = 18, .num_classes = 5, .seed = 2});
  const auto x = random_input(shape{2, 3, 32, 32}, 1);
  check_points_and_backward(m, x,
                            {{2, 64, 8, 8}, {2, 64, 8, 8}, {2, 128, 4, 4}, {2, 256, 2, 2}, {2, 512, 1, 1}, {2, 512},
                             {2, 5}});
  REQUIRE(m.state_dict().at("stage2.0.downsample.1.running_mean").to_vector() != std::vector<float>(128, 0.0f));
  check_eval_keeps_running_stats(m, x);
}

TEST_CASE("resnet-50 and resnext-50: forward and backward at every point", "[nn][models]") {
  // 16×16 keeps it fast; stage 3 and 4 then run at 1×1 (a 3×3 conv with padding 1 and stride 2
  // maps 1 → 1), which still exercises every layer.
  const auto x = random_input(shape{2, 3, 16, 16}, 3);
  const std::vector<shape> pts{{2, 64, 4, 4},   {2, 256, 4, 4}, {2, 512, 2, 2}, {2, 1024, 1, 1},
                               {2, 2048, 1, 1}, {2, 2048},      {2, 4}};
  ltl::nn::resnet<float> r50({.depth = 50, .num_classes = 4, .seed = 4});
  check_points_and_backward(r50, x, pts);
  check_eval_keeps_running_stats(r50, x);
  ltl::nn::resnet<float> rx(ltl::nn::resnext50_32x4d_options(4, 5));
  check_points_and_backward(rx, x, pts);
}

TEST_CASE("resnet: zero_init_residual makes every block start as its shortcut", "[nn][models]") {
  ltl::nn::resnet<float> m({.depth = 18, .num_classes = 3, .in_channels = 1, .zero_init_residual = true});
  const auto s = m.state_dict();
  REQUIRE(s.at("stage1.0.bn2.weight").to_vector() == std::vector<float>(64, 0.0f));
  REQUIRE(s.at("stage4.1.bn2.weight").to_vector() == std::vector<float>(512, 0.0f));
  REQUIRE(s.at("stage4.1.bn1.weight").to_vector() == std::vector<float>(512, 1.0f));
  REQUIRE(s.at("stage2.0.downsample.1.weight").to_vector() == std::vector<float>(128, 1.0f));
  // Stage 1 has identity shortcuts and the stem ends in ReLU + max-pool (≥ 0), so each block is
  // relu(0 + x) = x: stage 1 reproduces the stem output exactly.
  const auto x = random_input(shape{2, 1, 20, 20}, 7);
  auto stem = m.run(x, -1, m.point("stem"));
  auto s1 = m.run(stem, m.point("stem"), m.point("stage1"));
  REQUIRE(s1.value().to_vector() == stem.value().to_vector());
  ltl::nn::resnet<float> b({.depth = 50, .num_classes = 3, .zero_init_residual = true});
  REQUIRE(b.state_dict().at("stage3.5.bn3.weight").to_vector() == std::vector<float>(1024, 0.0f));
  REQUIRE(b.state_dict().at("stage3.5.bn2.weight").to_vector() == std::vector<float>(256, 1.0f));
}

TEST_CASE("resnet: cosine classifier gives logits in [-1, 1]", "[nn][models]") {
  ltl::nn::resnet<float> m({.depth = 10, .num_classes = 6, .normed_classifier = true, .seed = 3});
  const auto z = m.forward(random_input(shape{3, 3, 16, 16}, 2));
  REQUIRE(z.sizes() == shape{3, 6});
  for (float v : z.value().to_vector()) REQUIRE(std::abs(v) <= 1.0f + 1e-5f);
  REQUIRE(m.state_dict().count("fc.bias") == 0);
}

TEST_CASE("basic_block and resnet12_block: hand-computed outputs", "[nn][models]") {
  // One channel, identity 3×3 kernels (centre tap 1), 1×1 projection weight 1, eval-mode BN with
  // the initial statistics (mean 0, var 1): every BN multiplies by s = 1/√(1 + 1e-5).
  const double s = 1.0 / std::sqrt(1.0 + 1e-5);
  auto set_identity = [](ltl::nn::conv2d<double>& c) {
    auto w = c.weight.value();
    w.zero_();
    w.data()[w.numel() / 2] = 1.0;
  };
  ltl::rng g(0);
  const ltl::variable<double> x(ltl::tensor<double>::from(shape{1, 1, 2, 2}, {1.0, -2.0, 3.0, -4.0}));

  ltl::nn::basic_block<double> bb(1, 1, 1, 1, 64, g);
  REQUIRE(bb.downsample == nullptr);
  set_identity(*bb.conv1);
  set_identity(*bb.conv2);
  bb.eval();
  // relu(s·relu(s·x) + x): positive x → (s² + 1)·x, negative x → relu(x) = 0.
  const auto yb = bb.forward(x).value().to_vector();
  REQUIRE(yb[0] == Approx(s * s + 1));
  REQUIRE(yb[1] == 0.0);
  REQUIRE(yb[2] == Approx(3 * (s * s + 1)));
  REQUIRE(yb[3] == 0.0);

  ltl::nn::resnet12_block<double> rb(1, 1, 0.1, g);
  for (auto* c : {rb.conv1.get(), rb.conv2.get(), rb.conv3.get()}) set_identity(*c);
  auto proj = rb.state_dict().at("downsample.0.weight");
  proj.fill_(1.0);
  rb.eval();
  // l(v) = v for v > 0 else 0.1·v. Per element: l(s·l(s·l(s·x)) + s·x) — with the last LeakyReLU
  // after the add — then the 2×2 max-pool keeps the largest. x = 3: 3s³ + 3s.
  auto y = rb.forward(x);
  REQUIRE(y.sizes() == shape{1, 1, 1, 1});
  REQUIRE(y.value().item() == Approx(3 * s * s * s + 3 * s));
  // All negative: the largest is x = −1: 0.1·(s·(0.1·(s·(0.1·(−s)))) − s) = −0.001s³ − 0.1s.
  const ltl::variable<double> xn(ltl::tensor<double>::from(shape{1, 1, 2, 2}, {-1.0, -2.0, -3.0, -4.0}));
  REQUIRE(rb.forward(xn).value().item() == Approx(-0.001 * s * s * s - 0.1 * s));
}

TEST_CASE("resnet12: points, forward and backward, eval mode", "[nn][models]") {
  ltl::nn::resnet12<float> m({.num_classes = 6, .seed = 1});
  REQUIRE(m.points() == std::vector<std::string>{"stage1", "stage2", "stage3", "stage4", "pool", "fc"});
  // No convolution precedes block 1, so group k is block k and MFW's default (group 2) is stage2.
  REQUIRE(m.group_point(1) == m.point("stage1"));
  REQUIRE(m.group_point(2) == m.point("stage2"));
  REQUIRE_THROWS_AS(m.group_point(5), ltl::value_error);
  const auto sd = m.state_dict();
  REQUIRE(sd.at("stage1.conv1.weight").sizes() == shape{64, 3, 3, 3});
  REQUIRE(sd.at("stage3.conv3.weight").sizes() == shape{320, 320, 3, 3});
  REQUIRE(sd.at("stage4.downsample.0.weight").sizes() == shape{640, 320, 1, 1});
  REQUIRE(sd.at("stage4.downsample.1.running_var").sizes() == shape{640});
  REQUIRE(sample_std(sd.at("stage3.conv2.weight")) == Approx(std::sqrt(2.0 / (320 * 9))).epsilon(0.05));

  const auto x = random_input(shape{2, 3, 32, 32}, 11);
  check_points_and_backward(
      m, x, {{2, 64, 16, 16}, {2, 160, 8, 8}, {2, 320, 4, 4}, {2, 640, 2, 2}, {2, 640}, {2, 6}});
  check_eval_keeps_running_stats(m, x);

  // 84×84 Tiered-ImageNet images end as 5×5 maps (reduced widths keep this cheap).
  ltl::nn::resnet12<float> narrow({.num_classes = 3, .widths = {4, 4, 8, 8}});
  const auto h = narrow.run(random_input(shape{1, 3, 84, 84}, 2), -1, narrow.point("stage4"));
  REQUIRE(h.sizes() == shape{1, 8, 5, 5});
  REQUIRE(narrow.features(random_input(shape{1, 3, 84, 84}, 2)).sizes() == shape{1, 8});

  REQUIRE_THROWS_AS(ltl::nn::resnet12<float>({.num_classes = 0}), ltl::value_error);
  REQUIRE_THROWS_AS(ltl::nn::resnet12<float>({.widths = {64, 0, 320, 640}}), ltl::value_error);
}
