#!/usr/bin/env bash
# Data-parallel benchmarks (issue 19) on one machine: ResNet-32 training throughput at np = 1 and
# np = 2 with one OpenMP thread per rank, then all-reduce bandwidth at the gradient bucket sizes.
#   bash benchmarks/bench_dist.sh [build dir, default build/release] [steps, default 30]
# Several machines: the same mpiexec lines with --hostfile hosts (one "host slots=K" per line).
set -euo pipefail
build=${1:-build/release}
steps=${2:-30}
bin="$build/benchmarks/bench_dist"
mpi=(mpiexec --bind-to core)
if [[ "$(id -u)" -eq 0 ]]; then mpi+=(--allow-run-as-root); fi
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
for np in 1 2; do "${mpi[@]}" -np "$np" "$bin" train "$steps" 128 1; done
"${mpi[@]}" -np 2 "$bin" allreduce 50
