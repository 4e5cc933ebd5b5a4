#!/usr/bin/env bash
# The example programs' flags (a CTest test, see examples/CMakeLists.txt):
#  1. every flag value that means nothing is refused before any work, non-zero exit, with a
#     message naming the flag (issue 20: SIGFPE on --batch-size 0 / --fsa-na -1, silently wrapped
#     or ignored values; issue 21: one flag per meaning, no flag silently ignored);
#  2. with Fashion-MNIST installed (else the rest is skipped, exit 77 at the end): --held-out
#     larger than a class fails before training; a tiny run writes <out>/config.toml and
#     `--config` on it reproduces results.json's numbers; the new trainer flags run; decouple
#     runs every rule on a linear classifier and says which rules a cosine (LDAM) one cannot take.
#
#   bash examples/flags_test.sh BUILD/examples/fmnist_lt BUILD/examples/decouple
set -euo pipefail
bin="$1"
decouple="$2"
source "$(dirname "${BASH_SOURCE[0]}")/../tests/scripts/fmnist_dir.sh"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { echo "FAILED: $*" >&2; exit 1; }
export OMP_WAIT_POLICY=PASSIVE

# expect_error PROGRAM PATTERN ARGS...: non-zero exit, PATTERN (grep -E) in the output, no results.
expect_error() {
  local prog="$1" pattern="$2"
  shift 2
  rm -rf "$work/bad"
  if "$prog" --data-dir "$data" --quiet --out "$work/bad" "$@" > "$work/bad.log" 2>&1; then
    fail "$(basename "$prog") $*: exit status 0"
  fi
  grep -qE -- "$pattern" "$work/bad.log" || { cat "$work/bad.log" >&2; fail "$(basename "$prog") $*: no message matching '$pattern'"; }
  [[ ! -e "$work/bad/results.json" && ! -e "$work/bad/checkpoint.safetensors" ]] || fail "$*: it trained"
}

# Single values (CLI11 checks while parsing).
expect_error "$bin" '^--batch-size: must be > 0, got 0' --batch-size 0
expect_error "$bin" '^--fsa-na: must be >= 0, got -1' --fsa-na 1,-1 --fsa-phase2 "$work/none.safetensors"
expect_error "$bin" "^--profile: 'steps' is not one of exp\|step" --profile steps
expect_error "$bin" "^--fsa-bank: 'disk' is not one of auto\|resident\|streamed" --fsa-bank disk
expect_error "$bin" '^--fsa-bank-limit-gb: must be >= 0, got -1' --fsa-bank-limit-gb -1
expect_error "$bin" '^--threads: must be > 0, got 0' --threads 0
expect_error "$bin" '^--threads: must be > 0, got -3' --threads -3
expect_error "$bin" '^--lr: must be >= 0, got -0.1' --lr -0.1
expect_error "$bin" '^--warmup: must be >= 0' --warmup -1
expect_error "$bin" '^--held-out: must be >= 0' --held-out -5
expect_error "$bin" '^--train-limit: must be >= 0' --train-limit -1
expect_error "$bin" '^--checkpoint-every: must be >= 0' --checkpoint-every -1
expect_error "$bin" '^--analysis-every: must be >= 0' --analysis-every -2
expect_error "$bin" '^--mix-until: must be >= -1' --mix mfw --mix-until -4
expect_error "$bin" '^--seed: must be >= 0, got -1' --seed -1
expect_error "$bin" '^--scale: must be > 0, got 0' --loss ldam --scale 0
expect_error "$bin" '^--margin: must be >= 0, got -1' --loss ldam --margin -1
expect_error "$bin" '^--cdt-gamma: must be >= 0, got -1' --loss cdt --cdt-gamma -1
expect_error "$bin" "^--cdt-gamma: must be a finite number >= 0, got 'inf'" --loss cdt --cdt-gamma inf
expect_error "$bin" "^--cdt-gamma: must be a finite number >= 0, got 'nan'" --loss cdt --cdt-gamma nan
expect_error "$bin" '^--cb-beta: must be a number in \[0, 1\)' --loss cb --cb-beta 1
expect_error "$bin" "^--loss: 'cb_focal' is not one of ce\|cdt\|ldam\|la\|focal\|inv-freq\|cb\|cb-focal" --loss cb_focal
expect_error "$bin" "^--sampler: 'balanced' is not one of" --sampler balanced
expect_error "$bin" "^--mfw-spread: 'harmonic' is not one of geometric\|arithmetic" --mix mfw --mfw-spread harmonic
expect_error "$bin" '^--per-class: must be > 0' --sampler class-aware --per-class 0
# --gamma meant three things; it now names the three flags that replace it.
expect_error "$bin" '^--gamma: is ambiguous .* use --cdt-gamma .*--focal-gamma .*--inv-freq-power' --loss cdt --gamma 0.1
# Combinations (the program's own checks, before the data is read).
expect_error "$bin" '^fmnist_lt: --cdt-gamma only applies with --loss cdt' --loss focal --cdt-gamma 0.2
expect_error "$bin" '^fmnist_lt: --focal-gamma only applies with --loss focal or cb-focal' --loss cdt --focal-gamma 2
expect_error "$bin" '^fmnist_lt: --inv-freq-power only applies with --loss inv-freq' --inv-freq-power 0.5
expect_error "$bin" '^fmnist_lt: --tau only applies with --loss la' --loss ce --tau 2
expect_error "$bin" '^fmnist_lt: --margin only applies with --loss ldam' --margin 0.3
for l in inv-freq cb cb-focal; do
  expect_error "$bin" "^fmnist_lt: --drw-epoch only applies with an unweighted loss .*--loss $l already re-weights" \
    --loss "$l" --drw-epoch 3
