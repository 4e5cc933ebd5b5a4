#!/usr/bin/env bash
# The measured runs behind the README's results tables (SPEC §5: ResNet-32, Fashion-MNIST-LT,
# 20 epochs, 2 threads), one table of runs (name | seeds | flags), one fmnist_lt invocation per
# run and seed, into RUNS/seed<s>/<name> — the layout of scripts/seed_runs.sh, so the seed queue's
# runs count as done here. Every run holds out 10 training images per class (--held-out 10):
# hyper-parameters (CDT's γ, MFW's α, the stage-2 τ) are chosen on that split, per seed, never on
# the test set. Each seed draws its own long-tailed subset, held-out split and batch order.
#
#   bash scripts/experiments.sh all             every README number: run, decouple, fsa, table (resumable)
#   bash scripts/experiments.sh list            print the runs, their seeds and status
#   bash scripts/experiments.sh run [NAME...]   run (or resume) the named runs on their seeds, default: all
#   bash scripts/experiments.sh table           mean ± std over seeds (+ paired differences to ERM), then
#                                               seed 0's one-seed tables (step profile, diagnostics)
#   bash scripts/experiments.sh decouple        stage 2 (examples/decouple) on each seed's ERM and chosen CDT run
#   bash scripts/experiments.sh fsa             FSA phase II on seed 0's ERM runs (grid on the held-out split)
#   bash scripts/experiments.sh figures [DIR]   ERM vs CDT vs MFW figures of seed 0 (default docs/figures)
#   bash scripts/experiments.sh evaluate [NAME...]  re-evaluate finished runs' checkpoints (confusion
#                                               matrices) into RUN/eval/eval.json, default: all
#   bash scripts/experiments.sh collect [DIR]   copy the runs' logs and reports, not checkpoints (default results/seeds)
#
# Environment: LTL_RUNS (default runs/seeds), LTL_SEEDS (restrict to these seeds, e.g. "0"),
# LTL_BIN / LTL_DECOUPLE_BIN (the binaries; copy a build aside to keep a table on one commit),
# LTL_COMMIT (recorded in each run's directory).
# Runs are resumable: a finished run has results.json and is skipped; an interrupted one
# continues from its checkpoint (written every 50 steps), bit for bit.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
out_root="${LTL_RUNS:-runs/seeds}"
bin="${LTL_BIN:-build/release/examples/fmnist_lt}"
decouple_bin="${LTL_DECOUPLE_BIN:-build/release/examples/decouple}"
py=/usr/bin/python3
# FSA phase II grid (Chu et al.: h_r 0.9, N_a = N_f = 3, lr 0.001, 6,400 iterations).
fsa_grid=(--fsa-hr 0.8,0.9 --fsa-ts 0.5,0.7 --fsa-tg 0.3,0.5 --fsa-na 1,3,5 --fsa-nf 1,3)
common=(--epochs 20 --threads 2 --held-out 10 --test-every 5 --quiet)
# Feature deviation, norms, per-class train/test accuracy and gradient norms every 4 epochs for the
# seed-0 runs behind the figures (ERM vs CDT vs MFW, long-tailed profile).
analysis=(--analysis-every 4)
all3="0 1 2"

