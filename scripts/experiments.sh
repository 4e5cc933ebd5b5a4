#!/usr/bin/env bash
# The measured runs behind the README's results table (SPEC §5: ResNet-32, Fashion-MNIST-LT,
# 20 epochs, 2 threads), one fmnist_lt invocation per row. Every run holds out 10 training images
# per class (--held-out 10): hyper-parameters (CDT's γ, MFW's α, …) are chosen on that split,
# never on the test set.
#
#   bash scripts/experiments.sh list            print the runs and their status
#   bash scripts/experiments.sh run [NAME...]   run (or resume) the named runs, default: all, in order
#   bash scripts/experiments.sh table           summarise finished runs as Markdown tables
#   bash scripts/experiments.sh decouple        stage 2 (examples/decouple) on the ERM and chosen CDT runs
#   bash scripts/experiments.sh fsa             FSA phase II on the ERM runs (grid on the held-out split)
#   bash scripts/experiments.sh figures [DIR]   ERM vs CDT vs MFW figures (default docs/figures)
#   bash scripts/experiments.sh evaluate [NAME...]  re-evaluate finished runs' checkpoints (confusion
#                                               matrices) into RUN/eval/eval.json, default: all
#   bash scripts/experiments.sh collect [DIR]   copy the runs' logs and reports, not checkpoints (default results/table)
#
# Runs are resumable: a finished run has runs/table/NAME/results.json and is skipped; an
# interrupted one continues from its checkpoint (written every 50 steps), bit for bit.
# Grids (CDT's gamma, MFW's alpha) are decided by scripts/results_table.py on the held-out split.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
out_root="${LTL_RUNS:-runs/table}"
# LTL_BIN: the trainer binary; copy one build aside to keep a whole table on one commit while
# the source moves on (each run records the commit it was built from, if given in LTL_COMMIT).
bin="${LTL_BIN:-build/release/examples/fmnist_lt}"
decouple_bin="${LTL_DECOUPLE_BIN:-build/release/examples/decouple}"
py=/usr/bin/python3
# FSA phase II grid (Chu et al.: h_r 0.9, N_a = N_f = 3, lr 0.001, 6,400 iterations).
fsa_grid=(--fsa-hr 0.8,0.9 --fsa-ts 0.5,0.7 --fsa-tg 0.3,0.5 --fsa-na 1,3,5 --fsa-nf 1,3)
common=(--epochs 20 --threads 2 --held-out 10 --test-every 5 --quiet)
# Feature deviation, norms, per-class train/test accuracy and gradient norms every 4 epochs for the
# runs behind the figures (ERM vs CDT vs MFW, long-tailed profile).
analysis=(--analysis-every 4)

# name | flags (ERM, CDT and MFW first: the stage-1 models of the decoupling and FSA rows)
runs=(
  "exp-erm|--profile exp @analysis"
  "exp-cdt-0.1|--profile exp --loss cdt --gamma 0.1 @analysis"
  "exp-cdt-0.2|--profile exp --loss cdt --gamma 0.2 @analysis"
  "exp-cdt-0.3|--profile exp --loss cdt --gamma 0.3 @analysis"
  "exp-cdt-0.5|--profile exp --loss cdt --gamma 0.5 @analysis"
  "exp-mfw-0.5|--profile exp --mix mfw --alpha 0.5 --beta 2 @analysis"
  "exp-mfw-1|--profile exp --mix mfw --alpha 1 --beta 2 @analysis"
  "exp-mfw-2|--profile exp --mix mfw --alpha 2 --beta 2 @analysis"
  "exp-cb-sampling|--profile exp --sampler class"
  "exp-sqrt-sampling|--profile exp --sampler sqrt"
  "exp-progressive|--profile exp --sampler progressive"
  "exp-cb-focal|--profile exp --loss cb-focal --gamma 1.0"
  "exp-ldam-drw|--profile exp --loss ldam --drw-epoch 16"
  "exp-la|--profile exp --loss la --tau 1.0"
  "exp-mfw-drw|--profile exp --mix mfw --alpha @mfw-alpha --beta 2 --loss ce --drw-epoch 16"
  "step-erm|--profile step"
  "step-cdt-0.1|--profile step --loss cdt --gamma 0.1"
  "step-cdt-0.2|--profile step --loss cdt --gamma 0.2"
  "step-cdt-0.3|--profile step --loss cdt --gamma 0.3"
  "step-cdt-0.5|--profile step --loss cdt --gamma 0.5"
  "step-mfw-0.5|--profile step --mix mfw --alpha 0.5 --beta 0.01"
  "step-mfw-1|--profile step --mix mfw --alpha 1 --beta 0.01"
  "step-mfw-2|--profile step --mix mfw --alpha 2 --beta 0.01"
  "step-cb-sampling|--profile step --sampler class"
  "step-sqrt-sampling|--profile step --sampler sqrt"
  "step-progressive|--profile step --sampler progressive"
  "step-cb-focal|--profile step --loss cb-focal --gamma 1.0"
  "step-ldam-drw|--profile step --loss ldam --drw-epoch 16"
  "step-la|--profile step --loss la --tau 1.0"
  "step-mfw-drw|--profile step --mix mfw --alpha @mfw-alpha --beta 0.01 --loss ce --drw-epoch 16"
  # MFW + DRW's control: the same deferred re-weighting on plain cross-entropy.
  "exp-ce-drw|--profile exp --loss ce --drw-epoch 16"
  "step-ce-drw|--profile step --loss ce --drw-epoch 16"
  # Step MFW + DRW with MFW switched off when DRW starts (a diagnostic of its step row, README).
  "step-mfw-drw-mix16|--profile step --mix mfw --alpha 2 --beta 0.01 --loss ce --drw-epoch 16 --mix-until 16"
  # The MFW direction check (README), first against run-to-run noise: ERM and MFW (α 0.5) again
  # with another seed (which also draws another held-out split and batch order) ...
  "seed1-erm|--profile exp --seed 1"
  "seed1-mfw-0.5|--profile exp --mix mfw --alpha 0.5 --beta 2 --seed 1"
  # ... then on a 1.5× longer schedule (the learning-rate steps move with it, to epochs 24 and 27):
  # the paper trains 200–300 epochs and notes that MFW needs more epochs than ERM to converge.
  "long-erm|--profile exp --epochs 30"
  "long-mfw-0.5|--profile exp --mix mfw --alpha 0.5 --beta 2 --epochs 30"
)

