#!/usr/bin/env bash
# ltlearn developer entry point.
#
#   bash scripts/ltl.sh setup          check (and as root, install) the Debian packages
#   bash scripts/ltl.sh setup --plots  also python3-matplotlib for scripts/plot_analysis.py (optional)
#   bash scripts/ltl.sh test           release build of everything + the whole ctest suite
#   bash scripts/ltl.sh demo [args]    build and run examples/fmnist_lt (Fashion-MNIST-LT)
#   bash scripts/ltl.sh asan           debug build with ASan + UBSan + the whole ctest suite
#
# Environment: LTL_JOBS overrides the number of parallel compile jobs.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

packages=(cmake ninja-build g++ libeigen3-dev libxtensor-dev libfmt-dev catch2 libbenchmark-dev
          zlib1g-dev libcli11-dev nlohmann-json3-dev libjpeg62-turbo-dev libpng-dev dataset-fashion-mnist)
# Optional, only for rendering figures (scripts/plot_analysis.py); the library and tests never need Python.
optional_packages=(python3-matplotlib)

say() { printf 'ltl.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

usage() {
  sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
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

cmd_demo() {
  setup
  cmake --preset release
  if ! ninja -C build/release -t targets all 2>/dev/null | grep -q '^fmnist_lt:'; then
    die "the build has no target 'fmnist_lt' yet (examples/CMakeLists.txt does not define it); nothing to run"
  fi
  cmake --build --preset release -j "$(build_jobs)" --target fmnist_lt
  # The data loader thread shares the cores with the OpenMP team: passive waiting keeps GOMP's
  # spinning threads from starving it (set OMP_WAIT_POLICY yourself to override).
  export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
  exec build/release/examples/fmnist_lt "$@"
}

command="${1:-}"
if (($# > 0)); then shift; fi
case "$command" in
  setup) setup "$@" ;;
  test) cmd_test ;;
  demo) cmd_demo "$@" ;;
  asan) cmd_asan ;;
  -h|--help|help) usage ;;
  *) usage; exit 2 ;;
esac