# name | seeds | flags (ERM, CDT and MFW first: the stage-1 models of the decoupling and FSA rows).
# @analysis: with the analysis on seed 0; @mfw-alpha: the α the held-out split chose for MFW
# (geometric) on the same profile and seed.
runs=(
  "exp-erm|$all3|--profile exp @analysis"
  "exp-cdt-0.1|$all3|--profile exp --loss cdt --cdt-gamma 0.1 @analysis"
  "exp-cdt-0.2|$all3|--profile exp --loss cdt --cdt-gamma 0.2 @analysis"
  "exp-cdt-0.3|$all3|--profile exp --loss cdt --cdt-gamma 0.3 @analysis"
  "exp-cdt-0.5|$all3|--profile exp --loss cdt --cdt-gamma 0.5 @analysis"
  "exp-mfw-geo-0.5|$all3|--profile exp --mix mfw --alpha 0.5 --beta 2 --mfw-spread geometric @analysis"
  "exp-mfw-geo-1|$all3|--profile exp --mix mfw --alpha 1 --beta 2 --mfw-spread geometric @analysis"
  "exp-mfw-geo-2|$all3|--profile exp --mix mfw --alpha 2 --beta 2 --mfw-spread geometric @analysis"
  "exp-mfw-arith-0.5|$all3|--profile exp --mix mfw --alpha 0.5 --beta 2 --mfw-spread arithmetic"
  "exp-mfw-arith-1|$all3|--profile exp --mix mfw --alpha 1 --beta 2 --mfw-spread arithmetic"
  "exp-mfw-arith-2|$all3|--profile exp --mix mfw --alpha 2 --beta 2 --mfw-spread arithmetic"
  "exp-cb-sampling|$all3|--profile exp --sampler class"
  "exp-sqrt-sampling|$all3|--profile exp --sampler sqrt"
  "exp-progressive|$all3|--profile exp --sampler progressive"
  "exp-ldam-drw|$all3|--profile exp --loss ldam --drw-epoch 16"
  "exp-la|$all3|--profile exp --loss la --tau 1.0"
  # MFW + DRW's control: the same deferred re-weighting on plain cross-entropy.
  "exp-ce-drw|$all3|--profile exp --loss ce --drw-epoch 16"
  "exp-cb-focal|0|--profile exp --loss cb-focal --focal-gamma 1.0"
  "exp-mfw-drw|0|--profile exp --mix mfw --alpha @mfw-alpha --beta 2 --loss ce --drw-epoch 16"
  "step-erm|0|--profile step"
  "step-cdt-0.1|0|--profile step --loss cdt --cdt-gamma 0.1"
  "step-cdt-0.2|0|--profile step --loss cdt --cdt-gamma 0.2"
  "step-cdt-0.3|0|--profile step --loss cdt --cdt-gamma 0.3"
  "step-cdt-0.5|0|--profile step --loss cdt --cdt-gamma 0.5"
  "step-mfw-geo-0.5|0|--profile step --mix mfw --alpha 0.5 --beta 0.01"
  "step-mfw-geo-1|0|--profile step --mix mfw --alpha 1 --beta 0.01"
  "step-mfw-geo-2|0|--profile step --mix mfw --alpha 2 --beta 0.01"
  "step-cb-sampling|0|--profile step --sampler class"
  "step-sqrt-sampling|0|--profile step --sampler sqrt"
  "step-progressive|0|--profile step --sampler progressive"
  "step-cb-focal|0|--profile step --loss cb-focal --focal-gamma 1.0"
  "step-ldam-drw|0|--profile step --loss ldam --drw-epoch 16"
  "step-la|0|--profile step --loss la --tau 1.0"
  "step-ce-drw|0|--profile step --loss ce --drw-epoch 16"
  "step-mfw-drw|0|--profile step --mix mfw --alpha @mfw-alpha --beta 0.01 --loss ce --drw-epoch 16"
  # Step MFW + DRW with MFW switched off when DRW starts (a diagnostic of its step row, README).
  "step-mfw-drw-mix16|0|--profile step --mix mfw --alpha 2 --beta 0.01 --loss ce --drw-epoch 16 --mix-until 16"
  # The MFW direction check on a 1.5x longer schedule (the learning-rate steps move with it, to
  # epochs 24 and 27): the paper trains 200-300 epochs and notes that MFW needs more epochs.
  "long-erm|0|--profile exp --epochs 30"
  "long-mfw-geo-0.5|0|--profile exp --mix mfw --alpha 0.5 --beta 2 --epochs 30"
)

# seeds_of "SEEDS": the run's seeds that LTL_SEEDS (if set) keeps.
seeds_of() {
  local s out=()
  for s in $1; do
    [[ -z "${LTL_SEEDS:-}" || " ${LTL_SEEDS} " == *" $s "* ]] && out+=("$s")
  done
  echo "${out[*]:-}"
}

status_of() {  # status_of NAME SEED
  local dir="$out_root/seed$2/$1"
  if [[ -f "$dir/results.json" ]]; then echo done
  elif [[ -f "$dir/checkpoint.safetensors" ]]; then echo partial
  else echo pending; fi
}

