// Checkpoint state fields of the wrong JSON type (issue 20, finding 4; audit in
// docs/error_audit.md): 'extra' that is not an object and a data-parallel stamp that is not an
// integer used to escape as nlohmann::type_error on --resume. Both are io_error naming the field.
#include "support.hpp"
#include "support/run_dir.hpp"

#include <catch2/catch.hpp>
#include <ltlearn/train/checkpoint.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

namespace fs = std::filesystem;

namespace {

/// Trains one epoch of a tiny model into `dir` (or, with `resume`, resumes that checkpoint first).
void run(const fs::path& dir, const ltl::data::image_dataset& data, const fs::path& resume = {}) {
  auto m = ltl_test::tiny_resnet();
  ltl_test::with_tiny_trainer(m, data, {.dir = dir, .epochs = 1}, [&](auto& tr) {
    if (!resume.empty()) tr.resume(resume);
    tr.fit();
  });
}

}  // namespace

TEST_CASE("checkpoint state fields of the wrong JSON type are an io_error naming the field on resume",
          "[reliability][checkpoint]") {
  const auto dir = ltl_test::scratch_dir("ckpt_untrusted");
  const auto data = ltl_test::toy_dataset(6, 3, 2);
  run(dir, data);
  const auto ckpt = dir / "checkpoint.safetensors";
  const auto good = ltl::io::load_safetensors(ckpt);
  run(dir, data, ckpt);  // the untouched checkpoint resumes (at its end: nothing to train)

  SECTION("'extra' is not an object") {
    ltl_test::rewrite_checkpoint(ckpt, [](nlohmann::json& st) { st["extra"] = nlohmann::json::array({1, 2}); });
    ltl_test::require_error<ltl::io_error>([&] { run(dir, data, ckpt); },
                                           {ckpt.string(), "'extra' is not a JSON object"});
  }
  SECTION("the data-parallel stamp is not an integer") {
    for (const char* key : {"world_size", "global_batch"}) {
      ltl::io::save_safetensors(ckpt, good);
      ltl_test::rewrite_checkpoint(ckpt, [&](nlohmann::json& st) { st["extra"][key] = "two"; });
      ltl_test::require_error<ltl::io_error>([&] { run(dir, data, ckpt); },
                                             {ckpt.string(), std::string("'extra.") + key + "' is not an integer"});
    }
  }
  fs::remove_all(dir);
}
