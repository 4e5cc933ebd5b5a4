#!/usr/bin/env bash
# The measured runs behind the README's results table (SPEC §5: ResNet-32, Fashion-MNIST-LT,
# 20 epochs, 2 threads), one fmnist_lt invocation per row. Every run holds out 10 training images
# per class (--held-out 10): hyper-parameters (CDT's γ, MFW's α, …) are chosen on that split,
# never on the test set.
#
#   bash scripts/experiments.sh list            print the runs and their status
#   bash scripts/experiments.sh run [NAME...]   run (or resume) the named runs, default: all, in order
#   bash scripts/experiments.sh table           summarise finished runs as a Markdown table
#
# Runs are resumable: a finished run has runs/table/NAME/results.json and is skipped; an
# interrupted one continues from its checkpoint (written every 50 steps), bit for bit.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
out_root="${LTL_RUNS:-runs/table}"
# LTL_BIN: the trainer binary; copy one build aside to keep a whole table on one commit while
# the source moves on (each run records the commit it was built from, if given in LTL_COMMIT).
bin="${LTL_BIN:-build/release/examples/fmnist_lt}"
common=(--epochs 20 --threads 2 --held-out 10 --test-every 5 --quiet)
# Feature deviation, norms, per-class train/test accuracy and gradient norms every 4 epochs for the
# runs behind the figures (ERM vs CDT vs MFW, long-tailed profile).
analysis=(--analysis-every 4)

# name | flags
runs=(
  "exp-erm|--profile exp @analysis"
  "exp-cb-sampling|--profile exp --sampler class"
  "exp-sqrt-sampling|--profile exp --sampler sqrt"
  "exp-progressive|--profile exp --sampler progressive"
  "exp-cb-focal|--profile exp --loss cb-focal --gamma 1.0"
  "exp-ldam-drw|--profile exp --loss ldam --drw-epoch 16"
  "exp-cdt-0.1|--profile exp --loss cdt --gamma 0.1 @analysis"
  "exp-cdt-0.2|--profile exp --loss cdt --gamma 0.2 @analysis"
  "exp-cdt-0.3|--profile exp --loss cdt --gamma 0.3 @analysis"
  "exp-cdt-0.5|--profile exp --loss cdt --gamma 0.5 @analysis"
  "exp-la|--profile exp --loss la --tau 1.0"
  "exp-mfw-0.5|--profile exp --mix mfw --alpha 0.5 --beta 2 @analysis"
  "exp-mfw-1|--profile exp --mix mfw --alpha 1 --beta 2 @analysis"
  "exp-mfw-2|--profile exp --mix mfw --alpha 2 --beta 2 @analysis"
  "exp-mfw-drw|--profile exp --mix mfw --alpha 1 --beta 2 --loss ce --drw-epoch 16"
  "step-erm|--profile step"
  "step-cb-sampling|--profile step --sampler class"
  "step-sqrt-sampling|--profile step --sampler sqrt"
  "step-progressive|--profile step --sampler progressive"
  "step-cb-focal|--profile step --loss cb-focal --gamma 1.0"
  "step-ldam-drw|--profile step --loss ldam --drw-epoch 16"
  "step-cdt-0.1|--profile step --loss cdt --gamma 0.1"
  "step-cdt-0.2|--profile step --loss cdt --gamma 0.2"
  "step-cdt-0.3|--profile step --loss cdt --gamma 0.3"
  "step-cdt-0.5|--profile step --loss cdt --gamma 0.5"
  "step-la|--profile step --loss la --tau 1.0"
  "step-mfw-0.5|--profile step --mix mfw --alpha 0.5 --beta 0.01"
  "step-mfw-1|--profile step --mix mfw --alpha 1 --beta 0.01"
  "step-mfw-2|--profile step --mix mfw --alpha 2 --beta 0.01"
  "step-mfw-drw|--profile step --mix mfw --alpha 1 --beta 0.01 --loss ce --drw-epoch 16"
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
  local extra=()
  if [[ "$flags" == *@analysis* ]]; then flags="${flags/ @analysis/}"; extra=("${analysis[@]}"); fi
  # shellcheck disable=SC2086  # flags are a word list by design
  OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}" "$bin" "${common[@]}" "${extra[@]}" $flags --out "$dir" "$@" \
    >>"$dir/stdout.log" 2>&1
}

cmd="${1:-list}"
if (($# > 0)); then shift; fi
case "$cmd" in
  list)
    for r in "${runs[@]}"; do printf '%-22s %-8s %s\n' "${r%%|*}" "$(status_of "${r%%|*}")" "${r#*|}"; done ;;
  run)
    [[ -x "$bin" ]] || { echo "build $bin first (bash scripts/ltl.sh demo --help builds it)" >&2; exit 1; }
    for r in "${runs[@]}"; do
      name="${r%%|*}"
      if (($# > 0)); then
        keep=0
        for want in "$@"; do [[ "$want" == "$name" ]] && keep=1; done
        ((keep)) || continue
      fi
      run_one "$name" "${r#*|}"
    done ;;
  table)
    python3 - "$out_root" <<'EOF'
import json, pathlib, sys
root = pathlib.Path(sys.argv[1])
print("| run | val mean/class | test top-1 | many | medium | few | per-class test accuracy (%) | s/epoch |")
print("|---|---|---|---|---|---|---|---|")
fmt = lambda v: "—" if v is None else f"{100 * v:.2f}"
for d in sorted(root.iterdir()):
    f = d / "results.json"
    if not f.exists():
        continue
    r = json.loads(f.read_text())
    t, v = r["test"], r.get("val", {})
    pc = " ".join(f"{100 * a:.1f}" for a in t["per_class"])
    print(f"| {d.name} | {fmt(v.get('mean_per_class'))} | {fmt(t['top1'])} | {fmt(t['many'])} | "
          f"{fmt(t['medium'])} | {fmt(t['few'])} | {pc} | {r['seconds_per_epoch']:.0f} |")
EOF
    ;;
  *) sed -n '2,13p' "${BASH_SOURCE[0]}"; exit 2 ;;
esac
