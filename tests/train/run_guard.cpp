// Issue 20 at library level in train/ (run_guard.hpp, checkpoint.hpp, trainer.hpp): checkpoints
// never written from non-finite state (finding 2), output directories that cannot be used (4),
// stale temporary files and the log cut back on resume (7), and runs that know what they are (8):
// fingerprint, reuse of an output directory, missing optimizer state, impossible positions,
// negative variances, image shapes. Finding 1 (non-finite logits and weights): tests/metrics/
// classification_calibration.cpp and tests/eval/evaluate.cpp. The kill-and-resume tests drive
// fmnist_lt (tests/scripts/fault_injection.sh).

#include "support.hpp"
#include "support/run_dir.hpp"

#include <catch2/catch.hpp>
#include <ltlearn/eval/evaluate.hpp>
#include <ltlearn/losses/policies.hpp>
#include <ltlearn/metrics/calibration.hpp>
#include <ltlearn/metrics/classification.hpp>
#include <ltlearn/mixing/policies.hpp>
#include <ltlearn/nn/models/resnet_cifar.hpp>
#include <ltlearn/optim/schedule.hpp>
#include <ltlearn/sampling/samplers.hpp>
#include <ltlearn/train/checkpoint.hpp>
#include <ltlearn/train/run_guard.hpp>
#include <ltlearn/train/trainer.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;
using ltl_test::read_whole;
using ltl_test::require_error;
using ltl_test::rewrite_checkpoint;
using ltl_test::tiny_resnet;
using ltl_test::tiny_run;
using ltl_test::toy_dataset;

namespace {

fs::path fresh_dir(const std::string& name) { return ltl_test::scratch_dir("reliab_" + name); }

/// A tiny trainer on the toy data; returns the trainer's final state (after `setup`, then fit).
template <class Setup>
ltl::train::train_state train_tiny(ltl::nn::resnet_cifar<float>& m, const ltl::data::image_dataset& data,
                                   const tiny_run& c, Setup&& setup) {
  ltl::train::train_state out;
  ltl_test::with_tiny_trainer(m, data, c, [&](auto& tr) {
    setup(tr);
    tr.fit();
    out = tr.state();
  });
  return out;
}
ltl::train::train_state train_tiny(ltl::nn::resnet_cifar<float>& m, const ltl::data::image_dataset& data,
                                   const tiny_run& c) {
  return train_tiny(m, data, c, [](auto&) {});
}

/// Trains a fresh tiny model on `data` into `dir` (three epochs planned) until it stops after
/// `stop` steps, and returns the bytes of the checkpoint it leaves there.
std::string stopped_checkpoint(const ltl::data::image_dataset& data, const fs::path& dir, ltl::index_t stop) {
  auto m = tiny_resnet();
  train_tiny(m, data, {.dir = dir, .epochs = 3, .stop = stop});
  return read_whole(dir / "checkpoint.safetensors");
}

}  // namespace

TEST_CASE("a checkpoint is never written from non-finite state; the last good one stays", "[reliability][finding2]") {
  const auto data = toy_dataset(6, 3, 2);
  const auto dir = fresh_dir("diverge");
  const auto ckpt = dir / "checkpoint.safetensors";
  const std::string good = stopped_checkpoint(data, dir, 2);
  REQUIRE(!good.empty());
  // Directly: a NaN parameter, or a NaN momentum buffer.
  {
    auto bad = tiny_resnet();
    bad.named_parameters()[3].second.value().data()[1] = NAN;
    require_error<ltl::value_error>([&] { ltl::train::save_checkpoint(ckpt, static_cast<const ltl::nn::module<float>&>(bad), nullptr, {}); },
                                    {"checkpoint.safetensors", "not written", "NaN or infinite", "kept"});
    REQUIRE(read_whole(ckpt) == good);
  }
  // Through the trainer: resuming the good checkpoint with a learning rate that poisons the
  // weights at the first step, checkpointing every step.
  auto m2 = tiny_resnet();
  tiny_run c{.dir = dir, .epochs = 3, .checkpoint_every = 1, .lr = std::numeric_limits<double>::infinity()};
  require_error<ltl::value_error>([&] { train_tiny(m2, data, c, [&](auto& tr) { tr.resume(ckpt); }); },
                                  {"not written", "diverged"});
  REQUIRE(read_whole(ckpt) == good);
  for (const auto& e : fs::directory_iterator(dir)) REQUIRE(e.path().filename().string().find(".tmp.") == std::string::npos);
}

