// The files of a run directory (train/run_guard.hpp, issue 20): a fresh run with overwrite
// removes every file of the run it replaces, a resume cuts analysis.jsonl back exactly as
// log.jsonl, and the trainer's on_epoch_end (which writes analysis.jsonl in the examples) runs
// before the epoch's checkpoint, so that the resume's cut covers it.
#include "support.hpp"
#include "support/run_dir.hpp"

#include <catch2/catch.hpp>
#include <ltlearn/train/checkpoint.hpp>
#include <ltlearn/train/run_guard.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using ltl_test::read_whole;

namespace {

fs::path empty_dir(const std::string& name) { return ltl_test::scratch_dir("run_files_" + name); }

void write_all(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

/// A file of a killed writer: `<name>.tmp.<pid>` with a pid that no process has.
fs::path dead_temporary(const fs::path& dir, const std::string& name) {
  return dir / (name + ".tmp.999999999");
}

}  // namespace

TEST_CASE("a fresh run with overwrite removes every file of the run it replaces", "[reliability][run_dir]") {
  const auto dir = empty_dir("overwrite");
  for (const auto name : ltl::train::run_outputs) write_all(dir / name, "old run\n");
  const std::vector<std::string> mine{"config.toml", "eval.json"};
  for (const auto& name : mine) write_all(dir / name, "old run\n");
  write_all(dead_temporary(dir, "checkpoint.safetensors"), "torn");
  write_all(dir / "notes.txt", "the user's own file");

  // Without overwrite (and not resuming), the old checkpoint refuses the run and nothing goes.
  ltl_test::require_error<ltl::io_error>([&] { ltl::train::prepare_run_dir(dir, {.also_replace = mine}); },
                                         {"holds another run", "--overwrite"});
  for (const auto name : ltl::train::run_outputs) REQUIRE(fs::exists(dir / name));

  ltl::train::prepare_run_dir(dir, {.overwrite = true, .also_replace = mine});
  for (const auto name : ltl::train::run_outputs) REQUIRE_FALSE(fs::exists(dir / name));
  for (const auto& name : mine) REQUIRE_FALSE(fs::exists(dir / name));
  REQUIRE_FALSE(fs::exists(dead_temporary(dir, "checkpoint.safetensors")));
  REQUIRE(read_whole(dir / "notes.txt") == "the user's own file");  // not a file of a run: kept

  // A resumed run keeps its files even with overwrite (it continues the run in the directory).
  write_all(dir / "results.json", "{}");
  write_all(dir / "checkpoint.safetensors", "x");
  ltl::train::prepare_run_dir(dir, {.resumed = true, .overwrite = true, .completed_epochs = 1});
  REQUIRE(fs::exists(dir / "results.json"));
  REQUIRE(fs::exists(dir / "checkpoint.safetensors"));
}

TEST_CASE("a file of the replaced run that cannot be removed is an io_error naming it", "[reliability][run_dir]") {
  const auto dir = empty_dir("overwrite_fail");
  fs::create_directories(dir / "results.json" / "inside");  // a non-empty directory: remove() fails
  ltl_test::require_error<ltl::io_error>([&] { ltl::train::prepare_run_dir(dir, {.overwrite = true}); },
                                         {"results.json", "cannot remove the replaced run's file"});
}

TEST_CASE("analysis.jsonl is cut back on resume exactly as log.jsonl", "[reliability][run_dir]") {
  const auto dir = empty_dir("analysis_trim");
  const std::string lines = "{\"epoch\":0,\"a\":1}\n{\"epoch\":1,\"a\":2}\n{\"epoch\":2,\"a\":3}\n";
  for (const auto name : ltl::train::run_logs) write_all(dir / name, lines + "{\"epoch\":3,\"a\"");  // torn line
  ltl::train::prepare_run_dir(dir, {.resumed = true, .completed_epochs = 2});
  for (const auto name : ltl::train::run_logs)
    REQUIRE(read_whole(dir / name) == "{\"epoch\":0,\"a\":1}\n{\"epoch\":1,\"a\":2}\n");
  // --analysis-every k writes lines for some epochs only: a cut keeps those before the checkpoint's.
  write_all(dir / "analysis.jsonl", "{\"epoch\":1,\"a\":2}\n{\"epoch\":3,\"a\":4}\n");
  ltl::train::prepare_run_dir(dir, {.resumed = true, .completed_epochs = 3});
  REQUIRE(read_whole(dir / "analysis.jsonl") == "{\"epoch\":1,\"a\":2}\n");
  REQUIRE(read_whole(dir / "log.jsonl") == "{\"epoch\":0,\"a\":1}\n{\"epoch\":1,\"a\":2}\n");
}

TEST_CASE("the trainer's on_epoch_end runs after the epoch's log line and before its checkpoint",
          "[reliability][run_dir]") {
  const auto dir = empty_dir("epoch_end_order");
  const auto data = ltl_test::toy_dataset(6, 3, 2);
  auto model = ltl_test::tiny_resnet();
  std::vector<ltl::index_t> checkpoint_epoch_seen;
  std::vector<std::size_t> log_lines_seen;
  ltl_test::with_tiny_trainer(model, data, {.dir = dir, .epochs = 2}, [&](auto& tr) {
    tr.on_epoch_end = [&](const ltl::train::epoch_summary& s) {
      const std::string log = read_whole(ltl::train::log_path(dir));
      log_lines_seen.push_back(static_cast<std::size_t>(std::count(log.begin(), log.end(), '\n')));
      const auto ckpt = dir / "checkpoint.safetensors";
      ltl::index_t saved = -1;
      if (fs::exists(ckpt)) {
        const auto meta = ltl::io::load_safetensors(ckpt).metadata.at("ltlearn.state");
        saved = ltl::train::train_state::from_json(nlohmann::json::parse(meta), ckpt.string()).epoch;
      }
      checkpoint_epoch_seen.push_back(saved);
      REQUIRE(s.epoch + 1 == static_cast<ltl::index_t>(log_lines_seen.size()));
    };
    tr.fit();
  });
  REQUIRE(log_lines_seen == std::vector<std::size_t>{1, 2});
  // No checkpoint before epoch 0's end, then epoch 0's: never the epoch being reported.
  REQUIRE(checkpoint_epoch_seen == std::vector<ltl::index_t>{-1, 1});
}