status_of() {
  local dir="$out_root/$1"
  if [[ -f "$dir/results.json" ]]; then echo done
  elif [[ -f "$dir/checkpoint.safetensors" ]]; then echo partial
  else echo pending; fi
}

run_one() {
  local name="$1" flags="$2" dir="$out_root/$1"
  case "$(status_of "$name")" in
    done) echo "== $name: done"; return ;;
    partial) echo "== $name: resuming"; set -- --resume "$dir/checkpoint.safetensors" ;;
    *) echo "== $name: starting"; set -- ;;
  esac
  mkdir -p "$dir"
  [[ -n "${LTL_COMMIT:-}" ]] && echo "$LTL_COMMIT" >>"$dir/commit"
  # MFW + DRW takes the α chosen for MFW on the same profile's held-out split.
  if [[ "$flags" == *@mfw-alpha* ]]; then
    local sel
    sel="$("$py" scripts/results_table.py "$out_root" select "${name%%-*}-mfw")" ||
      { echo "== $name: skipped, the ${name%%-*}-mfw grid has not finished"; return; }
    flags="${flags/@mfw-alpha/${sel##*-}}"
  fi
  local extra=() base=("${common[@]}")
  if [[ "$flags" == *@analysis* ]]; then flags="${flags/ @analysis/}"; extra=("${analysis[@]}"); fi
  if [[ "$flags" == *--epochs* ]]; then base=("${common[@]:2}"); fi  # the run sets its own epochs
  # shellcheck disable=SC2086  # flags are a word list by design
  OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}" "$bin" "${base[@]}" "${extra[@]}" $flags --out "$dir" "$@" \
    >>"$dir/stdout.log" 2>&1
}

