# Sourced by the end-to-end scripts that compare two runs of a trainer: strip FILE prints a
# results.json, or each line of a log.jsonl, without the fields that differ between identical runs
# (timing and the recorded command line), one JSON document per line with its keys sorted.
strip() {
  /usr/bin/python3 - "$1" <<'PY'
import json, sys
timing = {"seconds", "images_per_sec", "seconds_per_epoch", "args"}
text = open(sys.argv[1]).read()
docs = [json.loads(l) for l in text.splitlines() if l.strip()] if sys.argv[1].endswith(".jsonl") else [json.loads(text)]
for d in docs:
    print(json.dumps({k: v for k, v in d.items() if k not in timing}, sort_keys=True))
PY
}
