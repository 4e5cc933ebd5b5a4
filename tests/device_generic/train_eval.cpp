// The layers above the model — trainer, evaluation, feature extraction, stage-2 decoupling, FSA
// phase II and checkpoints — are generic over the device: they run on ltl::testing::device (a
// device type that is not the CPU's but forwards to its kernels) and give the CPU device's results
// bit for bit. Anything in those paths still hard-wired to `cpu::device` or to `cpu::` kernels
// fails to compile here. The same runs on ltl::testing::remote::device, whose memory the host
// cannot read (as a GPU's), catch host reads of device tensors: they fault.
#include <catch2/catch.hpp>

#include "support/device_scenarios.hpp"
#include "support/remote_device.hpp"
#include "support/temp_dir.hpp"
#include "support/test_device.hpp"
#include "support/toy_data.hpp"

#include <ltlearn/eval/analysis.hpp>
#include <ltlearn/eval/evaluate.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <csignal>
#include <cstdio>
#include <sys/wait.h>
#include <unistd.h>
#include <string>
#include <type_traits>
#include <vector>

namespace {

using cpu_dev = ltl::cpu::device;
using test_dev = ltl::testing::device;
using remote_dev = ltl::testing::remote::device;
using ltl_test::flat_state;
using ltl_test::scenarios::make_toy_model;
using ltl_test::scenarios::stage1_mfw;
using ltl_test::scenarios::train_two_epochs;

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

std::filesystem::path fresh_dir(const std::string& name) { return ltl_test::scratch_dir("device_" + name); }

void require_same_report(const ltl::metrics::eval_report& a, const ltl::metrics::eval_report& b) {
  REQUIRE(a.loss == b.loss);
  REQUIRE(a.top1 == b.top1);
  REQUIRE(a.mean_per_class == b.mean_per_class);
  REQUIRE(a.per_class == b.per_class);
  REQUIRE(a.to_json(true).dump() == b.to_json(true).dump());
}

}  // namespace

