#!/usr/bin/env bash
# scripts/gpu_check.sh, the one GPU check command, run end to end on the emulated CUDA device
# (tests/support/cuda_emu) — a CTest test (examples/CMakeLists.txt). The emulated builds are
# copied into one folder under the names the check looks for (test_cuda, fmnist_lt_cuda,
# imagenet_lt_cuda, decouple_image_cuda, image_smoke_data), and every step the check then finds
# must pass: the CUDA test cases, the Fashion-MNIST training run (its command with a smaller
# --train-limit, so that it stays inside the step's limit on a busy machine; NOT RUN without the
# dataset) and the encoded-image run (training on the device, the CPU's evaluation of its
# checkpoint within one image, stage 2 on the device). Only the GPU benchmark is missing: it is
# not built for emulation.
#
#   cuda_emu_gpu_check.sh TEST_CUDA_EMU FMNIST_LT_CUDA_EMU IMAGENET_LT_CUDA_EMU DECOUPLE_IMAGE_CUDA_EMU IMAGE_SMOKE_DATA
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$repo/tests/scripts/fmnist_dir.sh"
work="$(mktemp -d "${TMPDIR:-/tmp}/ltl_emu_check.XXXXXX")"
trap 'rm -rf "$work"' EXIT
fail() { echo "FAILED: $*" >&2; cat "$work/res/summary.txt" >&2 2> /dev/null || true; exit 1; }
bin="$work/bin"
mkdir -p "$bin"
cp -p "$1" "$bin/test_cuda"
cp -p "$2" "$bin/fmnist_lt_cuda"
cp -p "$3" "$bin/imagenet_lt_cuda"
cp -p "$4" "$bin/decouple_image_cuda"
cp -p "$5" "$bin/image_smoke_data"
export OMP_WAIT_POLICY=PASSIVE
# The zoo's steps (a minute of double-precision ResNets here) are ctest's own emu.* cases already;
# the check's test step runs the rest, inside its time limit on a busy machine.
export LTL_GPU_CHECK_FILTER="[cuda]~[zoo],[cuda-host]"
if fmnist_present; then
  export LTL_GPU_TRAIN_CMD="'$bin/fmnist_lt_cuda' --device cuda --data-dir '$data' --profile exp --train-limit 600 \
--depth 8 --epochs 2 --quiet --out '$work/res/train_gpu'"
fi
LTL_GPU_CHECK_BUDGET=600 bash "$repo/scripts/gpu_check.sh" --bin "$bin" --out "$work/res" --no-build > "$work/check.log" 2>&1 ||
  fail "gpu_check.sh reported failing steps"
s="$work/res/summary.txt"
cat "$s"
grep -Eq '^test_cuda +[0-9]+s +passed' "$s" || fail "the emulated CUDA tests did not pass"
grep -Eq '^image_train_gpu +[0-9]+s +passed' "$s" || fail "the encoded-image run did not pass"
if fmnist_present; then
  grep -Eq '^train_gpu +[0-9]+s +passed' "$s" || fail "the Fashion-MNIST run did not pass"
  [[ -f "$work/res/train_gpu/results.json" ]] || fail "the Fashion-MNIST run wrote no results.json"
fi
grep -q 'missing binaries (not run): ltl_bench_cuda$' "$s" || fail "a binary other than ltl_bench_cuda was missing"
grep -q ', 0 failing step(s)' "$s" || fail "a step failed"
