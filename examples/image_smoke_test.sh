#!/usr/bin/env bash
# Smoke test of imagenet_lt and inat_lt on a generated JPEG set (image_smoke_data): ResNet-10 at
# 32 pixels, one or two epochs each, seconds per run. Checks: a corrupt image stops a run naming
# the file; --skip-bad-images skips and counts it; results, log and checkpoint are written; a
# resume with another epoch count is refused as another experiment unless forced; a run killed
# mid-epoch and resumed ends with the uninterrupted run's checkpoint, log and results (timing
# aside); --fsa-phase2 runs a grid on a checkpoint; --init loads an exported torchvision file; --subset cuts the classes; inat_lt saves
# the category mapping. With an MPI build (a 4th argument: mpiexec), `mpiexec -np 2 imagenet_lt`
# trains with the same global batch and step count, counts the bad image once over both ranks,
# and its sharded evaluation of the single-process run's final checkpoint gives that run's counts;
# with --sync-bn two ranks train as one process (up to rounding), without it they do not.
#   image_smoke_test.sh <image_smoke_data> <imagenet_lt> <inat_lt> [mpiexec]
set -euo pipefail
gen=$1 imagenet=$2 inat=$3 mpiexec=${4:-}
work=$(mktemp -d "${TMPDIR:-/tmp}/ltl_image_smoke.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
d=$work/data
"$gen" "$d"
base=(--arch resnet10 --resolution 32 --batch-size 8 --eval-batch-size 16 --lr 0.05 --workers 2 --quiet)
common=("${base[@]}" --threads 2 --checkpoint-every 0)
lists=(--root "$d" --num-classes 5 --train-list "$d/train.txt" --val-list "$d/val.txt" --test-list "$d/test.txt")

# 0. --device cuda in a binary built without CUDA is refused while parsing, naming the CUDA binary.
if "$imagenet" "${lists[@]}" "${common[@]}" --epochs 1 --device cuda --out "$work/cuda" > /dev/null 2> "$work/cuda.err"; then
  fail "imagenet_lt (no CUDA) accepted --device cuda"
fi
grep -q "built without CUDA.*_cuda" "$work/cuda.err" || { cat "$work/cuda.err"; fail "--device cuda refusal"; }
[[ ! -e "$work/cuda" ]] || fail "the refused --device cuda run wrote its output directory"

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

# 2b. --evaluate: the checkpoint's report on val and test in eval.json, the numbers of the run's own
# final evaluation (results.json); refused together with --resume.
"$imagenet" "${lists[@]}" "${common[@]}" --skip-bad-images --evaluate "$work/a/checkpoint.safetensors" --out "$work/ev" \
  > "$work/ev.out" 2> "$work/ev.err" || { cat "$work/ev.err"; fail "imagenet_lt --evaluate"; }
/usr/bin/python3 - "$work/a/results.json" "$work/ev/eval.json" <<'PY' || fail "--evaluate does not reproduce the run's report"
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
for s in ("val", "test"):
    assert a[s]["confusion"] == b[s]["confusion"] and a[s]["top1"] == b[s]["top1"], s
assert b["epoch"] == 1 and b["bad_images"]["count"] == 0, (b["epoch"], b["bad_images"])
PY
[[ ! -e "$work/ev/checkpoint.safetensors" ]] || fail "--evaluate trained"
if "$imagenet" "${lists[@]}" "${common[@]}" --evaluate "$work/a/checkpoint.safetensors" --resume "$work/a/checkpoint.safetensors" \
  --out "$work/ev2" > /dev/null 2> "$work/ev2.err"; then fail "--evaluate with --resume was accepted"; fi
grep -qE -- "--(evaluate excludes --resume|resume excludes --evaluate)" "$work/ev2.err" || { cat "$work/ev2.err"; fail "the refusal does not name both flags"; }

# 2c. --fsa-phase2 on that checkpoint: the bank from the training images (evaluation transform),
# a two-configuration grid chosen on val and reported on test, the chosen model saved; a bank
# over --fsa-bank-limit-gb is refused before it is built; --fsa-phase2 excludes --evaluate.
"$imagenet" "${lists[@]}" "${common[@]}" --skip-bad-images --fsa-phase2 "$work/a/checkpoint.safetensors" \
  --fsa-iters 3 --fsa-na 0,1 --out "$work/fsa" > "$work/fsa.out" 2> "$work/fsa.err" ||
  { cat "$work/fsa.err"; fail "imagenet_lt --fsa-phase2"; }
grep -q "configuration chosen on val" "$work/fsa.out" && grep -q "^selected on the held-out split" "$work/fsa.out" ||
  { cat "$work/fsa.out"; fail "--fsa-phase2 printed no held-out selection"; }
/usr/bin/python3 - "$work/fsa/fsa_results.json" <<'PY' || fail "fsa_results.json is not a two-configuration grid on stage4"
import json, sys
r = json.load(open(sys.argv[1]))
assert len(r["configs"]) == 2 and r["selected"] in (0, 1), r.keys()
assert all(c["point"] == "stage4" and "val" in c and "test" in c for c in r["configs"])
PY
test -s "$work/fsa/fsa_checkpoint.safetensors" || fail "--fsa-phase2 saved no model"
if "$imagenet" "${lists[@]}" "${common[@]}" --skip-bad-images --fsa-phase2 "$work/a/checkpoint.safetensors" \
  --fsa-bank resident --fsa-bank-limit-gb 1e-6 --out "$work/fsa2" > /dev/null 2> "$work/fsa2.err"; then
  fail "a resident bank over the limit was built"
fi
grep -q "GiB, over the limit" "$work/fsa2.err" || { cat "$work/fsa2.err"; fail "the bank refusal does not state the sizes"; }
# With --fsa-bank auto the bank over the limit is streamed instead: the same grid, the same selection.
"$imagenet" "${lists[@]}" "${common[@]}" --skip-bad-images --fsa-phase2 "$work/a/checkpoint.safetensors" \
  --fsa-iters 3 --fsa-na 0,1 --fsa-bank-limit-gb 1e-6 --out "$work/fsa4" > "$work/fsa4.out" 2> "$work/fsa4.err" ||
  { cat "$work/fsa4.err"; fail "imagenet_lt --fsa-phase2 with a streamed bank"; }
grep -q "^streamed feature bank: 31 samples" "$work/fsa4.out" || { cat "$work/fsa4.out"; fail "auto did not stream the bank"; }
/usr/bin/python3 - "$work/fsa/fsa_results.json" "$work/fsa4/fsa_results.json" <<'PY' || fail "the streamed bank's grid is not the resident one's"
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
assert a["bank"] == "resident" and b["bank"] == "streamed", (a["bank"], b["bank"])
assert a["selected"] == b["selected"], (a["selected"], b["selected"])
for x, y in zip(a["configs"], b["configs"]):
    assert x["test"]["top1"] == y["test"]["top1"] and x["val"]["top1"] == y["val"]["top1"], (x["test"], y["test"])
    assert abs(x["test"]["loss"] - y["test"]["loss"]) < 1e-4 * abs(x["test"]["loss"]), (x["test"], y["test"])
    assert abs(x["last_loss"] - y["last_loss"]) < 1e-4 * abs(x["last_loss"]), (x["last_loss"], y["last_loss"])
PY
if "$imagenet" "${lists[@]}" "${common[@]}" --fsa-phase2 "$work/a/checkpoint.safetensors" \
  --evaluate "$work/a/checkpoint.safetensors" --out "$work/fsa3" > /dev/null 2> "$work/fsa3.err"; then
  fail "--fsa-phase2 with --evaluate was accepted"
fi
grep -qE -- "--(fsa-phase2 excludes --evaluate|evaluate excludes --fsa-phase2)" "$work/fsa3.err" ||
  { cat "$work/fsa3.err"; fail "the refusal does not name both flags"; }

# 3. --resume with another epoch count is another experiment (the run fingerprint): refused,
# unless forced; then it continues with the second epoch.
if "$imagenet" "${lists[@]}" "${common[@]}" --epochs 2 --skip-bad-images --out "$work/a" \
  --resume "$work/a/checkpoint.safetensors" > "$work/r0.out" 2> "$work/r0.err"; then
  fail "a resume with another --epochs was not refused"
fi
grep -q "epochs: checkpoint 1, this run 2" "$work/r0.err" || { cat "$work/r0.err"; fail "the refusal does not name epochs"; }
"$imagenet" "${lists[@]}" "${common[@]}" --epochs 2 --skip-bad-images --out "$work/a" --force-resume \
  --resume "$work/a/checkpoint.safetensors" > "$work/r.out" 2> "$work/r.err" || { cat "$work/r.err"; fail "resume"; }
grep -q "resumed from .* at epoch 1" "$work/r.out" || fail "resume did not start at epoch 1"
grep -q "epoch   2/2" "$work/r.out" || fail "resume did not train epoch 2"
test "$(wc -l < "$work/a/log.jsonl")" -eq 2 || fail "log.jsonl should hold 2 epochs"
# A fresh run into a directory holding another run's checkpoint is refused without --overwrite.
if "$imagenet" "${lists[@]}" "${common[@]}" --epochs 1 --skip-bad-images --out "$work/a" > /dev/null 2> "$work/o.err"; then
  fail "a fresh run replaced another run's checkpoint"
fi
grep -q -- "--overwrite" "$work/o.err" || { cat "$work/o.err"; fail "the refusal does not name --overwrite"; }

# 3b. Killed (SIGKILL, train/fault.hpp) after its first checkpoint, mid-epoch 1, and resumed: the
# final checkpoint is byte for byte the uninterrupted run's, log and results equal timing aside.
two=("${lists[@]}" "${base[@]}" --epochs 2 --skip-bad-images --mix mixup --checkpoint-every 2)
"$imagenet" "${two[@]}" --threads 2 --out "$work/u" > "$work/u.out" 2> "$work/u.err" ||
  { cat "$work/u.err"; fail "the uninterrupted run"; }
set +e
LTL_FAULT=checkpoint.safetensors:after_rename#1 "$imagenet" "${two[@]}" --threads 2 --out "$work/k" > "$work/k.out" 2> "$work/k.err"
rc=$?
set -e
((rc == 137)) || { cat "$work/k.err"; fail "expected the run to be killed (137), got $rc"; }
"$imagenet" "${two[@]}" --threads 2 --out "$work/k" --resume "$work/k/checkpoint.safetensors" > "$work/k2.out" 2> "$work/k2.err" ||
  { cat "$work/k2.err"; fail "the resumed run"; }
grep -q "resumed from .* at epoch 0, step 2" "$work/k2.out" || fail "the killed run did not resume at step 2"
cmp -s "$work/u/checkpoint.safetensors" "$work/k/checkpoint.safetensors" || fail "the resumed run's final checkpoint differs"
source "$(dirname "${BASH_SOURCE[0]}")/../tests/scripts/strip_timing.sh"
for f in log.jsonl results.json; do
  diff <(strip "$work/u/$f") <(strip "$work/k/$f") > "$work/k.diff" || { cat "$work/k.diff"; fail "the resumed run's $f differs"; }
done

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

# 6. Data parallel: mpiexec -np 2 (the environment CI needs as root in a container, as in
# tests/CMakeLists.txt). Batch norm normalises each rank's slice, so the trained weights are not
# those of one process (README, "Data-parallel training"); what must hold: the same global batch
# and step count, the bad image counted once over both ranks, and the sharded evaluation of a
# given checkpoint counting exactly what one process counts.
if [[ -z "$mpiexec" ]] || ! command -v "$mpiexec" > /dev/null; then
  echo "skipping the mpiexec checks: no MPI build or no mpiexec"
else
  mpi=(env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
       OMPI_MCA_rmaps_base_oversubscribe=1 OMP_NUM_THREADS=1 "$mpiexec" -np 2)
  if "$mpiexec" --version 2>&1 | grep -q "Open MPI\|OpenRTE"; then mpi+=(--oversubscribe --bind-to none); fi
  par=("${lists[@]}" "${base[@]}" --threads 1 --checkpoint-every 0 --epochs 2 --skip-bad-images)
  "${mpi[@]}" "$imagenet" "${par[@]}" --out "$work/p" > "$work/p.out" 2> "$work/p.err" ||
    { cat "$work/p.err"; fail "mpiexec -np 2 imagenet_lt"; }
  grep -q "epoch   2/2" "$work/p.out" || fail "np 2: no second epoch"
  grep -q '"count": 1' "$work/p/results.json" || fail "np 2: the bad image is not counted once"
  state() {
    /usr/bin/python3 - "$1" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
st = json.loads(json.loads(raw[8:8 + n])["__metadata__"]["ltlearn.state"])
ex = st.get("extra", {})
print(st["epoch"], st["iteration"], ex.get("world_size"), ex.get("global_batch"))
PY
  }
  test "$(state "$work/p/checkpoint.safetensors")" = "2 8 2 8" || fail "np 2 checkpoint state: $(state "$work/p/checkpoint.safetensors")"
  test "$(state "$work/u/checkpoint.safetensors" | cut -d' ' -f1,2)" = "2 8" || fail "np 1 checkpoint state"
  # The single-process run's final checkpoint, evaluated by 2 ranks (same global batch: accepted).
  cp -r "$work/u" "$work/pe"
  "${mpi[@]}" "$imagenet" "${two[@]}" --threads 1 --out "$work/pe" --resume "$work/pe/checkpoint.safetensors" \
    > "$work/pe.out" 2> "$work/pe.err" || { cat "$work/pe.err"; fail "np 2 evaluation of the np 1 checkpoint"; }
  counts() {
    /usr/bin/python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for s in ("val", "test"):
    print(s, r[s]["n"], r[s]["confusion"], r[s]["top1"], r[s]["per_class"])
PY
  }
  diff <(counts "$work/u/results.json") <(counts "$work/pe/results.json") > "$work/pe.diff" ||
    { cat "$work/pe.diff"; fail "np 2 evaluation counts differ from one process's"; }
  # --sync-bn: batch norm over the global batch, so 2 ranks train as one process up to float
  # summation order; without it they do not. Compared on the first epoch's training loss (4 steps,
  # lr 0.005): later epochs of this tiny ResNet at 32 px amplify rounding (1 against 2 threads in
  # one process then differ by 3e-4), so they would not tell the two apart.
  sb=("${lists[@]}" --arch resnet10 --resolution 32 --batch-size 8 --eval-batch-size 16 --lr 0.005 --workers 2 --quiet
      --threads 1 --checkpoint-every 0 --epochs 1 --skip-bad-images)
  "$imagenet" "${sb[@]}" --out "$work/s1" > "$work/s1.out" 2> "$work/s1.err" || { cat "$work/s1.err"; fail "np 1 reference"; }
  for v in s2:--sync-bn s3:; do
    "${mpi[@]}" "$imagenet" "${sb[@]}" ${v#*:} --out "$work/${v%%:*}" > "$work/${v%%:*}.out" 2> "$work/${v%%:*}.err" ||
      { cat "$work/${v%%:*}.err"; fail "mpiexec -np 2 imagenet_lt ${v#*:}"; }
  done
  first_loss_diff() {
    /usr/bin/python3 - "$1" "$2" <<'PY'
import json, sys
a, b = (json.loads(open(f).readline())["train_loss"] for f in sys.argv[1:3])
print(abs(a - b) / abs(a))
PY
  }
  sync_diff="$(first_loss_diff "$work/s1/log.jsonl" "$work/s2/log.jsonl")"
  plain_diff="$(first_loss_diff "$work/s1/log.jsonl" "$work/s3/log.jsonl")"
  echo "np 2 against np 1, first epoch's training loss: --sync-bn $sync_diff, without $plain_diff (relative)"
  awk -v d="$sync_diff" 'BEGIN { exit !(d <= 1e-5) }' || fail "np 2 --sync-bn does not train as one process ($sync_diff)"
  awk -v d="$plain_diff" 'BEGIN { exit !(d > 1e-3) }' || fail "np 2 without --sync-bn matches one process ($plain_diff): the check is blind"
fi
echo "image trainers smoke test passed"
