#pragma once
// The final report of the example trainers: overall, shot-group and per-class accuracy.

#include <ltlearn/metrics/classification.hpp>
#include <ltlearn/metrics/report.hpp>
#include <ltlearn/train/safetensors.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace example {

/// Writes a report file whole or not at all (ltl::io_error on failure).
inline void write_json_atomically(const std::filesystem::path& path, const nlohmann::json& j) {
  // Strings from the command line (args: --out, --data-dir) need not be UTF-8; a strict dump
  // would throw nlohmann::type_error after the whole run, so such bytes become U+FFFD.
  const std::string text = j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + '\n';
  ltl::io::atomic_write(path, text);
}

/// Writes a program's resolved flags (CLI::App::config_to_str, TOML) to <out>/<name>, which
/// `--config` reads back.
inline void write_config(const std::filesystem::path& out, const std::string& name, const std::string& text) {
  if (out.empty()) return;
  ltl::io::create_output_dir(out);  // a file, /proc or a read-only place: the one clear message
  ltl::io::atomic_write(out / name, "# written by the run; repeat it with --config " + (out / name).string() + "\n" + text);
}

/// Prints per-class and shot-group accuracy of a final evaluation.
inline void print_report(const std::string& title, const ltl::metrics::eval_report& r, const std::vector<double>& counts) {
  fmt::print("\n{}: top-1 {:.2f}%  top-5 {:.2f}%  mean per-class {:.2f}%  ECE {:.4f}  ({} images)\n", title,
             100 * r.top1, 100 * r.top5, 100 * r.mean_per_class, r.ece, r.n);
  fmt::print("  shot groups: many {}  medium {}  few {}\n", ltl::metrics::format_accuracy(r.shots.many),
             ltl::metrics::format_accuracy(r.shots.medium), ltl::metrics::format_accuracy(r.shots.few));
  fmt::print("  {:>5} {:>8} {:>9}\n", "class", "train n", "accuracy");
  for (std::size_t c = 0; c < r.per_class.size(); ++c)
    fmt::print("  {:>5} {:>8} {:>8.2f}%\n", c, counts[c], 100 * r.per_class[c]);
}

/// Prints the confusion matrix (rows: true class, columns: predicted class) when it fits a
/// terminal (at most 20 classes).
inline void print_confusion(const ltl::metrics::eval_report& r) {
  const std::size_t C = r.per_class.size();
  if (C == 0 || C > 20 || r.confusion.size() != C * C) return;
  fmt::print("  confusion (rows: true class, columns: predicted class)\n  {:>5}", "");
  for (std::size_t p = 0; p < C; ++p) fmt::print(" {:>5}", p);
  fmt::print("\n");
  for (std::size_t t = 0; t < C; ++t) {
    fmt::print("  {:>5}", t);
    for (std::size_t p = 0; p < C; ++p) fmt::print(" {:>5}", r.confusion[t * C + p]);
    fmt::print("\n");
  }
}

}  // namespace example
