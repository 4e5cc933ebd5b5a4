#!/usr/bin/env bash
# ltlearn developer entry point.
#
#   bash scripts/ltl.sh setup          check (and as root, install) the Debian packages
#   bash scripts/ltl.sh setup --plots  also python3-matplotlib for scripts/plot_analysis.py (optional)
#   bash scripts/ltl.sh test           release build of everything + the whole ctest suite
#   bash scripts/ltl.sh demo [args]    train ERM on Fashion-MNIST-LT (examples/fmnist_lt [args]), then the
#                                      cheap stage-2 rules on its checkpoint (examples/decouple): one table
#   bash scripts/ltl.sh asan           debug build with ASan + UBSan + the whole ctest suite
#   bash scripts/ltl.sh fuzz [seconds] libFuzzer on every parser, [seconds] (default 60) each
#
# Environment: LTL_JOBS overrides the number of parallel compile jobs; LTL_DEMO_OUT the demo's run directory.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

packages=(cmake ninja-build g++ libeigen3-dev libxtensor-dev libfmt-dev catch2 libbenchmark-dev
          zlib1g-dev libcli11-dev nlohmann-json3-dev libjpeg62-turbo-dev libpng-dev dataset-fashion-mnist
          libopenmpi-dev openmpi-bin)
# Optional, only for rendering figures (scripts/plot_analysis.py); the library and tests never need Python.
optional_packages=(python3-matplotlib)
# Only for `fuzz` (libFuzzer needs clang; Debian's clang 14 cannot compile the headers' C++20).
fuzz_packages=(cmake ninja-build clang-16 libclang-rt-16-dev libomp-16-dev libeigen3-dev libxtensor-dev libfmt-dev
               zlib1g-dev nlohmann-json3-dev libjpeg62-turbo-dev libpng-dev)

