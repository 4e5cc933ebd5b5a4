// The ImageNet ResNets at 224×224 (stem, stage shapes, a training step) and the torchvision
// state-dict mapping (nn/models/torchvision.hpp): the name table against torchvision's own
// (tests/reference/torchvision_resnet50_names.txt, written once by torchvision), export → import
// round trips, and the errors for missing, unexpected and mis-shaped keys. Numerical parity with
// torchvision itself is scripts/torchvision_parity.py (needs python3-torch).
#include <catch2/catch.hpp>
#include <ltlearn/nn/models/torchvision.hpp>
#include <ltlearn/ops/reduce.hpp>

#include "support.hpp"
#include "support/model_checks.hpp"
#include "support/module_state.hpp"
#include "support/temp_dir.hpp"

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {

using ltl::index_t;
using ltl::shape;
namespace nn = ltl::nn;

using ltl_test::random_input;
using ltl_test::state_values;

/// Gives every batch-norm buffer distinct values, so that a round trip that dropped or swapped
/// buffers would show.
void scramble_buffers(nn::module<float>& m, std::uint64_t seed) {
  ltl::rng g(seed);
  for (auto& [name, b] : m.named_buffers()) {
    auto t = b;
    for (index_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<float>(0.5 + g.uniform());
  }
}

}  // namespace

TEST_CASE("resnet at 224: 7x7/2 stem, 3x3/2 max pool, stage shapes, a training step", "[nn][models][torchvision]") {
  nn::resnet<float> m({.depth = 10, .num_classes = 7, .seed = 3});
  const auto& stem = m.stage(m.point("stem")).children();
  REQUIRE(stem.size() == 4);
  const auto& conv = dynamic_cast<const nn::conv2d<float>&>(*stem[0].second);
  REQUIRE(conv.weight.sizes() == shape{64, 3, 7, 7});
  const auto x = random_input({2, 3, 224, 224}, 5);
  // conv 7x7/2 pad 3: 224 → 112; max pool 3x3/2 pad 1: 112 → 56; stages: 56, 28, 14, 7.
  REQUIRE(m.stage(0).children().size() == 4);
  auto after_conv = dynamic_cast<nn::conv2d<float>&>(*stem[0].second).forward(x);
  REQUIRE(after_conv.sizes() == shape{2, 64, 112, 112});
  const std::vector<shape> expected{{2, 64, 56, 56}, {2, 64, 56, 56}, {2, 128, 28, 28}, {2, 256, 14, 14},
                                    {2, 512, 7, 7},  {2, 512},        {2, 7}};
  const auto h = ltl_test::run_points(m, x, expected);
  ltl_test::backward_through_logits(m, h, [](const auto& param) {
    double norm = 0;
    for (float v : param.grad().to_vector()) norm += double(v) * v;
    REQUIRE(std::isfinite(norm));
    REQUIRE(norm > 0);
  });
}

TEST_CASE("resnet-50 and resnext-50 at 224: inference shapes at every stage", "[nn][models][torchvision]") {
  for (auto arch : {"resnet50", "resnext50_32x4d"}) {
    INFO(arch);
    nn::resnet<float> m(nn::torchvision_resnet_options(arch, 1000, 1));
    m.eval();
    ltl::no_grad_guard ng;
    const std::vector<shape> expected{{1, 64, 56, 56},  {1, 256, 56, 56}, {1, 512, 28, 28}, {1, 1024, 14, 14},
                                      {1, 2048, 7, 7}, {1, 2048},        {1, 1000}};
    const auto h = ltl_test::run_points(m, random_input({1, 3, 224, 224}, 2), expected);
    double sum = 0;
    for (float v : h.value().to_vector()) sum += std::abs(v);
    REQUIRE(std::isfinite(sum));
  }
}

TEST_CASE("torchvision names: resnet-50 matches torchvision's state dict exactly", "[nn][models][torchvision]") {
  std::ifstream f(std::filesystem::path(LTL_TEST_REFERENCE_DIR) / "torchvision_resnet50_names.txt");
  REQUIRE(f.good());
  std::vector<std::pair<std::string, shape>> want;
  for (std::string line; std::getline(f, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream is(line);
    std::string name, dims;
    is >> name >> dims;
    shape s;
    if (dims != "-") {
      std::istringstream ds(dims);
      for (std::string d; std::getline(ds, d, ',');) s.push_back(std::stoll(d));
    }
    want.emplace_back(name, s);
  }
  REQUIRE(want.size() == 320);  // torchvision 0.14: 161 parameters, 106 running stats, 53 counters
  nn::resnet<float> m({.depth = 50});
  const auto got = nn::to_torchvision_state(m);
  REQUIRE(got.tensors.size() == want.size());
  for (auto& [name, s] : want) {
    INFO(name);
    const auto it = got.tensors.find(name);
    REQUIRE(it != got.tensors.end());
    REQUIRE(std::visit([](const auto& t) { return t.sizes(); }, it->second) == s);
    if (name.ends_with("num_batches_tracked")) {
      REQUIRE(std::holds_alternative<ltl::tensor<std::int64_t>>(it->second));
    } else {
      // And back: every torchvision name maps to the ltlearn entry of the same shape.
      const auto mine = nn::ltlearn_name(name);
      REQUIRE(mine.has_value());
      REQUIRE(m.state_dict().at(*mine).sizes() == s);
      REQUIRE(nn::torchvision_name(*mine) == name);
    }
  }
  REQUIRE(nn::torchvision_name("stem.0.weight") == "conv1.weight");
  REQUIRE(nn::torchvision_name("stage3.5.downsample.1.running_var") == "layer3.5.downsample.1.running_var");
  REQUIRE(*nn::ltlearn_name("layer1.0.conv1.weight") == "stage1.0.conv1.weight");
  REQUIRE_FALSE(nn::ltlearn_name("layer5.0.conv1.weight").has_value());
  ltl_test::require_error<ltl::value_error>([] { (void)nn::torchvision_name("pool.weight"); }, {"pool.weight"});
  ltl_test::require_error<ltl::value_error>([] { (void)nn::torchvision_resnet_options("vgg16"); }, {"vgg16"});
}

TEST_CASE("torchvision export -> import reproduces every parameter and buffer", "[nn][models][torchvision]") {
  const ltl_test::temp_dir dir("test_models_torchvision");
  for (auto arch : {"resnet10", "resnet18", "resnext50_32x4d"}) {
    INFO(arch);
    nn::resnet<float> a(nn::torchvision_resnet_options(arch, 12, 1));
    scramble_buffers(a, 7);
    const auto path = dir / (std::string(arch) + ".safetensors");
    nn::save_torchvision(path, a);
    nn::resnet<float> b(nn::torchvision_resnet_options(arch, 12, 2));
    const bool differ_before = state_values(a) != state_values(b);
    REQUIRE(differ_before);
    const auto rep = nn::load_torchvision(path, b);
    REQUIRE(rep.classifier_loaded);
    REQUIRE(rep.loaded == static_cast<index_t>(a.state_dict().size()));
    const bool same_after = state_values(a) == state_values(b);
    REQUIRE(same_after);
  }
  // A double-precision file (what torch.double models save) loads into a float model by conversion.
  nn::resnet<double> d({.depth = 10, .num_classes = 3, .seed = 4});
  const auto path = dir / "double.safetensors";
  nn::save_torchvision(path, d);
  REQUIRE(std::holds_alternative<ltl::tensor<double>>(ltl::io::load_safetensors(path).tensors.at("conv1.weight")));
  nn::resnet<float> f({.depth = 10, .num_classes = 3, .seed = 5});
  nn::load_torchvision(path, f);
  const auto dv = d.state_dict().at("stage2.0.conv1.weight").to_vector();
  const auto fv = f.state_dict().at("stage2.0.conv1.weight").to_vector();
  REQUIRE(fv.size() == dv.size());
  for (std::size_t i = 0; i < fv.size(); ++i) REQUIRE(fv[i] == static_cast<float>(dv[i]));
}

TEST_CASE("torchvision import: missing, unexpected and mis-shaped keys name the key and change nothing",
          "[nn][models][torchvision]") {
  nn::resnet<float> src({.depth = 18, .num_classes = 1000, .seed = 1});
  const auto full = nn::to_torchvision_state(src);
  nn::resnet<float> m({.depth = 18, .num_classes = 10, .seed = 2});
  const auto before = state_values(m);

  // A 1000-class classifier into a 10-class model.
  ltl_test::require_error<ltl::io_error>([&] { nn::load_torchvision_state(m, full, "w.safetensors"); },
                                         {"w.safetensors", "'fc.bias'", "[1000]", "[10]", "skip"});
  bool unchanged = state_values(m) == before;
  REQUIRE(unchanged);

  auto missing = full;
  missing.tensors.erase("layer4.1.bn2.running_var");
  ltl_test::require_error<ltl::io_error>(
      [&] { nn::load_torchvision_state(m, missing, "w", {.classifier = nn::classifier_import::skip}); },
      {"missing key 'layer4.1.bn2.running_var'", "stage4.1.bn2.running_var"});

  auto extra = full;
  extra.tensors.emplace("layer5.0.conv1.weight", ltl::tensor<float>(shape{4}));
  ltl_test::require_error<ltl::io_error>(
      [&] { nn::load_torchvision_state(m, extra, "w", {.classifier = nn::classifier_import::skip}); },
      {"unexpected key 'layer5.0.conv1.weight'"});

  auto stray_counter = full;
  stray_counter.tensors.emplace("layer1.0.bn3.num_batches_tracked", ltl::tensor<std::int64_t>::scalar(0));
  ltl_test::require_error<ltl::io_error>(
      [&] { nn::load_torchvision_state(m, stray_counter, "w", {.classifier = nn::classifier_import::skip}); },
      {"'layer1.0.bn3.num_batches_tracked'", "no batch norm"});

  auto reshaped = full;
  reshaped.tensors.at("layer2.0.conv1.weight") = ltl::tensor<float>(shape{128, 64, 1, 1});
  ltl_test::require_error<ltl::io_error>(
      [&] { nn::load_torchvision_state(m, reshaped, "w", {.classifier = nn::classifier_import::skip}); },
      {"'layer2.0.conv1.weight'", "stage2.0.conv1.weight", "[128, 64, 1, 1]", "[128, 64, 3, 3]"});

  auto int_weight = full;
  int_weight.tensors.at("bn1.bias") = ltl::tensor<std::int64_t>(shape{64});
  ltl_test::require_error<ltl::io_error>(
      [&] { nn::load_torchvision_state(m, int_weight, "w", {.classifier = nn::classifier_import::skip}); },
      {"'bn1.bias'", "int64"});
  unchanged = state_values(m) == before;
  REQUIRE(unchanged);

  // Skipping the classifier: the backbone comes from the file, fc stays the model's own.
  for (auto policy : {nn::classifier_import::skip, nn::classifier_import::if_shape_matches}) {
    nn::resnet<float> t({.depth = 18, .num_classes = 10, .seed = 2});
    const auto rep = nn::load_torchvision_state(t, full, "w", {.classifier = policy});
    REQUIRE_FALSE(rep.classifier_loaded);
    REQUIRE(t.state_dict().at("fc.weight").to_vector() == before.at("fc.weight"));
    REQUIRE(t.state_dict().at("stage3.1.conv2.weight").to_vector() ==
            src.state_dict().at("stage3.1.conv2.weight").to_vector());
  }
  // if_shape_matches takes a classifier that fits.
  nn::resnet<float> same({.depth = 18, .num_classes = 1000, .seed = 9});
  REQUIRE(nn::load_torchvision_state(same, full, "w", {.classifier = nn::classifier_import::if_shape_matches})
              .classifier_loaded);
  const bool loaded_all = state_values(same) == state_values(src);
  REQUIRE(loaded_all);
}
