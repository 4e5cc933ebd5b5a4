# Sourced by gpu_check.sh and gpu_bundle.sh: the CMake targets the GPU check runs, in one place.
# gpu_check_targets BUILD_DIR prints those the configured build folder has (one per line): the
# CUDA test binaries, every <example>_cuda program, ltl_bench_cuda and image_smoke_data (which
# writes the JPEG set of the encoded-image step). The folder must be configured with
# LTL_CUDA_EXAMPLES_ALL=ON for the encoded-image programs to exist.
gpu_check_targets() {
  local all t
  all="$(cmake --build "$1" --target help 2> /dev/null)" || return 1
  # (not the emulated device's builds, *_emu and its runtime: tests/support/cuda_emu)
  for t in $(grep -o '^[A-Za-z0-9_]*_cuda[A-Za-z0-9_]*\|^test_cuda[A-Za-z0-9_]*' <<< "$all" | grep -v 'emu' | sort -u) \
           image_smoke_data; do
    grep -qw "$t" <<< "$all" && echo "$t"
  done
}
