#pragma once
/// \file
/// A progress bar for long work: `[epoch 3/20] |█████▌    | 60/117 · 812 img/s · loss 0.912 ·
/// lr 0.1 · ETA 0:41`, redrawn in place on a terminal; plain lines (about every 10 % and at the
/// end) when the output is a file or pipe, so CI logs stay readable.

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <string>

#include <unistd.h>

namespace ltl::train {

/// Progress of one loop of `total` steps, printed to a FILE* (stderr by default).
class progress_bar {
 public:
  progress_bar(std::string label, long total, std::FILE* out = stderr, bool enabled = true)
      : label_(std::move(label)), total_(total), out_(out), enabled_(enabled), tty_(::isatty(::fileno(out)) != 0),
        start_(clock::now()), last_draw_(start_) {}

  /// Reports that `done` of `total` steps are finished; `images` counts items for the rate.
  void update(long done, long images, double loss, double lr) {
    if (!enabled_) return;
    images_ = images;
    const auto now = clock::now();
    const bool final = done >= total_;
    if (tty_) {
      if (!final && now - last_draw_ < std::chrono::milliseconds(100)) return;
      // Separate puts rather than "\r" + line(…): GCC 12 misreports that concatenation under
      // -Wrestrict (its bug 105329) once the caller is inlined deeply enough.
      std::fputc('\r', out_);
      std::fputs(line(done, loss, lr, now).c_str(), out_);
      if (final) std::fputc('\n', out_);
      std::fflush(out_);
    } else {
      const long step = std::max(1L, total_ / 10);
      if (!final && done / step == last_tick_) return;
      last_tick_ = done / step;
      std::fputs(line(done, loss, lr, now).c_str(), out_);
      std::fputc('\n', out_);
      std::fflush(out_);
    }
    last_draw_ = now;
  }
  /// Seconds since construction.
  [[nodiscard]] double elapsed() const {
    return std::chrono::duration<double>(clock::now() - start_).count();
  }

 private:
  using clock = std::chrono::steady_clock;
  std::string line(long done, double loss, double lr, clock::time_point now) const {
    const double secs = std::chrono::duration<double>(now - start_).count();
    const double rate = secs > 0 ? static_cast<double>(images_) / secs : 0.0;
    const double frac = total_ > 0 ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
    const double eta = frac > 0 ? secs * (1 - frac) / frac : 0.0;
    std::string bar;
    if (tty_) {
      constexpr int width = 24;
      const double filled = frac * width;
      static const char* parts[] = {" ", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
      for (int i = 0; i < width; ++i) {
        const double f = filled - i;
        bar += f >= 1 ? "█" : (f > 0 ? parts[static_cast<int>(f * 8)] : " ");
      }
      bar = "|" + bar + "| ";
    }
    const int e = static_cast<int>(eta);
    return fmt::format("{} {}{}/{} · {:.0f} img/s · loss {:.4f} · lr {:.4g} · ETA {}:{:02d}", label_, bar, done, total_,
                       rate, loss, lr, e / 60, e % 60);
  }

  std::string label_;
  long total_;
  std::FILE* out_;
  bool enabled_, tty_;
  clock::time_point start_, last_draw_;
  long images_ = 0, last_tick_ = -1;
};

}  // namespace ltl::train