TEST_CASE("output directories that cannot be used are io_error before training", "[reliability][finding4]") {
  const auto dir = fresh_dir("outdir");
  std::ofstream(dir / "a_file") << "x";
  require_error<ltl::io_error>([&] { ltl::io::create_output_dir(dir / "a_file"); }, {"a_file", "not a directory"});
  require_error<ltl::io_error>([&] { ltl::io::create_output_dir(dir / "a_file" / "sub"); },
                               {"a_file/sub", "cannot create the output directory"});
  if (fs::is_directory("/proc/self")) {
    require_error<ltl::io_error>([&] { ltl::io::create_output_dir("/proc/ltl_run"); }, {"/proc/ltl_run", "cannot create"});
    require_error<ltl::io_error>([&] { ltl::io::create_output_dir("/proc"); }, {"/proc", "not writable"});
  }
  ltl::io::create_output_dir(dir / "new" / "deeper");
  REQUIRE(fs::is_directory(dir / "new" / "deeper"));
  REQUIRE(fs::is_empty(dir / "new" / "deeper"));  // the writability probe is gone
  // The trainer fails at once, before any epoch.
  const auto data = toy_dataset(6, 3, 2);
  auto m = tiny_resnet();
  require_error<ltl::io_error>([&] { train_tiny(m, data, {.dir = dir / "a_file"}); }, {"a_file", "not a directory"});
}

TEST_CASE("temporary files of killed writers are removed, live writers' files kept", "[reliability][finding7]") {
  const auto dir = fresh_dir("stale");
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  REQUIRE(child > 0);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);  // a pid that no longer runs
  const auto dead = dir / ("checkpoint.safetensors.tmp." + std::to_string(child));
  const auto live = dir / ("checkpoint.safetensors.tmp." + std::to_string(::getpid()));
  const auto other = dir / "notes.tmp.txt";
  for (const auto& p : {dead, live, other}) std::ofstream(p) << "partial";
  REQUIRE(ltl::io::remove_stale_temporaries(dir) == 1);
  REQUIRE_FALSE(fs::exists(dead));
  REQUIRE(fs::exists(live));
  REQUIRE(fs::exists(other));
}

TEST_CASE("log.jsonl is cut back to the epochs the checkpoint completed", "[reliability][finding7]") {
  const auto dir = fresh_dir("logtrim");
  const auto log = dir / "log.jsonl";
  std::ofstream(log) << R"({"epoch":0,"x":1})" << '\n' << R"({"epoch":1,"x":2})" << '\n' << R"({"epoch":2,"x":3})" << '\n'
                     << R"({"epoch":3,"x")";  // torn by a kill mid-append
  ltl::train::prepare_run_dir(dir, {.resumed = true, .completed_epochs = 5});
  REQUIRE(read_whole(log) == "{\"epoch\":0,\"x\":1}\n{\"epoch\":1,\"x\":2}\n{\"epoch\":2,\"x\":3}\n");
  ltl::train::prepare_run_dir(dir, {.resumed = true, .completed_epochs = 2});
  REQUIRE(read_whole(log) == "{\"epoch\":0,\"x\":1}\n{\"epoch\":1,\"x\":2}\n");
  ltl::train::prepare_run_dir(dir, {.resumed = true, .completed_epochs = 2});  // nothing more to cut
  REQUIRE(read_whole(log) == "{\"epoch\":0,\"x\":1}\n{\"epoch\":1,\"x\":2}\n");
}

TEST_CASE("an output directory holding another run is refused without resume or overwrite", "[reliability][finding8]") {
  const auto data = toy_dataset(6, 3, 2);
  const auto dir = fresh_dir("reuse");
  auto m = tiny_resnet();
  train_tiny(m, data, {.dir = dir, .epochs = 1});
  const std::string first_log = read_whole(dir / "log.jsonl");
  auto m2 = tiny_resnet();
  require_error<ltl::io_error>([&] { train_tiny(m2, data, {.dir = dir, .seed = 5, .epochs = 1}); },
                               {"holds another run", "--resume", "--overwrite"});
  REQUIRE(read_whole(dir / "log.jsonl") == first_log);
  // With overwrite the new run replaces the old one: one run's lines, not two interleaved.
  auto m3 = tiny_resnet();
  train_tiny(m3, data, {.dir = dir, .seed = 5, .epochs = 1, .overwrite = true});
  const std::string second_log = read_whole(dir / "log.jsonl");
  REQUIRE(std::count(second_log.begin(), second_log.end(), '\n') == 1);
  REQUIRE(second_log != first_log);
}

