#!/usr/bin/env bash
# Error paths of the example programs (issue 20, findings 1, 4, 5, 8): every bad input ends with
# a one-line message naming the problem and exit status 1 (an ltl::error), never a signal, an
# uncaught exception (status 2 from main_guard.hpp) or a hang. Exit 77 without the dataset.
#
#   bash tests/scripts/error_paths.sh BUILD/examples/fmnist_lt BUILD/examples/decouple
set -euo pipefail
bin="$1" decouple="$2"
data="${LTL_FMNIST_DIR:-/usr/share/datasets/fashion-mnist}"
if [[ ! -f "$data/train-images-idx3-ubyte.gz" ]]; then
  echo "SKIPPED: Debian's dataset-fashion-mnist is not installed in $data (the README test command installs it)"
  exit 77
fi
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

"$bin" "${flags[@]}" "${lim[@]}" --out "$work/run" > /dev/null 2>&1 || fail "the good run failed"
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
"$bin" "${flags[@]}" "${lim[@]}" --out "$work/run" --overwrite > /dev/null 2>&1 || fail "--overwrite did not replace the run"
# Finding 1: a learning rate that makes the weights non-finite after one step.
expect "$bin" "--lr 1e30" "not finite\|NaN\|diverge" --data-dir "$data" --train-limit 64 --batch-size 64 --depth 8 \
  --epochs 1 --threads 1 --quiet --lr 1e30 --out "$work/lr"
echo "error paths: all passed"