# selected NAME [WANTED...]: whether NAME is among the wanted runs (all runs when none are named).
selected() {
  local name="$1" want
  shift
  (($# == 0)) && return 0
  for want in "$@"; do [[ "$want" == "$name" ]] && return 0; done
  return 1
}

# data_flags NAME: the flags that rebuild finished run NAME's data split and model (--profile,
# --rho, --seed, --held-out, --depth, --loss as the run recorded them), so the stage-2, FSA and
# evaluation commands take them from the run instead of restating the run table.
data_flags() { "$py" scripts/results_table.py "$out_root" data-flags "$1"; }

cmd="${1:-list}"
if (($# > 0)); then shift; fi
case "$cmd" in
  list)
    for r in "${runs[@]}"; do printf '%-22s %-8s %s\n' "${r%%|*}" "$(status_of "${r%%|*}")" "${r#*|}"; done ;;
  run)
    [[ -x "$bin" ]] || { echo "build $bin first (bash scripts/ltl.sh demo --help builds it)" >&2; exit 1; }
    for r in "${runs[@]}"; do
      name="${r%%|*}"
      selected "$name" "$@" || continue
      run_one "$name" "${r#*|}"
    done ;;
  table) "$py" scripts/results_table.py "$out_root" table ;;
  decouple)
    for p in exp step; do
      for run in "$p-erm" "$("$py" scripts/results_table.py "$out_root" select "$p-cdt")"; do
        [[ -f "$out_root/$run/results.json" ]] || { echo "== $run: not finished, skipped"; continue; }
        echo "== $run: decouple"
        # shellcheck disable=SC2046  # the run's data flags are a word list
        OMP_WAIT_POLICY=PASSIVE "$decouple_bin" $(data_flags "$run") --threads 2 --out "$out_root/$run" \
          >"$out_root/$run/decouple.log" 2>&1
      done
    done
    "$py" scripts/results_table.py "$out_root" decouple ;;
  fsa)
    for p in exp step; do
      run="$out_root/$p-erm"
      [[ -f "$run/results.json" ]] || { echo "== $p-erm: not finished, skipped"; continue; }
      echo "== $p-erm: FSA phase II"
      mkdir -p "$run/fsa"
      # shellcheck disable=SC2046  # the run's data flags are a word list
      OMP_WAIT_POLICY=PASSIVE "$bin" $(data_flags "$p-erm") --threads 2 --quiet \
        --fsa-phase2 "$run/checkpoint.safetensors" "${fsa_grid[@]}" --out "$run/fsa" >"$run/fsa/stdout.log" 2>&1
      # Ablation: the selected configuration without augmented samples (N_a = 0), i.e. only the
      # head/tail-balanced fine-tuning of the classifier.
      read -r hr ts tg nf < <("$py" -c 'import json, sys
r = json.load(open(sys.argv[1])); c = r["configs"][r["selected"]]
print(c["h_r"], c["tau_s"], c["tau_g"], c["N_f"])' "$run/fsa/fsa_results.json")
      mkdir -p "$run/fsa-na0"
      # shellcheck disable=SC2046
      OMP_WAIT_POLICY=PASSIVE "$bin" $(data_flags "$p-erm") --threads 2 --quiet \
        --fsa-phase2 "$run/checkpoint.safetensors" --fsa-hr "$hr" --fsa-ts "$ts" --fsa-tg "$tg" --fsa-na 0 \
        --fsa-nf "$nf" --out "$run/fsa-na0" >"$run/fsa-na0/stdout.log" 2>&1
    done
    "$py" scripts/results_table.py "$out_root" decouple ;;
  figures)
    dir="${1:-docs/figures}"
    cdt="$("$py" scripts/results_table.py "$out_root" select exp-cdt)"
    mfw="$("$py" scripts/results_table.py "$out_root" select exp-mfw)"
    "$py" scripts/plot_analysis.py --out "$dir" --compare "ERM=$out_root/exp-erm" "CDT (γ ${cdt##*-})=$out_root/$cdt" \
      "MFW (α ${mfw##*-})=$out_root/$mfw"
    # Single-run figures: the post-hoc rules' tau curves on ERM, MFW's feature-gradient norms.
    tmp="$(mktemp -d)"
    "$py" scripts/plot_analysis.py "$out_root/exp-erm" --out "$tmp/erm" >/dev/null
    "$py" scripts/plot_analysis.py "$out_root/$mfw" --out "$tmp/mfw" >/dev/null
    cp "$tmp/erm/tau_curves.png" "$dir/erm_tau_curves.png"
    cp "$tmp/mfw/gradient_norms_epochs.png" "$dir/mfw_gradient_norms_epochs.png"
    rm -rf "$tmp"
    echo "wrote $dir/erm_tau_curves.png and $dir/mfw_gradient_norms_epochs.png" ;;
  evaluate)
    # --evaluate came after the tables' frozen binaries: the current build evaluates (it
    # reproduces each run's own test report exactly, checked on every run the README cites).
    eval_bin="${LTL_EVAL_BIN:-build/release/examples/fmnist_lt}"
    for r in "${runs[@]}"; do
      name="${r%%|*}"
      selected "$name" "$@" || continue
      [[ -f "$out_root/$name/results.json" ]] || continue
      # shellcheck disable=SC2046  # the data flags are a word list
      OMP_WAIT_POLICY=PASSIVE "$eval_bin" $(data_flags "$name") \
        --threads 2 --quiet --evaluate "$out_root/$name/checkpoint.safetensors" --out "$out_root/$name/eval" \
        >"$out_root/$name/eval.log" 2>&1 ||
        { echo "== $name: evaluation failed (see $out_root/$name/eval.log)"; continue; }
      echo "== $name: $(grep -m1 '^test:' "$out_root/$name/eval.log")"
    done ;;
  collect)
    dir="${1:-results/table}"
    for run in "$out_root"/*/; do
      name="$(basename "$run")"
      # Reports and logs only: checkpoints are 3.7 MB each and rebuilt by `run`.
      (cd "$run" && find . -type f \( -name '*.json' -o -name '*.jsonl' -o -name '*.log' -o -name commit \) \
        ! -name driver.log -print0) | while IFS= read -r -d '' f; do
        mkdir -p "$dir/$name/$(dirname "$f")"
        cp "$run/$f" "$dir/$name/$f"
      done
    done
    echo "copied the reports of $(find "$dir" -name results.json | wc -l) finished runs to $dir" ;;
  *) sed -n '2,19p' "${BASH_SOURCE[0]}"; exit 2 ;;
esac
