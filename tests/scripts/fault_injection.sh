#!/usr/bin/env bash
# Fault injection (issue 20, finding 7): fmnist_lt is killed with SIGKILL (LTL_FAULT, see
# include/ltlearn/train/fault.hpp) at named points of checkpointing, logging and the final
# report, then started again as a user would (--resume when a checkpoint exists). Each time the
# final checkpoint, analysis.jsonl (--analysis-every 1: a line per epoch, appended after the log
# line and before the epoch's checkpoint; it holds no timing field), log.jsonl and results.json
# must equal an uninterrupted run's bit for bit, timing fields aside (log: seconds, images_per_sec; results:
# seconds_per_epoch, and args, which name --resume), and no temporary file may be left. Exit 77
# (skipped) without the dataset.
#
#   bash tests/scripts/fault_injection.sh BUILD/examples/fmnist_lt [POINT...]
set -euo pipefail
bin="$1"
shift
source "$(dirname "${BASH_SOURCE[0]}")/fmnist_dir.sh"
require_fmnist
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { echo "FAILED: $*" >&2; exit 1; }
# 3 steps per epoch, 2 epochs, a checkpoint every 2 steps: checkpoint writes #1 step 2, #2 end of
# epoch 1, #3 step 4, #4 step 6, #5 end of epoch 2 (the final one); the test split after epoch 2.
# Each epoch appends log.jsonl, then analysis.jsonl, then writes its checkpoint: a kill at
# log.jsonl:after_append#2 falls between the first two, checkpoint before_rename#5 after both.
flags=(--data-dir "$data" --train-limit 192 --batch-size 64 --depth 8 --epochs 2 --checkpoint-every 2
       --test-every 2 --threads 1 --quiet --analysis-every 1)
points=("$@")
if ((${#points[@]} == 0)); then
  points=(checkpoint.safetensors:mid_write#1 checkpoint.safetensors:mid_write#2
          checkpoint.safetensors:before_fsync#2 checkpoint.safetensors:before_rename#5
          checkpoint.safetensors:after_rename#2 checkpoint.safetensors:after_rename#5
          log.jsonl:after_append#1 log.jsonl:before_append#2
          results.json:mid_write#1 results.json:after_rename#1)
fi

"$bin" "${flags[@]}" --out "$work/ref" > "$work/ref.log" 2>&1 || { cat "$work/ref.log" >&2; fail "the reference run failed"; }
[[ -f "$work/ref/results.json" ]] || fail "the reference run wrote no results.json"
(($(wc -l < "$work/ref/analysis.jsonl") == 2)) || fail "the reference run's analysis.jsonl has not one line per epoch"
# The analysis hook runs before each epoch's checkpoint; it must not change what training saves.
"$bin" "${flags[@]:0:${#flags[@]}-2}" --out "$work/plain" > "$work/plain.log" 2>&1 ||
  { cat "$work/plain.log" >&2; fail "the run without --analysis-every failed"; }
[[ ! -e "$work/plain/analysis.jsonl" ]] || fail "a run without --analysis-every wrote analysis.jsonl"
cmp -s "$work/ref/checkpoint.safetensors" "$work/plain/checkpoint.safetensors" ||
  fail "the checkpoint of a run with --analysis-every differs from one without"

source "$(dirname "${BASH_SOURCE[0]}")/strip_timing.sh"

for point in "${points[@]}"; do
  out="$work/${point//[:#]/_}"
  set +e
  LTL_FAULT="$point" "$bin" "${flags[@]}" --out "$out" > "$out.kill.log" 2>&1
  rc=$?
  set -e
  ((rc == 137)) || { cat "$out.kill.log" >&2; fail "$point: expected death by SIGKILL (137), got exit status $rc"; }
  grep -q "LTL_FAULT: killing the process at ${point%#*}" "$out.kill.log" || fail "$point: the fault did not announce itself"
  again=()
  [[ -f "$out/checkpoint.safetensors" ]] && again=(--resume "$out/checkpoint.safetensors")
  "$bin" "${flags[@]}" --out "$out" "${again[@]}" > "$out.resume.log" 2>&1 ||
    { cat "$out.resume.log" >&2; fail "$point: the run after the kill failed"; }
  cmp -s "$work/ref/checkpoint.safetensors" "$out/checkpoint.safetensors" || fail "$point: the final checkpoint differs"
  cmp -s "$work/ref/analysis.jsonl" "$out/analysis.jsonl" || fail "$point: analysis.jsonl differs (or is missing)"
  for f in log.jsonl results.json; do
    [[ -f "$out/$f" ]] || fail "$point: no $f after the resumed run"
    diff <(strip "$work/ref/$f") <(strip "$out/$f") > "$out.diff" || { cat "$out.diff" >&2; fail "$point: $f differs"; }
  done
  ! compgen -G "$out/*.tmp.*" > /dev/null || fail "$point: a temporary file was left: $(ls "$out")"
  echo "ok: killed at $point (${again[*]:-fresh start}), resumed output matches"
done
echo "fault injection: ${#points[@]} kill points passed"
