// Peak resident memory of a short ResNet-32 training run (batch B, random data), measured in a
// process of its own: `ltl_train_rss [channels=1] [hw=28] [steps=10] [batch=128]`. Prints one
// JSON line with the peak RSS (VmHWM) and the caching allocator's peak, which compare_pytorch.py compares
// with the same run in PyTorch.
#include "bench_common.hpp"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace {
/// Peak resident set of this process image (VmHWM, MiB). Not getrusage's ru_maxrss, which
/// execve inherits from the parent (a Python driver with PyTorch loaded, for one).
double peak_rss_mib() {
  std::ifstream f("/proc/self/status");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return -1;
}
}  // namespace

int main(int argc, char** argv) {
  const auto arg = [&](int i, long def) { return argc > i ? std::atol(argv[i]) : def; };
  using ltl::index_t;
  const index_t c = arg(1, 1), hw = arg(2, 28), steps = arg(3, 10), batch = arg(4, 128);
  ltl_bench::resnet_step s(batch, c, hw);
  float loss = 0;
  for (index_t i = 0; i < steps; ++i) loss = s.train();
  const auto st = ltl::caching_allocator<ltl::cpu::device>::instance().stats();
  std::printf("{\"peak_rss_mib\": %.1f, \"allocator_peak_mib\": %.1f, \"steps\": %ld, \"loss\": %.4f}\n",
              peak_rss_mib(), static_cast<double>(st.peak_bytes_in_use) / 1048576.0,
              static_cast<long>(steps), static_cast<double>(loss));
  return 0;
}