say() { printf 'ltl.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

usage() {
  sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
}

setup() {
  local wanted=("${packages[@]}")
  if [[ "${1:-}" == "--plots" ]]; then wanted+=("${optional_packages[@]}"); fi
  if ! command -v dpkg-query >/dev/null 2>&1; then
    say "dpkg-query not found (not a Debian system?); make sure these are installed: ${wanted[*]}"
    return 0
  fi
  local missing=() p
  for p in "${wanted[@]}"; do
    if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" != "install ok installed" ]]; then
      missing+=("$p")
    fi
  done
  if ((${#missing[@]} == 0)); then
    say "all ${#wanted[@]} requested packages are installed"
    return 0
  fi
  say "missing packages: ${missing[*]}"
  if [[ "$(id -u)" -ne 0 ]]; then
    say "install them with:"
    printf 'sudo apt-get install -y %s\n' "${missing[*]}"
    exit 1
  fi
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
}

# Parallel compile jobs: every core, but no more than one job per ~2 GiB of available memory
# (the template-heavy test translation units peak well above 1 GiB each).
build_jobs() {
  if [[ -n "${LTL_JOBS:-}" ]]; then
    echo "$LTL_JOBS"
    return
  fi
  local cores mem_kib by_mem
  cores="$(nproc 2>/dev/null || echo 2)"
  mem_kib="$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo 2>/dev/null || true)"
  by_mem=$(( ${mem_kib:-0} / (2 * 1024 * 1024) ))
  if (( by_mem < 1 )); then by_mem=1; fi
  echo $(( cores < by_mem ? cores : by_mem ))
}

# configure + build a preset; extra arguments go to `cmake --build`.
build() {
  local preset="$1"
  shift
  cmake --preset "$preset"
  cmake --build --preset "$preset" -j "$(build_jobs)" "$@"
}

cmd_test() {
  setup
  build release
  ctest --preset release --output-on-failure
}

cmd_asan() {
  setup
  build debug-asan
  ctest --preset debug-asan --output-on-failure
}

# The demo: what the library is for, in a few minutes on 2 cores. ERM (ResNet-32, exponential
# profile, rho 100, 5 epochs, 10 images per class held out) on Fashion-MNIST-LT, then on its
# checkpoint the post-hoc stage-2 rules (NCM, tau-norm, N_c^tau, post-hoc logit adjustment; tau
# chosen on the held-out split), one table against ERM. Arguments go to fmnist_lt (decouple reads
# the run's config.toml, so it rebuilds the same split). The run goes to LTL_DEMO_OUT (default
# runs/demo), which the demo empties first.
cmd_demo() {
  setup
  cmake --preset release
  if ! ninja -C build/release -t targets all 2>/dev/null | grep -q '^fmnist_lt:'; then
    die "the build has no target 'fmnist_lt' yet (examples/CMakeLists.txt does not define it); nothing to run"
  fi
  cmake --build --preset release -j "$(build_jobs)" --target fmnist_lt decouple
  # The data loader thread shares the cores with the OpenMP team: passive waiting keeps GOMP's
  # spinning threads from starving it (set OMP_WAIT_POLICY yourself to override).
  export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
  local out="${LTL_DEMO_OUT:-runs/demo}" a held=(--held-out 10)
  for a in "$@"; do
    [[ "$a" == --out || "$a" == --out=* ]] && die "demo: set LTL_DEMO_OUT instead of --out"
    [[ "$a" == --held-out || "$a" == --held-out=* ]] && held=()
  done
  rm -rf "$out"
  say "stage 1: ERM -> $out"
  build/release/examples/fmnist_lt "${held[@]}" --out "$out" "$@"
  say "stage 2: post-hoc rules on $out/checkpoint.safetensors"
  build/release/examples/decouple --config "$out/config.toml" --no-retrain --ncm cl2n --worst 3 >"$out/demo.log"
  # The table alone ("joint" is the ERM model itself).
  sed -n '/^test accuracy/,$p' "$out/demo.log" | grep -v '^wrote '
  say "ERM = the 'joint' row; full output in $out/demo.log, numbers in $out/decouple.json"
}

# libFuzzer harnesses (fuzz/fuzz_<parser>.cpp) with ASan + UBSan, each run for $1 seconds on the
# seed corpus (fuzz/corpus/<parser>/, read only); inputs it finds go to build/fuzz/corpus/<parser>/,
# crashes to build/fuzz/artifacts/<parser>/ (add them to fuzz/crashes/<parser>/ with a test).
cmd_fuzz() {
  local seconds="${1:-60}"
  [[ "$seconds" =~ ^[1-9][0-9]*$ ]] || die "fuzz: seconds must be a positive integer, got '$seconds'"
  # setup() checks the global `packages`: shadow it with the fuzz list (bash scoping is dynamic).
  local packages=("${fuzz_packages[@]}")
  setup
  cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang-16 \
    -DCMAKE_CXX_COMPILER=clang++-16 -DLTL_BUILD_FUZZERS=ON -DLTL_BUILD_TESTS=OFF -DLTL_BUILD_EXAMPLES=OFF \
    -DLTL_BUILD_BENCHMARKS=OFF -DLTL_INSTALL=OFF -DLTL_NATIVE=OFF -DLTL_WITH_CUDA=OFF >/dev/null
  cmake --build build/fuzz -j "$(build_jobs)"
  local parser log failed=0 summary=()
  for parser in idx cifar safetensors image list inat; do
    mkdir -p "build/fuzz/corpus/$parser" "build/fuzz/artifacts/$parser"
    log="build/fuzz/fuzz_$parser.log"
    say "fuzz_$parser: ${seconds} s (log: $log)"
    if ! "build/fuzz/fuzz/fuzz_$parser" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="build/fuzz/artifacts/$parser/" \
        "build/fuzz/corpus/$parser" "fuzz/corpus/$parser" >"$log" 2>&1; then
      failed=1
      say "fuzz_$parser FOUND A CRASH: see $log and build/fuzz/artifacts/$parser/"
    fi
    local execs rate
    execs="$(awk '/^stat::number_of_executed_units:/ {print $2}' "$log")"
    rate="$(awk '/^stat::average_exec_per_sec:/ {print $2}' "$log")"
    summary+=("$(printf 'fuzz_%-12s %12s executions  %8s exec/s' "$parser" "${execs:-?}" "${rate:-?}")")
  done
  printf '%s\n' "${summary[@]}"
  return "$failed"
}

command="${1:-}"
if (($# > 0)); then shift; fi
case "$command" in
  setup) setup "$@" ;;
  test) cmd_test ;;
  demo) cmd_demo "$@" ;;
  asan) cmd_asan ;;
  fuzz) cmd_fuzz "$@" ;;
  -h|--help|help) usage ;;
  *) usage; exit 2 ;;
esac
