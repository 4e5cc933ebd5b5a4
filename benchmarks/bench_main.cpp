// Entry point of ltl_bench: Google Benchmark's main, plus the thread count in the context so
// that every JSON report records it.
#include <benchmark/benchmark.h>
#include <ltlearn/core/config.hpp>

#include <string>

int main(int argc, char** argv) {
#if LTL_HAS_OPENMP
  benchmark::AddCustomContext("omp_threads", std::to_string(omp_get_max_threads()));
#endif
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