TEMPLATE_TEST_CASE("a trainer run, evaluation, feature extraction and stage 2 on the test devices give the CPU's bits",
                   "[device][train]", ltl::testing::device, ltl::testing::remote::device) {
  using test_dev = TestType;
  const auto train = ltl_test::toy_dataset(24, 3, 2), test = ltl_test::toy_dataset(9, 3, 7);
  const ltl::data::normalize norm{{0.3}, {0.3}};
  auto on_cpu = make_toy_model<cpu_dev>();
  auto on_test = make_toy_model<test_dev>();
  REQUIRE(same_bits(flat_state(on_cpu), flat_state(on_test)));

  // Trainer: two epochs (sampling, augmentation, MFW mixing, LDAM-DRW loss, SGD, the held-out
  // and test evaluations after each epoch). The CPU's batches are normalised floats; the remote
  // device's arrive as bytes and are normalised there, training and evaluation alike.
  STATIC_REQUIRE_FALSE(ltl::normalizes_bytes<cpu_dev>);
  STATIC_REQUIRE(ltl::normalizes_bytes<test_dev> == std::is_same_v<test_dev, remote_dev>);
  const auto s_cpu = train_two_epochs(on_cpu, train, test);
  const long bytes_before = ltl::host_upload<remote_dev>::byte_uploads.load();
  const auto s_test = train_two_epochs(on_test, train, test);
  const long byte_batches = ltl::host_upload<remote_dev>::byte_uploads.load() - bytes_before;
  // 2 epochs × (training batches + the two evaluations' batches of 256), or none.
  if constexpr (std::is_same_v<test_dev, remote_dev>) REQUIRE(byte_batches >= 2 * 3 + 2 * 2);
  else REQUIRE(byte_batches == 0);
  REQUIRE(s_cpu.size() == 2);
  REQUIRE(s_test.size() == 2);
  for (std::size_t e = 0; e < 2; ++e) {
    INFO("epoch " << e);
    REQUIRE(s_cpu[e].train_loss == s_test[e].train_loss);
    REQUIRE(s_cpu[e].train_acc == s_test[e].train_acc);
    require_same_report(*s_cpu[e].test, *s_test[e].test);
    require_same_report(*s_cpu[e].val, *s_test[e].val);
  }
  const auto trained = flat_state(on_cpu);
  REQUIRE(same_bits(trained, flat_state(on_test)));
  REQUIRE_FALSE(same_bits(trained, flat_state(make_toy_model<cpu_dev>())));  // the run did train

  // Evaluation in eval mode (batch-norm running statistics).
  const auto counts = ltl_test::scenarios::class_counts(train);
  require_same_report(ltl::eval::evaluate(on_cpu, test, norm, counts, 5),
                      ltl::eval::evaluate(on_test, test, norm, counts, 5));

  // The per-class analysis (features, gradient norms at a mixing point, calibration), as the
  // examples' --analysis-every writes it.
  REQUIRE(ltl::eval::analyze(on_cpu, train, test, norm, {.point = "stage1"}).to_json().dump() ==
          ltl::eval::analyze(on_test, train, test, norm, {.point = "stage1"}).to_json().dump());

  // Feature extraction (the "pool" point, batches of 7 with a partial last batch).
  const auto f_cpu = ltl::classifier::extract_features(on_cpu, train, norm, 7);
  const auto f_test = ltl::classifier::extract_features(on_test, train, norm, 7);
  REQUIRE(same_bits(f_cpu.features.to_vector(), f_test.features.to_vector()));
  REQUIRE(f_cpu.labels.to_vector() == f_test.labels.to_vector());

  // Stage 2 on the cached features: cRT (classifier re-trained with Kang et al.'s class-aware
  // budget) and LWS on it, each trained on the device, LWS folded into a plain classifier there,
  // and the cRT head evaluated there.
  const auto s2_cpu = ltl_test::scenarios::stage2<cpu_dev>(f_cpu, counts);
  const auto s2_test = ltl_test::scenarios::stage2<test_dev>(f_cpu, counts);
  REQUIRE(s2_cpu.weights.size() == s2_test.weights.size());
  for (const auto& [name, w] : s2_cpu.weights) {
    INFO(name);
    REQUIRE(s2_test.weights.count(name) == 1);
    REQUIRE(same_bits(w, s2_test.weights.at(name)));
  }
  require_same_report(s2_cpu.crt_report, s2_test.crt_report);
}

TEST_CASE("reading the remote test device's memory on the host faults, so the runs above prove no host reads",
          "[device][remote]") {
  // The runs on ltl::testing::remote::device above show that no code on their paths reads a
  // device tensor's elements on the host only if such a read cannot go unnoticed: it must kill
  // the process. A child process makes one.
  const auto t = ltl::tensor<float, remote_dev>::full({4}, 1.5f);
  REQUIRE(t.select(0, 2).item() == 1.5f);  // the legitimate way (a download) works
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    std::signal(SIGSEGV, SIG_DFL);  // no test-framework handler in the child
    std::signal(SIGBUS, SIG_DFL);
    volatile float v = t.data()[0];  // what a host loop over a device tensor would do
    (void)v;
    ::_exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFSIGNALED(status));
  REQUIRE((WTERMSIG(status) == SIGSEGV || WTERMSIG(status) == SIGBUS));
}