run_one() {  # run_one NAME SEED FLAGS
  local name="$1" seed="$2" flags="$3" dir="$out_root/seed$2/$1"
  case "$(status_of "$name" "$seed")" in
    done) echo "== seed$seed/$name: done"; return ;;
    partial) echo "== seed$seed/$name: resuming"; set -- --resume "$dir/checkpoint.safetensors" ;;
    *) echo "== seed$seed/$name: starting"; set -- ;;
  esac
  # MFW + DRW takes the α chosen for MFW on the same profile's and seed's held-out split.
  if [[ "$flags" == *@mfw-alpha* ]]; then
    local sel
    sel="$("$py" scripts/results_table.py "$out_root/seed$seed" select "${name%%-*}-mfw-geo")" ||
      { echo "== seed$seed/$name: skipped, the ${name%%-*}-mfw-geo grid has not finished"; return; }
    flags="${flags/@mfw-alpha/${sel##*-}}"
  fi
  mkdir -p "$dir"
  [[ -n "${LTL_COMMIT:-}" ]] && echo "$LTL_COMMIT" >>"$dir/commit"
  local extra=() base=("${common[@]}")
  if [[ "$flags" == *@analysis* ]]; then
    flags="${flags/ @analysis/}"
    [[ "$seed" == 0 ]] && extra=("${analysis[@]}")
  fi
  if [[ "$flags" == *--epochs* ]]; then base=("${common[@]:2}"); fi  # the run sets its own epochs
  # shellcheck disable=SC2086  # flags are a word list by design
  OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}" "$bin" "${base[@]}" "${extra[@]}" $flags --seed "$seed" --out "$dir" \
    "$@" >>"$dir/stdout.log" 2>&1
}