done
expect_error "$bin" '^fmnist_lt: --drw-epoch 5 is not before the last epoch' --drw-epoch 5 --epochs 5
expect_error "$bin" '^fmnist_lt: --sampler-q only applies with --sampler power' --sampler class --sampler-q 0.3
expect_error "$bin" '^fmnist_lt: --epoch-size only applies with --sampler class-aware' --epoch-size 100
expect_error "$bin" '^fmnist_lt: --drs-epoch only applies with --sampler drs' --drs-epoch 4
expect_error "$bin" '^fmnist_lt: --mix-point only applies with --mix' --mix-point stage2
expect_error "$bin" '^fmnist_lt: --alpha only applies with --mix' --alpha 0.5
expect_error "$bin" '^fmnist_lt: --beta only applies with --mix mfw' --mix mixup --beta 1
expect_error "$bin" '^fmnist_lt: --mix-point stage2: --mix mixup mixes the input images' --mix mixup --mix-point stage2
expect_error "$bin" '^fmnist_lt: --mix-until 3 must be after --mix-from 3' --mix mfw --mix-from 3 --mix-until 3
expect_error "$bin" 'not readable' --config "$work/none.toml"
expect_error "$bin" "^--reduce-over 'gloo': auto, mpi or nccl" --reduce-over gloo
expect_error "$bin" '^--device: this binary was built without CUDA.*_cuda' --device cuda
expect_error "$decouple" '^--crt-epochs: must be > 0' --crt-epochs 0
expect_error "$decouple" "^--stage2-sampler: 'random' is not one of class-aware\|two-stage" --stage2-sampler random
expect_error "$decouple" "^--ncm: 'cosine' is not one of cos\|l2\|cl2n" --ncm cosine
expect_error "$decouple" "^--nc-tau-bias: 'keep' is not one of drop\|scale" --nc-tau-bias keep
expect_error "$decouple" '^--tau-grid' --tau-grid 0,1
expect_error "$decouple" '^--tau-grid: must be >= 0' --tau-grid 0,1,-0.1
expect_error "$decouple" '^decouple: --tau-grid 1,0,0.1: needs lo <= hi and a step > 0' --tau-grid 1,0,0.1
expect_error "$decouple" '^decouple: --la-tau-grid 0,2,0: needs lo <= hi and a step > 0' --la-tau-grid 0,2,0
expect_error "$decouple" '^--worst: must be >= 0' --worst -1
echo "flag rejections: all refused with a message naming the flag"

require_fmnist rest
expect_error "$bin" '^fmnist_lt: --held-out 60: class 9 of the exp profile \(rho 100\) has only 60 images; hold out at most 59' \
  --held-out 60 --epochs 1
expect_error "$bin" 'fmnist_lt: --reduce-over nccl sums GPU gradients: it needs --device cuda' --reduce-over nccl --epochs 1

# A tiny run (ResNet-8, 600 images, 1 epoch) and the same run again from its config.toml.
tiny=(--data-dir "$data" --profile step --held-out 5 --train-limit 600 --depth 8 --epochs 1 --threads 2 --quiet)
"$bin" "${tiny[@]}" --loss cdt --cdt-gamma 0.2 --out "$work/a" > "$work/a.log" 2>&1 || { cat "$work/a.log" >&2; fail "tiny run"; }
[[ -f "$work/a/config.toml" ]] || fail "the run wrote no config.toml"
grep -q '^cdt-gamma=0.2$' "$work/a/config.toml" || fail "config.toml lacks cdt-gamma=0.2"
grep -q '^mfw-spread="geometric"$' "$work/a/config.toml" || fail "config.toml lacks the defaults (mfw-spread)"
"$bin" --config "$work/a/config.toml" --out "$work/b" > "$work/b.log" 2>&1 || { cat "$work/b.log" >&2; fail "--config run"; }
/usr/bin/python3 - "$work/a/results.json" "$work/b/results.json" <<'PY' || fail "--config <out>/config.toml did not reproduce results.json"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
assert a["test"] == b["test"] and a["val"] == b["val"], "reports differ"
PY
# A flag given next to --config overrides the file's value.
grep -q '^cdt-gamma=0.2$' "$work/b/config.toml" || fail "the rerun's config.toml lost cdt-gamma"
"$decouple" --config "$work/a/config.toml" --out "$work/a" --no-retrain --worst 2 --nc-tau-bias scale > "$work/d.log" 2>&1 ||
  { cat "$work/d.log" >&2; fail "decouple --no-retrain on a linear classifier"; }
