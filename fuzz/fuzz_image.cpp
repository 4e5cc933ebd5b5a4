// libFuzzer harness for the image parser (see fuzz_targets.hpp); run with bash scripts/ltl.sh fuzz.
#include "fuzz_targets.hpp"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ltl_fuzz::image(ltl_fuzz::input(data, size));
  return 0;
}