# selected NAME [WANTED...]: whether NAME is among the wanted runs (all runs when none are named).
selected() {
  local name="$1" want
  shift
  (($# == 0)) && return 0
  for want in "$@"; do [[ "$want" == "$name" ]] && return 0; done
  return 1
}

# data_flags RUN (seed<s>/<name>): the flags that rebuild finished run RUN's data split and model
# (--profile, --rho, --seed, --held-out, --depth, --loss as the run recorded them), so the stage-2,
# FSA and evaluation commands take them from the run instead of restating the run table.
data_flags() { "$py" scripts/results_table.py "$out_root" data-flags "$1"; }

cmd_run() {
  [[ -x "$bin" ]] || { echo "build $bin first (cmake --build build/release --target fmnist_lt decouple)" >&2; exit 1; }
  local r name seeds s
  for r in "${runs[@]}"; do
    IFS='|' read -r name seeds flags <<<"$r"
    selected "$name" "$@" || continue
    for s in $(seeds_of "$seeds"); do run_one "$name" "$s" "$flags"; done
  done
}

cmd_decouple() {
  local s p run
  for s in $(seeds_of "$all3"); do
    for p in exp step; do
      for run in "$p-erm" "$("$py" scripts/results_table.py "$out_root/seed$s" select "$p-cdt" 2>/dev/null || true)"; do
        [[ -n "$run" && -f "$out_root/seed$s/$run/results.json" ]] || continue
        echo "== seed$s/$run: decouple"
        # shellcheck disable=SC2046  # the run's data flags are a word list
        OMP_WAIT_POLICY=PASSIVE "$decouple_bin" $(data_flags "seed$s/$run") --threads 2 --out "$out_root/seed$s/$run" \
          >"$out_root/seed$s/$run/decouple.log" 2>&1
      done
    done
  done
}

cmd_fsa() {
  local p run hr ts tg nf
  for p in exp step; do
    run="$out_root/seed0/$p-erm"
    [[ -f "$run/results.json" ]] || { echo "== seed0/$p-erm: not finished, skipped"; continue; }
    echo "== seed0/$p-erm: FSA phase II"
    mkdir -p "$run/fsa"
    # shellcheck disable=SC2046  # the run's data flags are a word list
    OMP_WAIT_POLICY=PASSIVE "$bin" $(data_flags "seed0/$p-erm") --threads 2 --quiet \
      --fsa-phase2 "$run/checkpoint.safetensors" "${fsa_grid[@]}" --out "$run/fsa" >"$run/fsa/stdout.log" 2>&1
    # Ablation: the selected configuration without augmented samples (N_a = 0), i.e. only the
    # head/tail-balanced fine-tuning of the classifier.
    read -r hr ts tg nf < <("$py" -c 'import json, sys
r = json.load(open(sys.argv[1])); c = r["configs"][r["selected"]]
print(c["h_r"], c["tau_s"], c["tau_g"], c["N_f"])' "$run/fsa/fsa_results.json")
    mkdir -p "$run/fsa-na0"
    # shellcheck disable=SC2046
    OMP_WAIT_POLICY=PASSIVE "$bin" $(data_flags "seed0/$p-erm") --threads 2 --quiet \
      --fsa-phase2 "$run/checkpoint.safetensors" --fsa-hr "$hr" --fsa-ts "$ts" --fsa-tg "$tg" --fsa-na 0 \
      --fsa-nf "$nf" --out "$run/fsa-na0" >"$run/fsa-na0/stdout.log" 2>&1
  done
}

cmd_table() {
  "$py" scripts/results_table.py "$out_root" seeds --seeds "$(seeds_of "$all3" | tr ' ' ',')"
  "$py" scripts/results_table.py "$out_root/seed0" table
  "$py" scripts/results_table.py "$out_root/seed0" decouple
}

cmd="${1:-list}"
if (($# > 0)); then shift; fi
case "$cmd" in
  all) cmd_run; cmd_decouple; cmd_fsa; cmd_table ;;
  list)
    for r in "${runs[@]}"; do
      IFS='|' read -r name seeds flags <<<"$r"
      for s in $(seeds_of "$seeds"); do printf '%-22s seed%s %-8s %s\n' "$name" "$s" "$(status_of "$name" "$s")" "$flags"; done
    done ;;
  run) cmd_run "$@" ;;
  table) cmd_table ;;
  decouple) cmd_decouple; "$py" scripts/results_table.py "$out_root" seeds --seeds "$(seeds_of "$all3" | tr ' ' ',')" ;;
  fsa) cmd_fsa; "$py" scripts/results_table.py "$out_root/seed0" decouple ;;
  figures)
    dir="${1:-docs/figures}"
    s0="$out_root/seed0"
    cdt="$("$py" scripts/results_table.py "$s0" select exp-cdt)"
    mfw="$("$py" scripts/results_table.py "$s0" select exp-mfw-geo)"
    "$py" scripts/plot_analysis.py --out "$dir" --compare "ERM=$s0/exp-erm" "CDT (γ ${cdt##*-})=$s0/$cdt" \
      "MFW (α ${mfw##*-})=$s0/$mfw"
    # Single-run figures: the post-hoc rules' tau curves on ERM, MFW's feature-gradient norms.
    tmp="$(mktemp -d)"
    "$py" scripts/plot_analysis.py "$s0/exp-erm" --out "$tmp/erm" >/dev/null
    "$py" scripts/plot_analysis.py "$s0/$mfw" --out "$tmp/mfw" >/dev/null
    cp "$tmp/erm/tau_curves.png" "$dir/erm_tau_curves.png"
    cp "$tmp/mfw/gradient_norms_epochs.png" "$dir/mfw_gradient_norms_epochs.png"
    rm -rf "$tmp"
    echo "wrote $dir/erm_tau_curves.png and $dir/mfw_gradient_norms_epochs.png" ;;
  evaluate)
    # --evaluate reproduces each run's own test report exactly (checked by examples/smoke_test.sh).
    eval_bin="${LTL_EVAL_BIN:-build/release/examples/fmnist_lt}"
    for r in "${runs[@]}"; do
      IFS='|' read -r name seeds flags <<<"$r"
      selected "$name" "$@" || continue
      for s in $(seeds_of "$seeds"); do
        run="seed$s/$name"
        [[ -f "$out_root/$run/results.json" ]] || continue
        # shellcheck disable=SC2046  # the data flags are a word list
        OMP_WAIT_POLICY=PASSIVE "$eval_bin" $(data_flags "$run") \
          --threads 2 --quiet --evaluate "$out_root/$run/checkpoint.safetensors" --out "$out_root/$run/eval" \
          >"$out_root/$run/eval.log" 2>&1 ||
          { echo "== $run: evaluation failed (see $out_root/$run/eval.log)"; continue; }
        echo "== $run: $(grep -m1 '^test:' "$out_root/$run/eval.log")"
      done
    done ;;
  collect)
    dir="${1:-results/seeds}"
    for run in "$out_root"/seed*/*/; do
      name="$(basename "$(dirname "$run")")/$(basename "$run")"
      # Reports and logs only: checkpoints are 3.7 MB each and rebuilt by `run`.
      (cd "$run" && find . -type f \( -name '*.json' -o -name '*.jsonl' -o -name '*.log' -o -name '*.toml' \
        -o -name commit \) ! -name driver.log -print0) | while IFS= read -r -d '' f; do
        mkdir -p "$dir/$name/$(dirname "$f")"
        cp "$run/$f" "$dir/$name/$f"
      done
    done
    echo "copied the reports of $(find "$dir" -name results.json | wc -l) finished runs to $dir" ;;
  *) sed -n '2,26p' "${BASH_SOURCE[0]}"; exit 2 ;;
esac
