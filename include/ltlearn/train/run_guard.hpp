#pragma once
/// \file
/// What keeps a run's output directory honest across kills, resumes and reuse (issue 20):
///
/// - a **fingerprint** of the experiment (training data subset by content hash, seed, batch size,
///   epochs, policies, optimizer, and whatever configuration the caller adds) saved in every
///   checkpoint, compared on resume: a checkpoint of another experiment is refused with the list
///   of what differs, unless the resume is forced;
/// - **preparing the directory** before training: it is created and probed for writability,
///   temporary files of killed writers are removed, a directory holding another run's checkpoint
///   is refused unless the run resumes or may overwrite, and log.jsonl is cut back to the epochs
///   the checkpoint has completed — the log is appended *before* the epoch-end checkpoint is
///   written, so a kill between the two loses no line: the resumed run trains that epoch again
///   and writes its line again;
/// - **appending to the log** with fault-injection points (train/fault.hpp).

#include "ltlearn/core/error.hpp"
#include "ltlearn/core/shape.hpp"
#include "ltlearn/data/hash.hpp"
#include "ltlearn/train/fault.hpp"
#include "ltlearn/train/safetensors.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace ltl::train {

/// The identity of a training run, as the trainer knows it.
struct run_identity {
  std::uint64_t data_hash = 0;  ///< content hash of the training subset (data::image_dataset::content_hash)
  index_t train_size = 0, classes = 0, epochs = 0, batch_size = 0;
  std::uint64_t seed = 0;
  std::string sampler, loss, mixing;
  double momentum = 0, weight_decay = 0;
  nlohmann::json config = nlohmann::json::object();  ///< the caller's own entries (learning rate, model, ...)
};

/// The fingerprint saved in a checkpoint (its `extra["fingerprint"]`): a flat JSON object.
inline nlohmann::json make_fingerprint(const run_identity& r) {
  nlohmann::json j{{"train_data", data::hash_hex(r.data_hash)},
                   {"train_size", r.train_size},
                   {"classes", r.classes},
                   {"epochs", r.epochs},
                   {"batch_size", r.batch_size},
                   {"seed", r.seed},
                   {"sampler", r.sampler},
                   {"loss", r.loss},
                   {"mixing", r.mixing},
                   {"momentum", r.momentum},
                   {"weight_decay", r.weight_decay}};
  if (r.config.is_object())
    for (auto it = r.config.begin(); it != r.config.end(); ++it) j[it.key()] = *it;
  return j;
}

/// "key: checkpoint A, this run B" for every entry in which two fingerprints differ.
inline std::vector<std::string> fingerprint_differences(const nlohmann::json& saved, const nlohmann::json& current) {
  std::vector<std::string> out;
  auto show = [](const nlohmann::json& o, const std::string& k) {
    const auto it = o.find(k);
    return it == o.end() ? std::string("(not recorded)") : io::detail::clip(it->dump(), 80);
  };
  for (const nlohmann::json* o : {&saved, &current})
    for (auto it = o->begin(); it != o->end(); ++it) {
      const std::string& k = it.key();
      if (o == &current && saved.contains(k)) continue;  // listed in the first pass
      const auto a = saved.find(k), b = current.find(k);
      if (a == saved.end() || b == current.end() || *a != *b)
        out.push_back(fmt::format("{}: checkpoint {}, this run {}", k, show(saved, k), show(current, k)));
    }
  return out;
}

/// Checks the fingerprint stored in a checkpoint's state `extra` against this run's. A
/// difference is an io_error listing every difference, or (with `force`) a warning on stderr; a
/// checkpoint written before fingerprints existed gets a warning and is accepted.
inline void check_fingerprint(const nlohmann::json& extra, const nlohmann::json& current, const std::string& file,
                              bool force) {
  const auto it = extra.is_object() ? extra.find("fingerprint") : extra.end();
  if (!extra.is_object() || it == extra.end()) {
    fmt::print(stderr,
               "warning: {}: the checkpoint records no run fingerprint (written by an older ltlearn); cannot check "
               "that it belongs to this experiment\n",
               file);
    return;
  }
  LTL_CHECK(it->is_object(), io_error, "{}: the run fingerprint in 'ltlearn.state' is not a JSON object", file);
  const auto diff = fingerprint_differences(*it, current);
  if (diff.empty()) return;
  std::string list;
  for (const auto& d : diff) list += "\n  " + d;
  if (force) {
    fmt::print(stderr, "warning: {}: resuming (forced) a checkpoint of another experiment:{}\n", file, list);
    return;
  }
  throw io_error(fmt::format(
      "{}: the checkpoint belongs to another experiment; refusing to resume it (force the resume, e.g. "
      "--force-resume, only for a deliberate change):{}",
      file, list));
}

/// How prepare_run_dir treats an existing run in the directory.
struct run_dir_options {
  bool resumed = false;          ///< this run continues from a checkpoint
  bool overwrite = false;        ///< a fresh run may replace the one in the directory
  index_t completed_epochs = 0;  ///< epochs the resumed checkpoint has completed (log lines to keep)
};

/// The log file of a run directory.
inline std::filesystem::path log_path(const std::filesystem::path& dir) { return dir / "log.jsonl"; }

/// Readies `dir` for a run (see the file comment): io_error when it cannot be written or holds
/// another run's checkpoint that this run neither resumes nor may overwrite.
inline void prepare_run_dir(const std::filesystem::path& dir, run_dir_options o) {
  io::create_output_dir(dir);
  if (const int n = io::remove_stale_temporaries(dir); n > 0)
    fmt::print(stderr, "{}: removed {} temporary file(s) left by a killed run\n", dir.string(), n);
  const auto ckpt = dir / "checkpoint.safetensors";
  LTL_CHECK(o.resumed || o.overwrite || !std::filesystem::exists(ckpt), io_error,
            "{}: the directory holds another run's checkpoint; resume it (--resume {}) or replace it (--overwrite)",
            dir.string(), ckpt.string());
  const auto log = log_path(dir);
  if (!std::filesystem::exists(log)) return;
  // Keep the lines of the epochs the checkpoint has completed; a later line belongs to an epoch
  // this run trains again (or to a run being replaced), a torn line to a kill mid-append.
  std::ifstream in(log, std::ios::binary);
  std::string kept, line;
  index_t lines = 0, dropped = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    ++lines;
    const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    const bool keep = j.is_object() && j.contains("epoch") && j["epoch"].is_number_integer() &&
                      j["epoch"].get<index_t>() < o.completed_epochs && dropped == 0;
    if (keep) kept += line + '\n';
    else ++dropped;
  }
  LTL_CHECK(!in.bad(), io_error, "{}: read failed", log.string());
  if (dropped == 0) return;
  fmt::print(stderr, "{}: dropped {} of {} line(s) from epoch {} on (this run writes them again)\n", log.string(),
             dropped, lines, o.completed_epochs);
  io::atomic_write(log, kept);
}

/// Appends one JSON line to `file` (with the before_append / after_append fault points).
inline void append_log_line(const std::filesystem::path& file, const nlohmann::json& j) {
  const std::string name = file.filename().string();
  fault::reach(name, "before_append");
  {
    std::ofstream f(file, std::ios::app);
    f << j.dump() << '\n';
    f.flush();
    LTL_CHECK(f.good(), io_error, "{}: cannot append to the log", file.string());
  }
  fault::reach(name, "after_append");
}

}  // namespace ltl::train
