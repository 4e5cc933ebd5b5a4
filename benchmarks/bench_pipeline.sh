#!/usr/bin/env bash
# bench_pipeline.cpp built against the headers of two commits (same source, same flags as the
# Release build: -O3 -march=native), then run alternately, `runs` times each.
#   benchmarks/bench_pipeline.sh [before=68fdc5e] [after=HEAD] [iters=200] [runs=3]
# Threads: OMP_NUM_THREADS as exported (e.g. OMP_NUM_THREADS=2). Equal hashes = equal outputs.
set -euo pipefail
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
before=${1:-68fdc5e} after=${2:-HEAD} iters=${3:-200} runs=${4:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for side in before after; do
  rev=${!side}
  mkdir -p "$work/$side"
  git -C "$root" archive "$rev" include | tar -x -C "$work/$side"
  ${CXX:-c++} -O3 -DNDEBUG -march=native -std=gnu++20 -fopenmp -DFMT_SHARED -I"$work/$side/include" \
    -isystem /usr/include/eigen3 "$root/benchmarks/bench_pipeline.cpp" -o "$work/bench_$side" \
    -lfmt -ljpeg -lpng -lz
  echo "built bench_pipeline against $side ($rev = $(git -C "$root" rev-parse --short "$rev"))"
done
for ((r = 1; r <= runs; ++r)); do
  for side in before after; do
    echo "== run $r: $side"
    "$work/bench_$side" --iters "$iters"
  done
done
