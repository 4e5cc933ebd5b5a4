// The layers above the backend on the GPU (issue 17, item 1), each against the CPU: the trainer
// with every mixing policy (none, mixup, manifold mixup, MFW, Remix) under LDAM-DRW and
// square-root sampling, evaluation, the per-class analysis, feature extraction, stage 2 (cRT,
// LWS, LWS folded, the head's report), FSA phase II, and a CPU checkpoint loaded on the GPU.
// The scenarios are those the test devices run bit for bit (tests/support/device_scenarios.hpp);
// the GPU's sums run in other orders, so here values agree within tolerances:
//   - losses and evaluation numbers: relative 1e-3;
//   - learned tensors after training: 1e-3 of the tensor's largest magnitude;
//   - checkpoints move bits: exact.
// Every case is [cuda] and skips, with the reason printed, when no GPU is usable.
#include "support/cuda_skip.hpp"
#include "support/device_scenarios.hpp"
#include "support/temp_dir.hpp"

#include <ltlearn/backends/cpu/kernel_set.hpp>
#include <ltlearn/eval/analysis.hpp>
#include <ltlearn/eval/evaluate.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

using gpu = ltl::cuda::device;
using cpu = ltl::cpu::device;
namespace sc = ltl_test::scenarios;

namespace {

/// |got − want| ≤ rel·max(|want|, 1e-3) elementwise scale: the largest magnitude of `want`.
void require_close(const std::vector<float>& got, const std::vector<float>& want, double rel, const std::string& what) {
  INFO(what);
  REQUIRE(got.size() == want.size());
  double largest = 1e-3, worst = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    largest = std::max(largest, std::abs(static_cast<double>(want[i])));
    worst = std::max(worst, std::abs(static_cast<double>(got[i]) - static_cast<double>(want[i])));
  }
  INFO("largest difference " << worst << " at scale " << largest);
  REQUIRE(worst <= rel * largest);
}

void require_close(double got, double want, double rel, const std::string& what) {
  INFO(what << ": GPU " << got << ", CPU " << want);
  REQUIRE(std::abs(got - want) <= rel * std::max(1.0, std::abs(want)));
}

/// Two JSON documents with the same structure, strings and booleans equal, numbers within `rel`.
void require_close_json(const nlohmann::json& got, const nlohmann::json& want, double rel, const std::string& path) {
  INFO(path);
  REQUIRE(got.type() == want.type());
  if (want.is_number()) {
    require_close(got.get<double>(), want.get<double>(), rel, path);
  } else if (want.is_object()) {
    REQUIRE(got.size() == want.size());
    for (auto it = want.begin(); it != want.end(); ++it) {
      REQUIRE(got.contains(it.key()));
      require_close_json(got.at(it.key()), it.value(), rel, path + "." + it.key());
    }
  } else if (want.is_array()) {
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < want.size(); ++i)
      require_close_json(got.at(i), want.at(i), rel, path + "[" + std::to_string(i) + "]");
  } else {
    REQUIRE(got == want);
  }
}

void require_close_report(const ltl::metrics::eval_report& got, const ltl::metrics::eval_report& want,
                          const std::string& what) {
  require_close_json(got.to_json(true), want.to_json(true), 1e-3, what);
}

/// Two epochs with `mix` on the GPU and on the CPU: per-epoch loss, accuracy and reports, and
/// the trained state, agree.
template <class Mix>
void check_mixing_run(const Mix& mix, const std::string& name) {
  INFO("mixing policy " << name);
  const auto train = ltl_test::toy_dataset(24, 3, 2), test = ltl_test::toy_dataset(9, 3, 7);
  auto on_cpu = sc::make_toy_model<cpu>();
  auto on_gpu = sc::make_toy_model<gpu>();
  const auto s_cpu = sc::train_two_epochs(on_cpu, train, test, mix);
  const auto s_gpu = sc::train_two_epochs(on_gpu, train, test, mix);
  REQUIRE(s_cpu.size() == 2);
  REQUIRE(s_gpu.size() == 2);
  for (std::size_t e = 0; e < 2; ++e) {
    INFO("epoch " << e);
    require_close(s_gpu[e].train_loss, s_cpu[e].train_loss, 1e-3, "training loss");
    require_close(s_gpu[e].train_acc, s_cpu[e].train_acc, 1e-9, "training accuracy");
    require_close_report(*s_gpu[e].test, *s_cpu[e].test, "test report");
  }
  const auto trained = ltl_test::flat_state(on_cpu);
  require_close(ltl_test::flat_state(on_gpu), trained, 1e-3, "trained state");
  // The run trained: the state moved well beyond the tolerance.
  const auto fresh = ltl_test::flat_state(sc::make_toy_model<cpu>());
  double moved = 0;
  for (std::size_t i = 0; i < fresh.size(); ++i) moved = std::max(moved, std::abs(double(trained[i]) - fresh[i]));
  REQUIRE(moved > 1e-2);
}

}  // namespace

