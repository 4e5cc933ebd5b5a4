#!/usr/bin/env bash
# The fmnist_lt command line end to end on real Fashion-MNIST (a CTest test, see
# examples/CMakeLists.txt): a small run writes its report, --evaluate on its checkpoint reproduces
# that report exactly (confusion matrix included), --fsa-phase2 runs a small grid with held-out
# selection, and bad --evaluate input fails with a message that names the problem. Exit 77
# (skipped) without the dataset.
#
#   bash examples/smoke_test.sh BUILD/examples/fmnist_lt
set -euo pipefail
bin="$1"
source "$(dirname "${BASH_SOURCE[0]}")/../tests/scripts/fmnist_dir.sh"
require_fmnist
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { echo "FAILED: $*" >&2; exit 1; }
# A 2-epoch CDT run on 600 images of the step profile with a held-out split, ResNet-8.
flags=(--data-dir "$data" --profile step --held-out 5 --train-limit 600 --threads 2 --quiet --loss cdt --cdt-gamma 0.1)
"$bin" "${flags[@]}" --depth 8 --epochs 2 --out "$work/run" > "$work/train.log"
[[ -f "$work/run/results.json" ]] || fail "the run wrote no results.json"
! compgen -G "$work/run/*.tmp.*" > /dev/null || fail "a temporary file was left behind"
grep -q '"confusion"' "$work/run/results.json" || fail "results.json has no confusion matrix"
# The test report: the "test" object, as dumped at the top level of either file.
report() { sed -n '/^  "test": {/,/^  }/p' "$1"; }
[[ -n "$(report "$work/run/results.json")" ]] || fail "results.json has no test report"

# (into a directory that does not exist yet)
"$bin" "${flags[@]}" --depth 8 --evaluate "$work/run/checkpoint.safetensors" --out "$work/eval" > "$work/eval.log"
[[ -f "$work/eval/eval.json" ]] || fail "--evaluate wrote no eval.json"
grep -q 'confusion (rows: true class' "$work/eval.log" || fail "--evaluate printed no confusion matrix"
if ! diff <(report "$work/run/results.json") <(report "$work/eval/eval.json") > "$work/diff.txt"; then
  cat "$work/diff.txt" >&2
  fail "--evaluate on the final checkpoint does not reproduce the run's own test report"
fi
grep -q '"val": {' "$work/eval/eval.json" || fail "eval.json has no held-out report"

# FSA phase II on the checkpoint: a two-configuration grid, selected on the held-out split.
"$bin" "${flags[@]}" --depth 8 --fsa-phase2 "$work/run/checkpoint.safetensors" --fsa-iters 5 --fsa-na 0,1 \
  --out "$work/fsa" > "$work/fsa.log"
[[ -f "$work/fsa/fsa_results.json" && -f "$work/fsa/fsa_checkpoint.safetensors" ]] ||
  fail "--fsa-phase2 wrote no fsa_results.json or fsa_checkpoint.safetensors"
/usr/bin/python3 - "$work/fsa/fsa_results.json" <<'PY' || fail "fsa_results.json is not a two-configuration grid with a selection"
import json, sys
r = json.load(open(sys.argv[1]))
assert len(r["configs"]) == 2 and r["selected"] in (0, 1) and "val" in r["phase1"]
best = max(c["val"]["mean_per_class"] for c in r["configs"])
assert r["configs"][r["selected"]]["val"]["mean_per_class"] == best
PY
grep -q '^selected on the held-out split' "$work/fsa.log" || fail "--fsa-phase2 printed no selection"

# Bad input: a missing checkpoint, and a checkpoint of another architecture.
expect_error() {
  local what="$1" pattern="$2"
  shift 2
  if "$bin" "$@" > "$work/out.log" 2> "$work/err.log"; then fail "$what: exit status 0"; fi
  grep -qi -- "$pattern" "$work/err.log" || { cat "$work/err.log" >&2; fail "$what: no message matching '$pattern'"; }
}
expect_error "missing checkpoint" "$work/none.safetensors" "${flags[@]}" --depth 8 --evaluate "$work/none.safetensors" --out "$work/x"
expect_error "another depth" "shape\|missing\|unexpected" "${flags[@]}" --depth 14 \
  --evaluate "$work/run/checkpoint.safetensors" --out "$work/y"
echo "fmnist_lt smoke test passed"