TEMPLATE_TEST_CASE("an interrupted trainer run on a test device resumes to the CPU's uninterrupted bits",
                   "[device][train][resume]", ltl::testing::device, ltl::testing::remote::device) {
  using test_dev = TestType;
  const auto train = ltl_test::toy_dataset(24, 3, 2), test = ltl_test::toy_dataset(9, 3, 7);
  auto full = make_toy_model<cpu_dev>();
  const auto s_full = train_two_epochs(full, train, test);
  const auto dir = fresh_dir(std::string("resume_") + test_dev::name);
  auto part = make_toy_model<test_dev>();
  train_two_epochs(part, train, test, stage1_mfw(), dir, 5);  // "killed" after 5 steps, mid-epoch 0
  REQUIRE_FALSE(same_bits(flat_state(part), flat_state(full)));
  auto resumed = make_toy_model<test_dev>();  // a fresh process: new model, state from the file
  const auto s_resumed = train_two_epochs(resumed, train, test, stage1_mfw(), dir, -1, true);
  REQUIRE(same_bits(flat_state(resumed), flat_state(full)));
  REQUIRE(s_resumed.size() == s_full.size());
  REQUIRE(s_resumed.back().train_loss == s_full.back().train_loss);
  require_same_report(*s_resumed.back().test, *s_full.back().test);
  std::filesystem::remove_all(dir);
}

TEMPLATE_TEST_CASE("a checkpoint written on a test device loads on the CPU and a CPU checkpoint on the device",
                   "[device][train][checkpoint]", ltl::testing::device, ltl::testing::remote::device) {
  using test_dev = TestType;
  const auto train = ltl_test::toy_dataset(24, 3, 2), test = ltl_test::toy_dataset(9, 3, 7);
  const auto dir = fresh_dir(std::string("ckpt_") + test_dev::name);
  // Device → CPU: a few steps on the device (moved weights, batch-norm statistics, momentum).
  auto on_dev = make_toy_model<test_dev>();
  train_two_epochs(on_dev, train, test, stage1_mfw(), dir / "dev", 4);
  auto loaded_cpu = make_toy_model<cpu_dev>();
  REQUIRE_FALSE(same_bits(flat_state(on_dev), flat_state(loaded_cpu)));
  auto cpu_params = loaded_cpu.named_parameters();
  ltl::optim::sgd<float, cpu_dev> cpu_opt(cpu_params, {.momentum = 0.9});
  const auto st = ltl::train::load_checkpoint(dir / "dev" / "checkpoint.safetensors", loaded_cpu, &cpu_opt);
  REQUIRE(st.iteration == 4);
  REQUIRE(same_bits(flat_state(on_dev), flat_state(loaded_cpu)));
  REQUIRE_FALSE(cpu_opt.state_dict().empty());
  for (auto& [name, m] : cpu_opt.state_dict()) {
    INFO(name);
    const auto v = m.to_vector();  // momentum came from the file, not a fresh zero buffer
    REQUIRE(std::any_of(v.begin(), v.end(), [](float x) { return x != 0; }));
  }
  // CPU → device.
  auto on_cpu = make_toy_model<cpu_dev>();
  train_two_epochs(on_cpu, train, test, stage1_mfw(), dir / "cpu", 3);
  auto loaded_dev = make_toy_model<test_dev>();
  REQUIRE_FALSE(same_bits(flat_state(on_cpu), flat_state(loaded_dev)));
  ltl::train::load_checkpoint(dir / "cpu" / "checkpoint.safetensors", loaded_dev, nullptr);
  REQUIRE(same_bits(flat_state(on_cpu), flat_state(loaded_dev)));
  std::filesystem::remove_all(dir);
}

TEMPLATE_TEST_CASE("FSA phase II (feature bank, confusing classes, fine-tuning) on a test device gives the CPU's bits",
                   "[device][train][fsa]", ltl::testing::device, ltl::testing::remote::device) {
  using test_dev = TestType;
  const auto train = ltl_test::toy_dataset(24, 3, 2);
  const auto [w_cpu, l_cpu] = ltl_test::scenarios::fsa_phase2<cpu_dev>(train);
  const auto [w_dev, l_dev] = ltl_test::scenarios::fsa_phase2<test_dev>(train);
  REQUIRE(same_bits(w_cpu, w_dev));
  REQUIRE(l_cpu == l_dev);
  REQUIRE_FALSE(same_bits(w_cpu, flat_state(make_toy_model<cpu_dev>())));  // the fine-tuning moved the head
}
