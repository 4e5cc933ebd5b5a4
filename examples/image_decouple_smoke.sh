#!/usr/bin/env bash
# Stage 2 on encoded-image checkpoints, end to end on the generated JPEG set (image_smoke_data):
# imagenet_lt and inat_lt train ResNet-10 at 32 pixels for one epoch, then decouple_image runs
# every rule (joint, NCM cos/L2/cl2n, cRT, tau-norm, LWS, N_c^tau, post-hoc LA, learned tau) on
# each checkpoint from cached features, with the data flags read back from results.json. Checks:
# every row printed and in decouple.json, accuracies in [0, 1], each tau from its grid and the
# best of its curve, tau chosen on val.txt (lists) or on the training set (iNaturalist), never
# on the reported set; inat_lt's CDT schedule (warm-up over 5 epochs, x0.1 at --lr-steps);
# inat_lt's CDT augmentation by default (S x S resize + random crop, training-set mean in
# train_mean.json against a PIL computation, reused on resume, recorded in results.json, used by
# decouple_image) and CDT's gamma delay (--gamma-start: cross-entropy before it, bit for bit);
# --faithful (cRT / LWS on augmented crops through the backbone); refusals: a checkpoint of another class count, another training subset, tau tuned on the
# reported list, --lr-steps with a cosine schedule, --decay-a with --lr-steps, a train_mean.json
# of other flags, --loss cdt with --gamma-start not before --epochs. Under a minute.
#   image_decouple_smoke.sh <image_smoke_data> <imagenet_lt> <inat_lt> <decouple_image>
set -euo pipefail
gen=$1 imagenet=$2 inat=$3 decouple=$4
work=$(mktemp -d "${TMPDIR:-/tmp}/ltl_image_decouple.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
d=$work/data
"$gen" "$d" > /dev/null
common=(--arch resnet10 --resolution 32 --batch-size 8 --eval-batch-size 16 --lr 0.05 --workers 2 --threads 2
        --quiet --checkpoint-every 0 --skip-bad-images)
lists=(--root "$d" --num-classes 5 --train-list "$d/train.txt" --val-list "$d/val.txt" --test-list "$d/test.txt")
rows=("joint" "NCM (cos)" "NCM (L2)" "NCM (cl2n)" "cRT" "tau-norm" "LWS" "N_c^tau" "post-hoc LA" "tau-norm (learned tau)")

# Checks decouple.json: every row, accuracies in [0, 1], each tau on its grid and the best of its
# curve, where tau was tuned and what was reported.
check_json() {  # <decouple.json> <tuned_on pattern> <reported_on pattern>
  /usr/bin/python3 - "$@" <<'PY'
import json, math, re, sys
j = json.load(open(sys.argv[1]))
rows = {r["classifier"]: r for r in j["table"]}
want = ["joint", "NCM (cos)", "NCM (L2)", "NCM (cl2n)", "cRT", "tau-norm", "LWS", "N_c^tau", "post-hoc LA",
        "tau-norm (learned tau)"]
assert list(rows) == want, list(rows)
assert j["not_applicable"] == [], j["not_applicable"]
for name, r in rows.items():
    assert 0 <= r["all"] <= 1, (name, r["all"])
    for g in ("many", "medium", "few"):
        assert r[g] is None or 0 <= r[g] <= 1, (name, g, r[g])
    assert r["few"] is not None, name  # every class of the generated set has < 20 images
    assert r["test"]["top1"] == r["all"], name
grids = {"tau-norm": (0, 1, 0.05), "N_c^tau": (0, 1, 0.05), "post-hoc LA": (0, 2, 0.1)}
for name, (lo, hi, step) in grids.items():
    tau, c = rows[name]["tau"], j["tau_curves"][name]
    k = (tau - lo) / step
    assert lo <= tau <= hi and abs(k - round(k)) < 1e-9, (name, tau)
    assert len(c["taus"]) == round((hi - lo) / step) + 1 and tau in c["taus"], (name, c["taus"])
    assert c["tau"] == tau and c["score"] == max(c["scores"]), (name, c)
    assert c["scores"].index(c["score"]) == c["taus"].index(tau), (name, c)  # ties keep the smallest tau
    assert all(0 <= a <= 1 for a in c["test"]) and len(c["test"]) == len(c["taus"]), name
    assert re.search(sys.argv[2], c["tuned_on"]), c["tuned_on"]
assert math.isfinite(rows["tau-norm (learned tau)"]["tau"])
assert re.search(sys.argv[2], j["tuned_on"]), j["tuned_on"]
assert re.search(sys.argv[3], j["reported_on"]), j["reported_on"]
assert j["cached_features"] is True and j["classes"] == 5 and j["arch"] == "resnet10"
assert j["bad_images"]["count"] == 1 and "broken.jpg" in j["bad_images"]["files"][0], j["bad_images"]
assert j["train_counts"] == [12, 8, 6, 3, 2], j["train_counts"]
PY
}
check_rows() {  # <log>
  for r in "${rows[@]}"; do grep -qF -- "$r " "$1" || { cat "$1" >&2; fail "no '$r' row in $1"; }; done
}

# 1. ImageNet-LT lists: train one epoch, then every rule with the data flags from results.json.
"$imagenet" "${lists[@]}" "${common[@]}" --epochs 1 --out "$work/in" > "$work/in.out" 2> "$work/in.err" ||
  { cat "$work/in.err"; fail "imagenet_lt"; }
"$decouple" --out "$work/in" --worst 2 > "$work/din.out" 2> "$work/din.err" || { cat "$work/din.err"; fail "decouple_image (lists)"; }
check_rows "$work/din.out"
grep -q "tau chosen on the held-out split (.*val.txt)" "$work/din.out" || fail "lists: tau not chosen on val.txt"
grep -q "bad images skipped: 1" "$work/din.out" || fail "lists: the broken image was not skipped and counted"
grep -q "worst 2 classes" "$work/din.out" || fail "--worst 2 printed no worst-class column"
check_json "$work/in/decouple.json" 'held-out split \(.*val\.txt\)' 'test\.txt$' || fail "lists: decouple.json"
grep -q '^crt-epochs=10$' "$work/in/decouple_config.toml" && grep -q '^lws-epochs=5$' "$work/in/decouple_config.toml" &&
  grep -q '^stage2-per-class=4$' "$work/in/decouple_config.toml" || fail "Kang et al.'s stage-2 budget is not the default"

# 1b. --faithful: cRT / LWS on the training images augmented anew in every batch (stage 1's
# RandomResizedCrop + flip + jitter) through the frozen backbone; the rules that do not retrain
# give the cached run's numbers, cRT other ones.
"$decouple" --checkpoint "$work/in/checkpoint.safetensors" --out "$work/inf" --faithful --crt-epochs 2 --lws-epochs 1 \
  > "$work/dinf.out" 2> "$work/dinf.err" || { cat "$work/dinf.err"; fail "decouple_image --faithful"; }
grep -q "cRT/LWS on augmented crops through the backbone" "$work/dinf.out" || fail "--faithful: not said"
/usr/bin/python3 - "$work/in/decouple.json" "$work/inf/decouple.json" <<'PY' || fail "--faithful: decouple.json"
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
ra, rb = ({r["classifier"]: r for r in j["table"]} for j in (a, b))
assert a["cached_features"] is True and b["cached_features"] is False
assert list(ra) == list(rb), list(rb)
for name in ("joint", "NCM (cos)", "tau-norm", "post-hoc LA"):
    assert ra[name]["all"] == rb[name]["all"], name
assert 0 <= rb["cRT"]["all"] <= 1 and 0 <= rb["LWS"]["all"] <= 1
assert b["bad_images"]["count"] == 1, b["bad_images"]
PY

# 2. iNaturalist JSON: CDT's schedule by default; stage 2 tunes tau on the training set.
"$inat" --root "$d" --train-json "$d/train2018.json" --val-json "$d/val2018.json" "${common[@]}" --epochs 1 --out "$work/na" \
  > "$work/na.out" 2> "$work/na.err" || { cat "$work/na.err"; fail "inat_lt"; }
/usr/bin/python3 - "$work/na/log.jsonl" <<'PY' || fail "inat_lt: epoch 0 did not end at 1/5 of the warm-up to --lr 0.05"
import json, sys
line = json.loads(open(sys.argv[1]).readline())
assert abs(line["lr"] - 0.05 / 5) < 1e-12, line["lr"]  # (iters / (5 * iters)) * 0.05 at epoch 0's last step
PY
"$decouple" --out "$work/na" > "$work/dna.out" 2> "$work/dna.err" || { cat "$work/dna.err"; fail "decouple_image (iNat)"; }
check_rows "$work/dna.out"
check_json "$work/na/decouple.json" '^training mean per-class accuracy$' 'val2018\.json$' || fail "iNat: decouple.json"
"$inat" --help > "$work/help.txt"
for want in "CDT's iNaturalist schedule" "\[30,60,80\]" "CDT paper App. A.2, 2e-4" "CDT's 5" \
            "cdt (default here: CDT paper on iNaturalist" "default here: CDT paper on iNaturalist, 45 of 90"; do
  grep -q "$want" "$work/help.txt" || fail "inat_lt --help does not state '$want'"
done

# 2b. CDT's augmentation (inat_lt's default): the training-set mean after the 37 x 37 resize
# (round(32 * 256 / 224)) over every training image (fewer than --mean-images), against PIL's
# bilinear resize of the same files (the broken image replaced by the next item, as
# --skip-bad-images does); recorded in results.json; decouple_image evaluates with it.
/usr/bin/python3 -c 'import json,sys; a=json.load(open(sys.argv[1]))["args"]; assert "augment=\"cdt\"" in a.split("\n"), a' \
    "$work/na/results.json" || fail "inat_lt did not record --augment cdt"
grep -q "training-set mean .* over 31 of 31 images written to .*train_mean.json" "$work/na.out" ||
  { cat "$work/na.out"; fail "inat_lt did not compute the training-set mean"; }
grep -q "evaluation transform of --augment cdt" "$work/dna.out" || fail "decouple_image did not evaluate with --augment cdt"
/usr/bin/python3 - "$work/na" "$d" <<'PY' || fail "train_mean.json: wrong mean or record"
import json, sys
out, root = sys.argv[1], sys.argv[2]
rec = json.load(open(out + "/train_mean.json"))
res = json.load(open(out + "/results.json"))["train_mean"]
assert res["mean"] == rec["mean"] and res["file"] == "train_mean.json", (res, rec)
assert rec["images"] == 31 and rec["of"] == 31 and rec["resize"] == 37 and rec["max_images"] == 10000, rec
try:
    from PIL import Image
except ImportError:
    print("PIL not installed: the hand computation of the mean is skipped")
    sys.exit(0)
files = [im["file_name"] for im in json.load(open(root + "/train2018.json"))["images"]]
def mean_of(k):
    for j in range(len(files)):
        try:
            im = Image.open(root + "/" + files[(k + j) % len(files)])
            im.load()
            break
        except OSError:
            continue
    im = im.convert("RGB").resize((37, 37), Image.BILINEAR)
    px = list(im.getdata())
    return [sum(p[c] for p in px) / len(px) / 255.0 for c in range(3)]
ms = [mean_of(k) for k in range(len(files))]
want = [sum(m[c] for m in ms) / len(ms) for c in range(3)]
assert all(abs(a - b) < 5e-4 for a, b in zip(rec["mean"], want)), (rec["mean"], want)
print("training-set mean", rec["mean"], "PIL", want)
PY
# Resume reads train_mean.json back instead of computing it again (a changed file shows through).
cp -a "$work/na" "$work/nr"
/usr/bin/python3 - "$work/nr/train_mean.json" <<'PY'
import json, sys
rec = json.load(open(sys.argv[1])); rec["mean"] = [0.25, 0.5, 0.75]; json.dump(rec, open(sys.argv[1], "w"))
PY
# The run fingerprint holds the mean (and the epoch count): a changed one is another experiment.
if "$inat" --root "$d" --train-json "$d/train2018.json" --val-json "$d/val2018.json" "${common[@]}" --epochs 2 \
  --resume "$work/nr/checkpoint.safetensors" --out "$work/nr" > "$work/nr.out" 2> "$work/nr.err"; then
  fail "inat_lt resumed under another training mean without --force-resume"
fi
grep -q "^  mean: checkpoint" "$work/nr.err" || { cat "$work/nr.err"; fail "the refusal does not name the mean"; }
"$inat" --root "$d" --train-json "$d/train2018.json" --val-json "$d/val2018.json" "${common[@]}" --epochs 2 \
  --resume "$work/nr/checkpoint.safetensors" --force-resume --out "$work/nr" > "$work/nr.out" 2> "$work/nr.err" ||
  { cat "$work/nr.err"; fail "inat_lt resume"; }
grep -q "training-set mean \[0.25,0.5,0.75\] read from .*nr/train_mean.json" "$work/nr.out" ||
  { cat "$work/nr.out"; fail "resume did not read train_mean.json"; }
/usr/bin/python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["train_mean"]["mean"]; assert m == [0.25, 0.5, 0.75], m' \
  "$work/nr/results.json" || fail "resume: results.json does not record the mean it used"

# 2c. CDT's gamma delay: --gamma-start 1 trains epoch 0 exactly as cross-entropy does, epoch 1 not;
# without --loss cdt the delay is recorded as 0.
for run in "ce --loss ce" "g1 --loss cdt --gamma-start 1"; do
  set -- $run
  name=$1; shift
  "$inat" --root "$d" --train-json "$d/train2018.json" "${common[@]}" --epochs 2 --test-every 5 "$@" \
    --out "$work/$name" > /dev/null 2> "$work/$name.err" || { cat "$work/$name.err"; fail "inat_lt $*"; }
done
/usr/bin/python3 - "$work/ce/log.jsonl" "$work/g1/log.jsonl" <<'PY' || fail "--gamma-start 1: epoch 0 is not cross-entropy or epoch 1 is"
import json, sys
ce, g1 = ([json.loads(l)["train_loss"] for l in open(f)] for f in sys.argv[1:])
assert len(ce) == 2 and len(g1) == 2 and ce[0] == g1[0] and ce[1] != g1[1], (ce, g1)
PY
/usr/bin/python3 -c 'import json,sys; a=json.load(open(sys.argv[1]))["args"].split("\n"); assert "gamma-start=0" in a, a' \
  "$work/ce/results.json" || fail "inat_lt --loss ce recorded a CDT delay"
# --lr-steps on two epochs: epoch 1 runs at --lr x 0.1 after the step at epoch 1.
"$inat" --root "$d" --train-json "$d/train2018.json" "${common[@]}" --epochs 2 --warmup 0 --lr-steps 1 \
  --out "$work/st" > /dev/null 2> "$work/st.err" || { cat "$work/st.err"; fail "inat_lt --lr-steps 1"; }
/usr/bin/python3 - "$work/st/log.jsonl" <<'PY' || fail "inat_lt --lr-steps 1: wrong lr per epoch"
import json, sys
lr = [json.loads(l)["lr"] for l in open(sys.argv[1])]
assert len(lr) == 2 and abs(lr[0] - 0.05) < 1e-12 and abs(lr[1] - 0.005) < 1e-12, lr
PY

# 3. Refusals, each with a message that says what to do.
expect_error() {  # <pattern> <command...>
  local pattern=$1; shift
  if "$@" > "$work/e.out" 2> "$work/e.err"; then fail "accepted: $*"; fi
  grep -q -- "$pattern" "$work/e.err" || { cat "$work/e.err" >&2; fail "no '$pattern' in the error of: $*"; }
}
"$imagenet" "${lists[@]}" "${common[@]}" --epochs 1 --subset 3 --out "$work/s3" > /dev/null 2> "$work/s3.err" ||
  { cat "$work/s3.err"; fail "imagenet_lt --subset 3"; }
expect_error "was trained on 3 classes (.*results.json), the training set here has 5" "$decouple" --out "$work/s3" --subset 5
expect_error "was trained on another training set" "$decouple" --out "$work/in" --subset-images 20
expect_error "tau would be chosen on the reported set" "$decouple" --out "$work/in" --val-list "$d/test.txt"
expect_error "no architecture" "$decouple" --out "$work/nowhere" "${lists[@]}" --no-retrain
expect_error "--lr-steps needs --schedule step" "$inat" --root "$d" --train-json "$d/train2018.json" "${common[@]}" \
  --epochs 1 --schedule cosine --lr-steps 10 --out "$work/bad"
expect_error "--decay-a / --decay-b shape the 80%/90% step schedule" "$inat" --root "$d" --train-json "$d/train2018.json" \
  "${common[@]}" --epochs 1 --decay-a 0.5 --out "$work/bad"
expect_error "--gamma-start 45 is not before --epochs 1" "$inat" --root "$d" --train-json "$d/train2018.json" \
  "${common[@]}" --epochs 1 --loss cdt --out "$work/bad"
expect_error "was taken on another training set, side or --mean-images" "$inat" --root "$d" \
  --train-json "$d/train2018.json" "${common[@]}" --epochs 1 --mean-images 5 --out "$work/na"
echo "image decouple smoke test passed"