for r in joint 'NCM (cos)' 'NCM (L2)' 'NCM (cl2n)' tau-norm 'N_c^tau' 'post-hoc LA'; do
  grep -q "^$r " "$work/d.log" || { cat "$work/d.log" >&2; fail "decouple printed no '$r' row"; }
done
! grep -q '^cRT \|^LWS ' "$work/d.log" || fail "--no-retrain still retrained"
grep -q 'worst 2 classes' "$work/d.log" || fail "decouple --worst 2 printed no worst-class column"
[[ -f "$work/a/decouple_config.toml" ]] && grep -q '^nc-tau-bias="scale"$' "$work/a/decouple_config.toml" ||
  fail "decouple wrote no decouple_config.toml with its flags"
# Stage 2 with its own budget flags (one short epoch each).
"$decouple" --config "$work/a/config.toml" --out "$work/a" --ncm cl2n --crt-epochs 1 --lws-epochs 1 --learn-tau-epochs 1 \
  --stage2-epoch-size 256 --stage2-per-class 2 --stage2-sampler two-stage > "$work/d2.log" 2>&1 ||
  { cat "$work/d2.log" >&2; fail "decouple with stage-2 flags"; }
for r in cRT LWS 'tau-norm (learned tau)' 'NCM (cl2n)'; do
  grep -q "^$r " "$work/d2.log" || { cat "$work/d2.log" >&2; fail "decouple printed no '$r' row"; }
done
! grep -q '^NCM (cos)' "$work/d2.log" || fail "--ncm cl2n still printed NCM (cos)"

# New trainer flags run (2 short epochs each): MFW's arithmetic reading from epoch 1 with the
# class-aware sampler's parameters and focal's own gamma; the power sampler with inv-freq's
# exponent and remix at a feature point.
short=(--data-dir "$data" --profile exp --train-limit 300 --depth 8 --epochs 2 --threads 2 --quiet --checkpoint-every 0
       --overwrite)  # both runs write into $work/n
for extra in "--mix mfw --mfw-spread arithmetic --mix-from 1 --alpha 0.5 --sampler class-aware --per-class 4 \
--epoch-size 256 --loss focal --focal-gamma 2" \
  "--sampler power --sampler-q 0.3 --loss inv-freq --inv-freq-power 0.5 --mix remix --mix-point stage1"; do
  # shellcheck disable=SC2086
  "$bin" "${short[@]}" $extra --out "$work/n" > "$work/n.log" 2>&1 || { cat "$work/n.log" >&2; fail "fmnist_lt $extra"; }
done
grep -q '^mix-point="stage1"$' "$work/n/config.toml" || fail "--mix remix --mix-point stage1 not recorded"
grep -q '^sampler-q=0.3$' "$work/n/config.toml" || fail "--sampler-q not recorded"

# LDAM's cosine classifier: the rules on logits run, the others are named as not applicable.
"$bin" "${tiny[@]}" --loss ldam --out "$work/ldam" > "$work/l.log" 2>&1 || { cat "$work/l.log" >&2; fail "tiny LDAM run"; }
"$decouple" --config "$work/ldam/config.toml" --out "$work/ldam" --crt-epochs 1 --stage2-epoch-size 256 > "$work/dl.log" 2>&1 ||
  { cat "$work/dl.log" >&2; fail "decouple on a cosine classifier"; }
for r in joint 'NCM (cl2n)' cRT 'N_c^tau' 'post-hoc LA'; do
  grep -q "^$r " "$work/dl.log" || { cat "$work/dl.log" >&2; fail "decouple (cosine) printed no '$r' row"; }
done
for r in tau-norm LWS 'tau-norm (learned tau)'; do
  grep -q "^$r  *not applicable: the checkpoint's classifier is a cosine classifier" "$work/dl.log" ||
    { cat "$work/dl.log" >&2; fail "decouple (cosine) did not say that '$r' does not apply"; }
done
echo "flags test passed"
