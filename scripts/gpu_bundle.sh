#!/usr/bin/env bash
# Builds the GPU check's binaries on a machine with the CUDA toolkit (no GPU needed) and packs
# them for a GPU machine without -dev packages: configure (the gpu-portable preset: no
# -march=native, every CUDA example) for the named CUDA architectures only, build the CUDA tests,
# the *_cuda programs, image_smoke_data and ltl_bench_cuda, then `gpu_check.sh --bundle`.
#
#   scripts/gpu_bundle.sh [ARCH] [BUNDLE_DIR]     ARCH: 90 (H100/H200, default), 80, 86, 75, or "portable"
#
# ARCH 90 builds SASS for sm_90 plus compute_90 PTX (a third of the portable set's nvcc time).
# The build goes to build/gpu-<ARCH>, the bundle to BUNDLE_DIR (default .gpu/bundle, which
# .git/info/exclude should list so that it can travel as an untracked, ignored folder). On the GPU
# machine: `scripts/gpu_check.sh --bin BUNDLE_DIR` (README, "Running the GPU check").
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
arch="${1:-90}"
bundle="${2:-$repo/.gpu/bundle}"
build="$repo/build/gpu-$arch"
cfg=(--preset gpu-portable -B "$build")
case "$arch" in
  portable) ;;
  75|80|86|89|90) cfg+=(-DCMAKE_CUDA_ARCHITECTURES="$arch-real;$arch-virtual") ;;
  *) echo "gpu_bundle: unknown architecture '$arch' (75, 80, 86, 89, 90 or portable)" >&2; exit 2 ;;
esac
cd "$repo"
cmake "${cfg[@]}" > /dev/null
source "$repo/scripts/gpu_targets.sh"
mapfile -t targets < <(gpu_check_targets "$build")
echo "building ${#targets[@]} targets in $build: ${targets[*]}"
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}"
rm -rf "$bundle"
bash "$repo/scripts/gpu_check.sh" --bundle "$bundle" --bin "$build"