TEST_CASE("the trainer on the GPU with every mixing policy follows the CPU's run", "[cuda][paths]") {
  LTL_REQUIRE_GPU();
  check_mixing_run(ltl::mixing::none{}, "none");
  check_mixing_run(ltl::mixing::mixup{.alpha = 1.0}, "mixup");
  check_mixing_run(ltl::mixing::mixup{.alpha = 1.0, .at = "stage2"}, "manifold mixup");
  check_mixing_run(sc::stage1_mfw(), "MFW");
  check_mixing_run(ltl::mixing::remix{.alpha = 1.0}, "Remix");
}

TEST_CASE("evaluation, analysis, feature extraction and stage 2 on the GPU give the CPU's numbers",
          "[cuda][paths]") {
  LTL_REQUIRE_GPU();
  const auto train = ltl_test::toy_dataset(24, 3, 2), test = ltl_test::toy_dataset(9, 3, 7);
  const auto norm = sc::toy_norm();
  const auto counts = sc::class_counts(train);
  // One trained CPU model, its state copied to the GPU: from here on only the devices differ.
  auto on_cpu = sc::make_toy_model<cpu>();
  sc::train_two_epochs(on_cpu, train, test);
  auto on_gpu = sc::make_toy_model<gpu>();
  const auto dir = ltl_test::scratch_dir("cuda_paths");
  ltl::train::save_checkpoint(dir / "cpu.safetensors", on_cpu, nullptr, {});
  ltl::train::load_checkpoint(dir / "cpu.safetensors", on_gpu, nullptr);
  std::filesystem::remove_all(dir);

  require_close_report(ltl::eval::evaluate(on_gpu, test, norm, counts, 5),
                       ltl::eval::evaluate(on_cpu, test, norm, counts, 5), "evaluate");
  require_close_json(ltl::eval::analyze(on_gpu, train, test, norm, {.point = "stage1"}).to_json(),
                     ltl::eval::analyze(on_cpu, train, test, norm, {.point = "stage1"}).to_json(), 1e-3, "analyze");

  const auto f_cpu = ltl::classifier::extract_features(on_cpu, train, norm, 7);
  const auto f_gpu = ltl::classifier::extract_features(on_gpu, train, norm, 7);
  REQUIRE(f_gpu.labels.to_vector() == f_cpu.labels.to_vector());
  require_close(f_gpu.features.to_vector(), f_cpu.features.to_vector(), 1e-4, "features");

  // Stage 2 trained on the GPU from the CPU's features (the same inputs on both devices).
  const auto s2_cpu = sc::stage2<cpu>(f_cpu, counts);
  const auto s2_gpu = sc::stage2<gpu>(f_cpu, counts);
  REQUIRE(s2_gpu.weights.size() == s2_cpu.weights.size());
  for (const auto& [name, w] : s2_cpu.weights) {
    REQUIRE(s2_gpu.weights.count(name) == 1);
    require_close(s2_gpu.weights.at(name), w, 1e-3, name);
  }
  require_close_report(s2_gpu.crt_report, s2_cpu.crt_report, "cRT head on the features");
}

TEST_CASE("FSA phase II on the GPU follows the CPU's fine-tuning", "[cuda][paths][fsa]") {
  LTL_REQUIRE_GPU();
  const auto train = ltl_test::toy_dataset(24, 3, 2);
  const auto on_cpu = sc::fsa_phase2<cpu>(train);
  const auto on_gpu = sc::fsa_phase2<gpu>(train);
  require_close(on_gpu.state, on_cpu.state, 1e-3, "fine-tuned state");
  REQUIRE(on_gpu.losses.size() == 2);
  require_close(on_gpu.losses[0], on_cpu.losses[0], 1e-3, "first loss");
  require_close(on_gpu.losses[1], on_cpu.losses[1], 1e-3, "last loss");
  REQUIRE(on_cpu.state != ltl_test::flat_state(sc::make_toy_model<cpu>()));  // the fine-tuning moved the head
}

TEST_CASE("a CPU checkpoint loads on the GPU bit for bit, momentum included", "[cuda][paths][checkpoint]") {
  LTL_REQUIRE_GPU();
  const auto train = ltl_test::toy_dataset(24, 3, 2), test = ltl_test::toy_dataset(9, 3, 7);
  const auto dir = ltl_test::scratch_dir("cuda_cpu_ckpt");
  auto on_cpu = sc::make_toy_model<cpu>();
  sc::train_two_epochs(on_cpu, train, test, sc::stage1_mfw(), dir, 3);  // stops after 3 steps, checkpointed
  auto on_gpu = sc::make_toy_model<gpu>();
  auto params = on_gpu.named_parameters();
  ltl::optim::sgd<float, gpu> opt(params, {.momentum = 0.9});
  const auto st = ltl::train::load_checkpoint(dir / "checkpoint.safetensors", on_gpu, &opt);
  REQUIRE(st.iteration == 3);
  const auto want = ltl_test::flat_state(on_cpu), got = ltl_test::flat_state(on_gpu);
  REQUIRE(got.size() == want.size());
  REQUIRE(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0);
  REQUIRE_FALSE(opt.state_dict().empty());
  for (auto& [name, m] : opt.state_dict()) {
    INFO(name);
    const auto v = m.to_vector();  // the momentum came from the file: not a fresh zero buffer
    REQUIRE(std::any_of(v.begin(), v.end(), [](float x) { return x != 0; }));
  }
  std::filesystem::remove_all(dir);
}
