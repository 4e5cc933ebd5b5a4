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
///   and writes its line again (the same for analysis.jsonl, see run_logs); a fresh run that
///   may overwrite removes the replaced run's files instead;
/// - **appending to the log** with fault-injection points (train/fault.hpp).

#include "ltlearn/core/error.hpp"
#include "ltlearn/core/shape.hpp"
#include "ltlearn/data/hash.hpp"
#include "ltlearn/train/fault.hpp"
#include "ltlearn/train/safetensors.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>
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

/// The JSON-lines logs of a run directory, one line per epoch carrying its "epoch": the trainer's
/// log and the per-class analysis (eval::analysis_recorder, written by the example programs'
/// --analysis-every). Both are appended before the epoch's checkpoint, so a resume cuts both back.
inline constexpr std::array<std::string_view, 2> run_logs{"log.jsonl", "analysis.jsonl"};

/// The files a training run leaves in its directory: the trainer's checkpoint, the run_logs and
/// the final report the example programs write (results.json).
inline constexpr std::array<std::string_view, 4> run_outputs{"checkpoint.safetensors", "log.jsonl", "analysis.jsonl",
                                                             "results.json"};

/// How prepare_run_dir treats an existing run in the directory.
struct run_dir_options {
  bool resumed = false;          ///< this run continues from a checkpoint
  bool overwrite = false;        ///< a fresh run replaces the one in the directory (its files are removed)
  index_t completed_epochs = 0;  ///< epochs the resumed checkpoint has completed (log lines to keep)
  /// Further files of the caller's that a fresh overwrite removes besides run_outputs (e.g. the
  /// example programs' configuration files and the reports of their other modes).
  std::vector<std::string> also_replace = {};
};

/// The log file of a run directory.
inline std::filesystem::path log_path(const std::filesystem::path& dir) { return dir / run_logs[0]; }

namespace detail {
/// Cuts the JSON-lines log `file` back to its lines of epochs before `completed_epochs` (a later
/// line belongs to an epoch the run trains again, a torn line to a kill mid-append, and nothing
/// after the first dropped line is kept).
inline void trim_run_log(const std::filesystem::path& file, index_t completed_epochs) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) return;
  std::ifstream in(file, std::ios::binary);
  LTL_CHECK(in.good(), io_error, "{}: cannot read the log", file.string());
  std::string kept, line;
  index_t lines = 0, dropped = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    ++lines;
    const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    const auto e = j.is_object() ? j.find("epoch") : j.end();
    const bool keep = dropped == 0 && j.is_object() && e != j.end() && e->is_number_integer() &&
                      e->get<index_t>() < completed_epochs;
    if (keep) kept += line + '\n';
    else ++dropped;
  }
  LTL_CHECK(!in.bad(), io_error, "{}: read failed", file.string());
  if (dropped == 0) return;
  fmt::print(stderr, "{}: dropped {} of {} line(s) from epoch {} on (this run writes them again)\n", file.string(),
             dropped, lines, completed_epochs);
  io::atomic_write(file, kept);
}

/// Removes `dir/name` if it is there; io_error naming it when it cannot be removed.
inline void remove_run_file(const std::filesystem::path& dir, std::string_view name) {
  const auto f = dir / name;
  std::error_code ec;
  std::filesystem::remove(f, ec);
  LTL_CHECK(!ec, io_error, "{}: cannot remove the replaced run's file: {}", f.string(), ec.message());
}
}  // namespace detail

/// Readies `dir` for a run (see the file comment): io_error when it cannot be written or holds
/// another run's checkpoint that this run neither resumes nor may overwrite. A fresh run that may
/// overwrite removes run_outputs and `also_replace` first, so no file of the replaced run
/// survives next to the new one; otherwise each of run_logs is cut back to `completed_epochs`.
inline void prepare_run_dir(const std::filesystem::path& dir, const run_dir_options& o) {
  io::create_output_dir(dir);
  if (const int n = io::remove_stale_temporaries(dir); n > 0)
    fmt::print(stderr, "{}: removed {} temporary file(s) left by a killed run\n", dir.string(), n);
  const auto ckpt = dir / run_outputs[0];
  std::error_code ec;
  const bool has_checkpoint = std::filesystem::exists(ckpt, ec);
  LTL_CHECK(!ec, io_error, "{}: cannot inspect: {}", ckpt.string(), ec.message());
  LTL_CHECK(o.resumed || o.overwrite || !has_checkpoint, io_error,
            "{}: the directory holds another run's checkpoint; resume it (--resume {}) or replace it (--overwrite)",
            dir.string(), ckpt.string());
  if (o.overwrite && !o.resumed) {
    for (const auto name : run_outputs) detail::remove_run_file(dir, name);
    for (const auto& name : o.also_replace) detail::remove_run_file(dir, name);
    return;
  }
  for (const auto name : run_logs) detail::trim_run_log(dir / name, o.completed_epochs);
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
