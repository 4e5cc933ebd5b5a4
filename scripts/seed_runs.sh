#!/usr/bin/env bash
# Issue 21 seed runs (SPEC §5 recipe, 20 epochs, 2 threads, held-out 10), one queue in priority
# order. Each entry names the frozen binary: bin-6e1b07a for methods whose semantics the issue
# does not change, bin-14320ee for the geometric MFW reading and progressive-to-balanced sampling.
# Resumable: rerun this script (finished runs have results.json; partial ones resume).
# Freeze the binaries first: build examples/fmnist_lt at each commit named below and copy it to
# $LTL_BINS/bin-<commit>/fmnist_lt. Session 8 ran it as LTL_RUNS=/work/runs/seeds LTL_BINS=/work/runs.
set -u
root="${LTL_RUNS:-runs/seeds}"  # where the runs go
common=(--epochs 20 --threads 2 --held-out 10 --test-every 5 --quiet)
old=(
  "exp-cb-sampling|--profile exp --sampler class"
  "exp-sqrt-sampling|--profile exp --sampler sqrt"
  "exp-cdt-0.1|--profile exp --loss cdt --gamma 0.1"
  "exp-cdt-0.2|--profile exp --loss cdt --gamma 0.2"
  "exp-cdt-0.3|--profile exp --loss cdt --gamma 0.3"
  "exp-cdt-0.5|--profile exp --loss cdt --gamma 0.5"
  "exp-ldam-drw|--profile exp --loss ldam --drw-epoch 16"
  "exp-la|--profile exp --loss la --tau 1.0"
  "exp-ce-drw|--profile exp --loss ce --drw-epoch 16"
  "exp-mfw-arith-0.5|--profile exp --mix mfw --alpha 0.5 --beta 2"
  "exp-mfw-arith-1|--profile exp --mix mfw --alpha 1 --beta 2"
  "exp-mfw-arith-2|--profile exp --mix mfw --alpha 2 --beta 2"
)
new=(
  "exp-mfw-geo-0.5|--profile exp --mix mfw --alpha 0.5 --beta 2"
  "exp-mfw-geo-1|--profile exp --mix mfw --alpha 1 --beta 2"
  "exp-mfw-geo-2|--profile exp --mix mfw --alpha 2 --beta 2"
  "exp-progressive|--profile exp --sampler progressive"
)
order=("6e1b07a|0|exp-erm|--profile exp" "6e1b07a|1|exp-erm|--profile exp" "6e1b07a|2|exp-erm|--profile exp")
for m in "${new[@]}"; do order+=("14320ee|0|$m"); done
for s in 1 2; do
  for m in "${old[@]}"; do order+=("6e1b07a|$s|$m"); done
  for m in "${new[@]}"; do order+=("14320ee|$s|$m"); done
done
for m in "${old[@]}"; do order+=("6e1b07a|0|$m"); done
for e in "${order[@]}"; do
  IFS='|' read -r commit s name flags <<<"$e"
  bin="${LTL_BINS:-runs}/bin-$commit/fmnist_lt"  # frozen binary built at that commit
  while [[ ! -x "$bin" ]]; do sleep 60; done
  dir="$root/seed$s/$name"
  [[ -f "$dir/results.json" ]] && continue
  mkdir -p "$dir"
  extra=()
  [[ -f "$dir/checkpoint.safetensors" ]] && extra=(--resume "$dir/checkpoint.safetensors")
  echo "$(date -u +%FT%TZ) seed$s/$name start $commit ${extra[*]}" >> "$root/driver.log"
  echo "$commit" >> "$dir/commit"
  # shellcheck disable=SC2086
  OMP_WAIT_POLICY=PASSIVE nice -n 19 "$bin" "${common[@]}" $flags --seed "$s" --out "$dir" "${extra[@]}" >> "$dir/stdout.log" 2>&1
  echo "$(date -u +%FT%TZ) seed$s/$name exit $?" >> "$root/driver.log"
done
