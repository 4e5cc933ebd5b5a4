#!/usr/bin/env bash
# Error paths of the example programs (issue 20, findings 1, 4, 5, 8): every bad input ends with
# a one-line message naming the problem and exit status 1 (an ltl::error), never a signal, an
# uncaught exception (status 2 from main_guard.hpp) or a hang. Exit 77 without the dataset.
#
#   bash tests/scripts/error_paths.sh BUILD/examples/fmnist_lt BUILD/examples/decouple
set -euo pipefail
bin="$1" decouple="$2"
source "$(dirname "${BASH_SOURCE[0]}")/fmnist_dir.sh"
require_fmnist
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { echo "FAILED: $*" >&2; exit 1; }
flags=(--data-dir "$data" --batch-size 64 --depth 8 --epochs 1 --threads 1 --quiet)
lim=(--train-limit 128)
# expect PROGRAM WHAT PATTERN ARGS...: exit status 1 within 120 s, stderr matching PATTERN.
expect() {
  local prog="$1" what="$2" pattern="$3" rc=0
  shift 3
  timeout 120 "$prog" "$@" > "$work/out.log" 2> "$work/err.log" < /dev/null || rc=$?
  ((rc == 1)) || { cat "$work/err.log" >&2; fail "$what: expected exit status 1, got $rc"; }
  grep -qi -- "$pattern" "$work/err.log" || { cat "$work/err.log" >&2; fail "$what: no message matching '$pattern'"; }
  echo "ok: $what"
}

"$bin" "${flags[@]}" "${lim[@]}" --out "$work/run" --analysis-every 1 > /dev/null 2>&1 || fail "the good run failed"
ckpt="$work/run/checkpoint.safetensors"
# Finding 4: unusable --out, directories where files are expected, bad checkpoint headers.
touch "$work/file"
expect "$bin" "--out is a file" "not a directory" "${flags[@]}" "${lim[@]}" --out "$work/file"
expect "$bin" "--out under /proc" "/proc" "${flags[@]}" "${lim[@]}" --out /proc/ltl_run
expect "$bin" "--out is /proc" "not writable" "${flags[@]}" "${lim[@]}" --out /proc
expect "$bin" "--resume a directory" "not a regular file\|directory" "${flags[@]}" "${lim[@]}" --out "$work/r1" --resume "$work"
expect "$bin" "--evaluate a directory" "not a regular file\|directory" "${flags[@]}" "${lim[@]}" --out "$work/e1" --evaluate "$work"
expect "$decouple" "decouple --checkpoint a directory" "not a regular file\|directory" \
  --data-dir "$data" --depth 8 --threads 1 --out "$work/d1" --checkpoint "$work"
printf '\x10\0\0\0\0\0\0\0{"a":1e999}     ' > "$work/overflow.safetensors"
expect "$bin" "header number overflowing a double" "overflow.safetensors" "${flags[@]}" "${lim[@]}" --out "$work/e2" \
  --evaluate "$work/overflow.safetensors"
# Finding 5: endless and blocking inputs.
expect "$bin" "--resume /dev/zero" "/dev/zero" "${flags[@]}" "${lim[@]}" --out "$work/r2" --resume /dev/zero
mkfifo "$work/fifo"
expect "$bin" "--evaluate a FIFO" "fifo" "${flags[@]}" "${lim[@]}" --out "$work/e3" --evaluate "$work/fifo"
# Finding 8: another experiment, a reused --out.
expect "$bin" "resume under another seed" "seed: checkpoint 0, this run 1" "${flags[@]}" "${lim[@]}" --seed 1 --out "$work/r3" \
  --resume "$ckpt"
expect "$bin" "resume under another train limit" "train_limit: checkpoint 128, this run 64" "${flags[@]}" \
  --train-limit 64 --out "$work/r4" --resume "$ckpt"
expect "$bin" "a second run into the same --out" "holds another run" "${flags[@]}" "${lim[@]}" --out "$work/run"
"$bin" "${flags[@]}" "${lim[@]}" --seed 1 --out "$work/r3" --resume "$ckpt" --force-resume > /dev/null 2>&1 ||
  fail "--force-resume did not resume"
# --overwrite: no file of the replaced run may survive next to the new one, not even while the
# new run trains (it is killed at its first checkpoint write, after its first log line), and the
# user's own files stay. The old run's files: its checkpoint, logs, report and config, what the
# other modes and decouple write there, and a killed writer's temporary.
for f in log.jsonl analysis.jsonl results.json checkpoint.safetensors config.toml; do
  [[ -s "$work/run/$f" ]] || fail "the good run wrote no $f"
done
old_files=(eval.json eval_config.toml fsa_results.json fsa_config.toml fsa_checkpoint.safetensors decouple.json
           decouple_config.toml analysis.json checkpoint.safetensors.tmp.999999999)
for f in "${old_files[@]}"; do echo old > "$work/run/$f"; done
echo mine > "$work/run/notes.txt"
cp "$work/run/log.jsonl" "$work/old_log.jsonl"
set +e
LTL_FAULT=checkpoint.safetensors:mid_write "$bin" "${flags[@]}" "${lim[@]}" --seed 3 --out "$work/run" --overwrite \
  > "$work/ow.log" 2>&1
rc=$?
set -e
((rc == 137)) || { cat "$work/ow.log" >&2; fail "--overwrite: expected the kill at the first checkpoint write, got $rc"; }
for f in analysis.jsonl results.json checkpoint.safetensors "${old_files[@]}"; do
  [[ ! -e "$work/run/$f" ]] || fail "--overwrite: the replaced run's $f is still there while the new run trains"
done
(($(wc -l < "$work/run/log.jsonl") == 1)) && ! cmp -s "$work/run/log.jsonl" "$work/old_log.jsonl" ||
  fail "--overwrite: log.jsonl is not the new run's one line"
"$bin" "${flags[@]}" "${lim[@]}" --seed 3 --out "$work/run" --overwrite > /dev/null 2>&1 ||
  fail "--overwrite did not replace the run"
for f in "${old_files[@]}" analysis.jsonl; do
  [[ ! -e "$work/run/$f" ]] || fail "--overwrite: the replaced run's $f survived the new run"
done
grep -qE "^seed ?= ?3$" "$work/run/config.toml" || fail "--overwrite: config.toml is not the new run's"
[[ -s "$work/run/results.json" && "$(cat "$work/run/notes.txt")" == mine ]] ||
  fail "--overwrite: the new run's results.json is missing or the user's notes.txt was touched"
echo "ok: --overwrite removes every file of the replaced run before training"
# Paths that are not UTF-8 end up in results.json ("args"): written with U+FFFD, not a crash
# after the whole run (nlohmann::type_error 316).
odd="$work/odd_$(printf '\xff')"
"$bin" "${flags[@]}" --train-limit 64 --out "$odd" > "$work/odd.log" 2>&1 ||
  { cat "$work/odd.log" >&2; fail "a run whose --out is not UTF-8 failed"; }
grep -q $'\xef\xbf\xbd' "$odd/results.json" || fail "results.json of a non-UTF-8 --out lacks the replacement character"
echo "ok: a non-UTF-8 --out"
# Finding 1: a learning rate that makes the weights non-finite after one step.
expect "$bin" "--lr 1e30" "not finite\|NaN\|diverge" --data-dir "$data" --train-limit 64 --batch-size 64 --depth 8 \
  --epochs 1 --threads 1 --quiet --lr 1e30 --out "$work/lr"
echo "error paths: all passed"
