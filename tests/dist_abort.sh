#!/bin/sh
# dist_abort.sh LIMIT CMD...: runs the MPI job CMD, in which rank 1 throws, and passes only if it
# ends within LIMIT seconds with a non-zero status and rank 1's message (a hang or a silent or
# successful exit fails).
limit=$1
shift
start=$(date +%s)
out=$(timeout -k 5 "$limit" "$@" 2>&1)
rc=$?
elapsed=$(( $(date +%s) - start ))
printf '%s\n' "$out"
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
  echo "FAIL: the job was still running after ${limit} s (a hang)"
  exit 1
fi
if [ "$rc" -eq 0 ]; then
  echo "FAIL: the job exited with status 0"
  exit 1
fi
if ! printf '%s\n' "$out" | grep -q "rank 1: rank 1 fails on purpose"; then
  echo "FAIL: rank 1's message is missing from the output"
  exit 1
fi
echo "PASS: the job ended with status $rc after ${elapsed} s, with rank 1's message"
