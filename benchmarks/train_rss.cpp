// Peak resident memory of a short ResNet-32 training run (batch B, random data), measured in a
// process of its own: `ltl_train_rss [channels=1] [hw=28] [steps=10] [batch=128]`. Prints one
// JSON line with ru_maxrss and the caching allocator's peak, which compare_pytorch.py compares
// with the same run in PyTorch.
#include "bench_common.hpp"

#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  const auto arg = [&](int i, long def) { return argc > i ? std::atol(argv[i]) : def; };
  const index_t c = arg(1, 1), hw = arg(2, 28), steps = arg(3, 10), batch = arg(4, 128);
  ltl_bench::resnet_step s(batch, c, hw);
  float loss = 0;
  for (index_t i = 0; i < steps; ++i) loss = s.train();
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const auto st = ltl::caching_allocator<ltl::cpu::device>::instance().stats();
  std::printf("{\"peak_rss_mib\": %.1f, \"allocator_peak_mib\": %.1f, \"steps\": %ld, \"loss\": %.4f}\n",
              static_cast<double>(ru.ru_maxrss) / 1024.0, static_cast<double>(st.peak_bytes_in_use) / 1048576.0,
              static_cast<long>(steps), static_cast<double>(loss));
  return 0;
}