TEST_CASE("resuming under another experiment is refused, listing what differs", "[reliability][finding8]") {
  const auto data = toy_dataset(6, 3, 2);
  const auto dir = fresh_dir("fingerprint");
  const auto ckpt = dir / "checkpoint.safetensors";
  const auto saved = stopped_checkpoint(data, dir, 3);
  auto resume_with = [&](tiny_run c, const ltl::data::image_dataset& ds, ltl::train::resume_options ro = {}) {
    fs::remove_all(dir);
    fs::create_directories(dir);
    std::ofstream(ckpt, std::ios::binary) << saved;
    auto r = tiny_resnet();
    c.dir = dir;
    return train_tiny(r, ds, c, [&](auto& tr) { tr.resume(ckpt, ro); });
  };
  require_error<ltl::io_error>([&] { resume_with({.seed = 5, .epochs = 3}, data); },
                               {"another experiment", "seed: checkpoint 4, this run 5", "--force-resume"});
  require_error<ltl::io_error>([&] { resume_with({.batch = 4, .epochs = 3}, data); },
                               {"batch_size: checkpoint 8, this run 4"});
  require_error<ltl::io_error>([&] { resume_with({.epochs = 4}, data); }, {"epochs: checkpoint 3, this run 4"});
  const auto other = toy_dataset(6, 3, 3);  // same size and classes, other images
  require_error<ltl::io_error>([&] { resume_with({.epochs = 3}, other); }, {"train_data: checkpoint"});
  const std::vector<ltl::index_t> pick{0, 1, 2, 3, 5, 8, 9, 10, 12, 13, 14, 15, 16};
  require_error<ltl::io_error>([&] { resume_with({.epochs = 3}, data.subset(pick)); },
                               {"train_data: checkpoint", "train_size: checkpoint"});
  // Forced: a warning, and the run continues.
  REQUIRE(resume_with({.seed = 5, .epochs = 3}, data, {.force = true}).epoch == 3);
  // The same experiment resumes.
  REQUIRE(resume_with({.epochs = 3}, data).epoch == 3);
  // A checkpoint written before fingerprints existed resumes (with a warning).
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(ckpt, std::ios::binary) << saved;
  rewrite_checkpoint(ckpt, [](nlohmann::json& st) { st["extra"].erase("fingerprint"); });
  auto r = tiny_resnet();
  REQUIRE(train_tiny(r, data, {.dir = dir, .epochs = 3}, [&](auto& tr) { tr.resume(ckpt); }).epoch == 3);
}

TEST_CASE("checkpoints without optimizer state, with impossible positions or variances are refused",
          "[reliability][finding8]") {
  const auto data = toy_dataset(6, 3, 2);
  const auto dir = fresh_dir("positions");
  const auto ckpt = dir / "checkpoint.safetensors";
  const auto saved = stopped_checkpoint(data, dir, 3);
  auto restore = [&] { std::ofstream(ckpt, std::ios::binary | std::ios::trunc) << saved; };
  auto resume = [&](ltl::train::resume_options ro = {}) {
    auto r = tiny_resnet();
    return train_tiny(r, data, {.dir = dir, .epochs = 3}, [&](auto& tr) { tr.resume(ckpt, ro); });
  };
  // No optimizer state past step 0.
  rewrite_checkpoint(ckpt, [](auto&) {}, [](auto& t) { std::erase_if(t, [](auto& kv) { return kv.first.rfind("optim.", 0) == 0; }); });
  require_error<ltl::io_error>([&] { resume(); }, {"no optimizer state", "step 3"});
  REQUIRE(resume({.force = true}).epoch == 3);
  // Impossible positions.
  for (const auto& [key, value] : std::vector<std::pair<std::string, nlohmann::json>>{
           {"epoch", -1}, {"iteration", -5}, {"epoch", std::int64_t{1} << 62}}) {
    INFO(key << " = " << value);
    restore();
    rewrite_checkpoint(ckpt, [&](nlohmann::json& st) { st[key] = value; });
    require_error<ltl::io_error>([&] { resume(); }, {"impossible position"});
  }
  restore();
  rewrite_checkpoint(ckpt, [](nlohmann::json& st) { st["extra"]["epoch_seen"] = -4; });
  require_error<ltl::io_error>([&] { resume(); }, {"impossible epoch totals"});
  // Past the last epoch of this run (and not forced into it).
  restore();
  rewrite_checkpoint(ckpt, [](nlohmann::json& st) { st["epoch"] = 7; });
  require_error<ltl::io_error>([&] { resume({.force = true}); }, {"epoch 7", "past this run's 3 epochs"});
  // A negative batch-norm running variance; a NaN weight.
  restore();
  rewrite_checkpoint(ckpt, [](auto&) {}, [](auto& t) {
    for (auto& [name, any] : t)
      if (name.ends_with("running_var")) {
        std::get<ltl::tensor<float>>(any).data()[0] = -0.5f;
        break;
      }
  });
  require_error<ltl::io_error>([&] { resume(); }, {"running variance", "negative entry -0.5"});
  restore();
  rewrite_checkpoint(ckpt, [](auto&) {}, [](auto& t) { std::get<ltl::tensor<float>>(t.begin()->second).data()[0] = NAN; });
  require_error<ltl::io_error>([&] { resume(); }, {"NaN or infinite"});
  restore();
  REQUIRE(resume().epoch == 3);
}

TEST_CASE("evaluation sets with other image shapes than the training set are refused", "[reliability][finding8]") {
  const auto data = toy_dataset(6, 3, 2);
  const ltl::data::image_dataset wide("wide", {1, 8, 9}, std::vector<std::uint8_t>(72 * 3, 7), {0, 1, 2}, 3);
  auto m = tiny_resnet();
  require_error<ltl::shape_error>(
      [&] { train_tiny(m, data, {.epochs = 1}, [&](auto& tr) { tr.set_eval_sets(nullptr, &wide); }); },
      {"'wide'", "[1, 8, 9]", "[1, 8, 8]"});
}

