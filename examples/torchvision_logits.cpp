// torchvision_logits: loads torchvision weights (safetensors with torchvision's names) into an
// ltlearn ResNet and writes its eval-mode logits for an input tensor — the C++ half of
// scripts/torchvision_parity.py, and a quick check that a converted checkpoint loads.
//
//   torchvision_logits --arch resnet50 --weights resnet50.safetensors
//                      --input x.safetensors --output logits.safetensors [--export back.safetensors]
//
// The input file holds one F32 tensor "input" [N, 3, H, W] (already normalised); the output holds
// "logits" [N, C]. The class count comes from the file's fc.weight. --export writes the loaded
// model back under torchvision's names (nn::save_torchvision), which torchvision loads strictly.
#include <ltlearn/nn/models/torchvision.hpp>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <omp.h>

#include <string>

int main(int argc, char** argv) {
  CLI::App app{"eval-mode logits of a torchvision ResNet loaded from safetensors"};
  std::string arch = "resnet50", weights, input, output, export_to;
  int threads = 2;
  app.add_option("--arch", arch, "resnet10|18|34|50|101|152 or resnext50_32x4d")->capture_default_str();
  app.add_option("--weights", weights, "safetensors with torchvision's names")->required();
  app.add_option("--input", input, "safetensors with an F32 tensor 'input' [N, 3, H, W]")->required();
  app.add_option("--output", output, "safetensors to write the F32 tensor 'logits' [N, C] to")->required();
  app.add_option("--export", export_to, "also write the loaded model back with torchvision's names");
  app.add_option("--threads", threads, "OpenMP threads")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    omp_set_num_threads(threads);
    const auto w = ltl::io::load_safetensors(weights);
    const auto fc = w.tensors.find("fc.weight");
    if (fc == w.tensors.end()) throw ltl::io_error(weights + ": no 'fc.weight' (the class count comes from it)");
    const auto classes = std::visit([](const auto& t) { return t.sizes(); }, fc->second).at(0);
    ltl::nn::resnet<float> model(ltl::nn::torchvision_resnet_options(arch, classes));
    const auto rep = ltl::nn::load_torchvision_state(model, w, weights);
    const auto in = ltl::io::load_safetensors(input);
    const auto& x = in.get<float>("input", input);
    LTL_CHECK(x.dim() == 4 && x.size(1) == 3, shape_error, "{}: 'input' must be [N, 3, H, W], got {}", input,
              x.sizes());
    model.eval();
    ltl::no_grad_guard ng;
    const auto z = model.forward(ltl::variable<float>(x)).value();
    ltl::io::safetensors_data out;
    out.tensors.emplace("logits", z.contiguous());
    ltl::io::save_safetensors(output, out);
    if (!export_to.empty()) ltl::nn::save_torchvision(export_to, model);
    fmt::print("{}: {} entries loaded into {} ({} classes); logits {} written to {}\n", weights, rep.loaded, arch,
               classes, z.sizes(), output);
    return 0;
  } catch (const ltl::error& e) {
    fmt::print(stderr, "torchvision_logits: {}\n", e.what());
    return 1;
  }
}
