#!/usr/bin/env bash
# Smoke test of imagenet_lt and inat_lt on a generated JPEG set (image_smoke_data): ResNet-10 at
# 32 pixels, one epoch each, a few seconds. Checks: a corrupt image stops a run naming the file;
# --skip-bad-images skips and counts it; results, log and checkpoint are written; --resume
# continues at the next epoch; --init loads an exported torchvision file; --subset cuts the
# classes; inat_lt saves the category mapping.
#   image_smoke_test.sh <image_smoke_data> <imagenet_lt> <inat_lt>
set -euo pipefail
gen=$1 imagenet=$2 inat=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/ltl_image_smoke.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
d=$work/data
"$gen" "$d"
common=(--arch resnet10 --resolution 32 --batch-size 8 --eval-batch-size 16 --lr 0.05 --workers 2 --threads 2
        --quiet --checkpoint-every 0)
lists=(--root "$d" --num-classes 5 --train-list "$d/train.txt" --val-list "$d/val.txt" --test-list "$d/test.txt")

# 1. The truncated JPEG stops the run with an error naming it.
if "$imagenet" "${lists[@]}" "${common[@]}" --epochs 1 --out "$work/stop" > "$work/stop.out" 2> "$work/stop.err"; then
  fail "imagenet_lt trained through a corrupt image"
fi
grep -q "c2/broken.jpg" "$work/stop.err" || { cat "$work/stop.err"; fail "the error does not name c2/broken.jpg"; }

# 2. --skip-bad-images: one epoch, the bad file counted, results and checkpoint written, export.
"$imagenet" "${lists[@]}" "${common[@]}" --epochs 1 --skip-bad-images --out "$work/a" \
  --export-torchvision "$work/a/tv.safetensors" > "$work/a.out" 2> "$work/a.err" || { cat "$work/a.err"; fail "imagenet_lt --skip-bad-images"; }
grep -q "bad images skipped: 1" "$work/a.out" || fail "bad image count not printed"
grep -q "bad image skipped: .*c2/broken.jpg" "$work/a.err" || fail "bad image not logged"
grep -q '"count": 1' "$work/a/results.json" || fail "results.json lacks the bad-image count"
grep -q '"test"' "$work/a/results.json" && grep -q '"val"' "$work/a/results.json" || fail "results.json lacks test/val"
grep -q "many" "$work/a.out" || fail "no shot-group report"
test -s "$work/a/checkpoint.safetensors" && test -s "$work/a/tv.safetensors" && test -s "$work/a/log.jsonl" || fail "missing outputs"

# 3. --resume continues with the second epoch.
"$imagenet" "${lists[@]}" "${common[@]}" --epochs 2 --skip-bad-images --out "$work/a" \
  --resume "$work/a/checkpoint.safetensors" > "$work/r.out" 2> "$work/r.err" || { cat "$work/r.err"; fail "resume"; }
grep -q "resumed from .* at epoch 1" "$work/r.out" || fail "resume did not start at epoch 1"
grep -q "epoch   2/2" "$work/r.out" || fail "resume did not train epoch 2"
test "$(wc -l < "$work/a/log.jsonl")" -eq 2 || fail "log.jsonl should hold 2 epochs"

# 4. --init from the exported torchvision weights, on the first 3 classes.
"$imagenet" "${lists[@]}" "${common[@]}" --epochs 1 --skip-bad-images --subset 3 --init "$work/a/tv.safetensors" \
  --out "$work/i" > "$work/i.out" 2> "$work/i.err" || { cat "$work/i.err"; fail "imagenet_lt --init --subset"; }
grep -q "initialised from .*(classifier kept" "$work/i.out" || fail "--init with another class count"
grep -q '"classes": 3' "$work/i/results.json" || fail "--subset 3 did not give 3 classes"

# 5. inat_lt on the JSON files: category mapping saved, bad image skipped.
"$inat" --root "$d" --train-json "$d/train2018.json" --val-json "$d/val2018.json" "${common[@]}" --epochs 1 \
  --skip-bad-images --out "$work/n" > "$work/n.out" 2> "$work/n.err" || { cat "$work/n.err"; fail "inat_lt"; }
grep -q '"category_id": 140' "$work/n/categories.json" || fail "categories.json lacks category 140"
grep -q '"count": 1' "$work/n/results.json" || fail "inat_lt results lack the bad-image count"
if "$inat" --root "$d" --train-json "$d/train2018.json" "${common[@]}" --epochs 1 --out "$work/n2" \
  > /dev/null 2> "$work/n2.err"; then fail "inat_lt trained through a corrupt image"; fi
grep -q "c2/broken.jpg" "$work/n2.err" || fail "inat_lt's error does not name the file"
echo "image trainers smoke test passed"
