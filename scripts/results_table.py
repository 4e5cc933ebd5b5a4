#!/usr/bin/python3
"""Markdown tables of the measured runs (scripts/experiments.sh), standard library only.

    results_table.py RUNS_ROOT table      one table per profile; grids reduced to the chosen setting
    results_table.py RUNS_ROOT select P   the run of group P (e.g. exp-cdt) chosen on the held-out split
    results_table.py RUNS_ROOT decouple   stage-2 rows (RUN/decouple.json) of ERM and CDT, FSA phase II (RUN/fsa/)
    results_table.py RUNS_ROOT data-flags RUN   the flags that rebuild RUN's data split and model
                                                (for fmnist_lt --evaluate)
    results_table.py SEEDS_ROOT seeds [--seeds 0,1,2] [--profile exp]
                                          mean ± std over seeds (SEEDS_ROOT/seed<s>/<run>/results.json,
                                          the layout of scripts/seed_runs.sh and experiments.sh),
                                          each method's paired difference to ERM over the seeds, grids
                                          chosen per seed on that seed's held-out split, and the
                                          stage-2 rules on each seed's ERM model (decouple.json)

With the one-seed commands (table, select, decouple), RUNS_ROOT may be one seed's directory
(SEEDS_ROOT/seed0).

Hyper-parameter grids (runs named GROUP-VALUE, e.g. exp-cdt-0.2) are decided by the held-out
split's mean per-class accuracy (the "val" report), never by the test set; a tie goes to the
grid's first value in the order experiments.sh lists it.
"""
import json
import pathlib
import statistics
import sys

GRIDS = {"cdt": ["0.1", "0.2", "0.3", "0.5"], "mfw": ["0.5", "1", "2"], "mfw-geo": ["0.5", "1", "2"],
         "mfw-arith": ["0.5", "1", "2"]}
# The seeded table (command `seeds`): (run or grid group without the profile, label, hyper-parameters,
# grid symbol). A grid's value is chosen per seed on that seed's held-out split.
SEED_METHODS = [
    ("erm", "ERM (cross-entropy, instance-balanced)", "", None),
    ("cb-sampling", "class-balanced sampling", "q = 0, two-stage draw", None),
    ("sqrt-sampling", "square-root sampling", "q = 1/2", None),
    ("progressive", "progressively-balanced sampling", "w_t = t/(T − 1)", None),
    ("cdt", "CDT", "gamma per seed", "gamma"),
    ("ldam-drw", "LDAM-DRW", "m_max 0.5, s 30, DRW from epoch 16", None),
    ("la", "logit-adjusted loss", "tau 1", None),
    ("mfw-geo", "MFW, geometric s(N)", "alpha per seed, beta 2", "alpha"),
    ("mfw-arith", "MFW, arithmetic s(N)", "alpha per seed, beta 2", "alpha"),
    ("ce-drw", "cross-entropy + DRW", "CB weights (beta 0.9999) from epoch 16", None),
    ("cb-focal", "CB-focal", "focal gamma 1, CB beta 0.9999", None),
]
METHODS = [  # (run suffix or grid, label, hyper-parameters)
    ("erm", "ERM (cross-entropy, instance-balanced)", ""),
    ("cb-sampling", "class-balanced sampling", "q = 0, two-stage draw"),
    ("sqrt-sampling", "square-root sampling", "q = 1/2"),
    ("progressive", "progressively-balanced sampling", "probabilities (1 − t/T)·instance + (t/T)·class-balanced (run before the t/(T − 1) fix)"),
    ("cb-focal", "CB-focal", "focal gamma 1, CB beta 0.9999"),
    ("ldam-drw", "LDAM-DRW", "m_max 0.5, s 30, cosine classifier, DRW from epoch 16"),
    ("cdt", "CDT", "gamma {v}"),
    ("la", "logit-adjusted loss", "tau 1"),
    ("mfw", "MFW (after stage 1)", "alpha {v}, beta {beta}"),  # the runs/table layout (arithmetic s(N))
    ("mfw-geo", "MFW (after stage 1), geometric s(N)", "alpha {v}, beta {beta}"),
    ("mfw-arith", "MFW (after stage 1), arithmetic s(N)", "alpha {v}, beta {beta}"),
    ("ce-drw", "cross-entropy + DRW (MFW + DRW's control)", "CB weights (beta 0.9999) from epoch 16"),
    ("mfw-drw", "MFW + DRW", "alpha {alpha} (MFW's held-out choice), beta {beta}, DRW from epoch 16"),
    ("mfw-drw-mix16", "MFW + DRW, MFW off from epoch 16 (diagnostic)",
     "alpha {alpha}, beta {beta}, MFW before epoch 16, DRW from epoch 16"),
]


def load(path):
    return json.loads(path.read_text()) if path.exists() else None


def pct(v):
    return "—" if v is None else f"{100 * v:.2f}"


def run_arg(res, key):
    """The value of one trainer option as the run recorded it (results.json "args", key=value lines)."""
    for line in res.get("args", "").splitlines():
        k, _, v = line.partition("=")
        if k.strip() == key:
            return v.strip().strip('"')
    return "?"


def seconds_per_epoch(run_dir, res):
    """The median of the run's per-epoch training times (log.jsonl): robust to the epochs a pause
    (benchmarks, SIGSTOP) stretched and to an epoch a resume split, which binaries before session 7
    timed only from the resume on. Falls back to results.json's mean."""
    log = run_dir / "log.jsonl"
    secs = [json.loads(l)["seconds"] for l in log.read_text().splitlines() if l.strip()] if log.exists() else []
    return statistics.median(secs) if secs else res["seconds_per_epoch"]


def val_score(res):
    v = (res or {}).get("val")
    return None if v is None else v["mean_per_class"]


def select(root, group):
    """(value, results) of the grid run with the best held-out mean per-class accuracy.

    The rule is ltlearn's one held-out selection rule (metrics::held_out_selector in
    include/ltlearn/metrics/selection.hpp, used by the tau search and the FSA grid): the highest
    score, the first value in the grid's listed order on ties (within 1e-9); runs without a held-out score never
    win. Keep the two in step."""
    profile, _, method = group.partition("-")
    best = None
    for v in GRIDS[method]:
        res = load(root / f"{group}-{v}" / "results.json")
        if res is None or val_score(res) is None:
            continue
        # Scores within 1e-9 are ties (held_out_selector::tie_tolerance: equal accuracies can
        # differ in their last bits).
        if best is None or val_score(res) > val_score(best[1]) + 1e-9:
            best = (v, res)
    return best


def grid_note(root, group):
    parts = []
    for v in GRIDS[group.partition("-")[2]]:
        res = load(root / f"{group}-{v}" / "results.json")
        if res is not None:
            parts.append(f"{v}: {pct(val_score(res))} / {pct(res['test']['top1'])}")
    return "; ".join(parts)


def table(root):
    for profile, beta in (("exp", 2), ("step", 0.01)):
        rows, notes = [], []
        for key, label, hp in METHODS:
            if key in GRIDS:
                chosen = select(root, f"{profile}-{key}")
                if chosen is None:
                    continue
                v, res = chosen
                run_dir = root / f"{profile}-{key}-{v}"
                hp = hp.format(v=v, beta=beta) + " (chosen on held-out)"
                notes.append(f"{label} grid, held-out mean per-class / test top-1 (%): {grid_note(root, f'{profile}-{key}')}")
            else:
                run_dir = root / f"{profile}-{key}"
                res = load(run_dir / "results.json")
                if res is None:
                    continue
                hp = hp.format(beta=beta, alpha=run_arg(res, "alpha"))
            t = res["test"]
            pc = " ".join(f"{100 * a:.1f}" for a in t["per_class"])
            rows.append(f"| {label} | {hp} | {pct(val_score(res))} | **{pct(t['top1'])}** | {pct(t['many'])} | "
                        f"{pct(t['medium'])} | {pc} | {seconds_per_epoch(run_dir, res):.0f} |")
        if not rows:
            continue
        print(f"\n#### Profile {profile}, rho = 100\n")
        print("| method | hyper-parameters | held-out mean/class | test top-1 | many | medium | "
              "per-class test accuracy, classes 0–9 (%) | s/epoch (median) |")
        print("|---|---|---:|---:|---:|---:|---|---:|")
        print("\n".join(rows))
        if notes:
            print()
            for n in notes:
                print(f"- {n}")
    # The MFW direction check: the same recipe with another seed (runs seed1-*) and on a longer
    # schedule (runs long-*).
    rows = []
    mfw = "MFW (after stage 1), alpha 0.5, beta 2"
    for name, method in (("exp-erm", "ERM"), ("exp-mfw-0.5", mfw), ("seed1-erm", "ERM"), ("seed1-mfw-0.5", mfw),
                         ("long-erm", "ERM"), ("long-mfw-0.5", mfw), ("long-mfw-geo-0.5", mfw + ", geometric s(N)")):
        res = load(root / name / "results.json")
        if res is None:
            continue
        label = f"{method}, {run_arg(res, 'epochs')} epochs, seed {run_arg(res, 'seed')}"
        t = res["test"]
        pc = " ".join(f"{100 * a:.1f}" for a in t["per_class"])
        rows.append(f"| {label} | {pct(val_score(res))} | **{pct(t['top1'])}** | {pct(t['many'])} | {pct(t['medium'])} | "
                    f"{pc} |")
    if len(rows) > 2:  # the seed-0, 20-epoch pair alone is already in the table above
        print("\n#### Profile exp, rho = 100: MFW direction check (another seed, a longer schedule)\n")
        print("| method | held-out mean/class | test top-1 | many | medium | per-class test accuracy, classes 0–9 (%) |")
        print("|---|---:|---:|---:|---:|---|")
        print("\n".join(rows))


def decouple(root):
    for profile in ("exp", "step"):
        stage1 = [("ERM", root / f"{profile}-erm")]
        cdt = select(root, f"{profile}-cdt")
        if cdt is not None:
            stage1.append((f"CDT (gamma {cdt[0]})", root / f"{profile}-cdt-{cdt[0]}"))
        rows = []
        for name, d in stage1:
            dec = load(d / "decouple.json")
            if dec is None:
                continue
            for r in dec["table"]:
                tau = "" if r["tau"] is None else f"{r['tau']:.2f}"
                pc = " ".join(f"{100 * a:.1f}" for a in r["test"]["per_class"])
                rows.append(f"| {name} | {r['classifier']} | {tau} | **{pct(r['all'])}** | {pct(r['many'])} | "
                            f"{pct(r['medium'])} | {pc} |")
            for sub, label in (("fsa", "FSA phase II"), ("fsa-na0", "FSA phase II without augmentation")):
                fsa = load(d / sub / "fsa_results.json")
                if fsa is None or fsa.get("selected") is None:
                    continue
                cfg = fsa["configs"][fsa["selected"]]
                t = cfg["test"]
                pc = " ".join(f"{100 * a:.1f}" for a in t["per_class"])
                hp = (f"h_r {cfg['h_r']}, tau_s {cfg['tau_s']}, tau_g {cfg['tau_g']}, N_a {cfg['N_a']}, "
                      f"N_f {cfg['N_f']}")
                rows.append(f"| {name} | {label} ({hp}) | | **{pct(t['top1'])}** | {pct(t['many'])} | "
                            f"{pct(t['medium'])} | {pc} |")
        if not rows:
            continue
        print(f"\n#### Stage 2 on profile {profile}, rho = 100 (tau chosen on the held-out split)\n")
        print("| stage 1 | classifier | tau | test top-1 | many | medium | per-class test accuracy (%) |")
        print("|---|---|---:|---:|---:|---:|---|")
        print("\n".join(rows))


def mean_std(values):
    """"m ± s" in percent over the seeds (sample standard deviation; one seed: no ±)."""
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    m = 100 * statistics.mean(values)
    if len(values) == 1:
        return f"{m:.2f}"
    return f"{m:.2f} ± {100 * statistics.stdev(values):.2f}"


def seed_run(root, seed, profile, key, is_grid):
    """(chosen grid value or None, results) of one method on one seed, or None if not finished.
    A grid's value is chosen on that seed's own held-out split (select)."""
    seed_dir = root / f"seed{seed}"
    if is_grid:  # chosen only once the whole grid has finished on that seed
        done = [v for v in GRIDS[key] if (seed_dir / f"{profile}-{key}-{v}" / "results.json").exists()]
        return select(seed_dir, f"{profile}-{key}") if len(done) == len(GRIDS[key]) else None
    res = load(seed_dir / f"{profile}-{key}" / "results.json")
    return None if res is None else (None, res)


def seeds_table(root, seeds, profile):
    """Mean ± std over seeds of each method, its paired difference to ERM, the stage-2 rules."""
    erm = {s: r[1] for s in seeds if (r := seed_run(root, s, profile, "erm", False)) is not None}
    erm_tests = {s: r["test"] for s, r in erm.items()}
    cols = ("top1", "mean_per_class", "many", "medium", "few")
    print(f"\n#### Profile {profile}, rho = 100: mean ± std over seeds {', '.join(map(str, seeds))} (test, %)\n")
    print("| method | hyper-parameters | seeds | top-1 | top-1 per seed | mean per-class | many | medium | few | "
          "top-1 − ERM (paired) | choice per seed |")
    print("|---|---|---:|---:|---|---:|---:|---:|---:|---:|---|")

    def row(label, hp, per_seed, choices):
        """per_seed: {seed: test report}; the paired difference uses the seeds ERM also has."""
        n = len(per_seed)
        cells = [mean_std([t.get(c) for t in per_seed.values()]) for c in cols]
        # each seed's own top-1, in seed order, so a reader sees the spread behind the mean
        cells.insert(1, ", ".join(f"{s}: {100 * per_seed[s]['top1']:.2f}" for s in sorted(per_seed)))
        diffs = [per_seed[s]["top1"] - erm[s]["test"]["top1"] for s in per_seed if s in erm]
        paired = "—" if not diffs or per_seed is erm_tests else mean_std(diffs) + ("" if len(diffs) == n else f" ({len(diffs)} seeds)")
        if paired != "—" and not paired.startswith("-"):
            paired = "+" + paired
        print(f"| {label} | {hp} | {n} | " + " | ".join(cells) + f" | {paired} | {choices} |")

    for key, label, hp, symbol in SEED_METHODS:
        per_seed, choices = ({}, []) if key != "erm" else (erm_tests, [])
        for s in seeds:
            r = seed_run(root, s, profile, key, symbol is not None)
            if r is None:
                if symbol is not None:
                    done = sum((root / f"seed{s}" / f"{profile}-{key}-{v}" / "results.json").exists() for v in GRIDS[key])
                    if done:
                        choices.append(f"seed {s}: grid {done}/{len(GRIDS[key])} finished, left out")
                continue
            per_seed[s] = r[1]["test"]
            if symbol is not None:
                choices.append(f"seed {s}: {symbol} {r[0]}")
        if per_seed:
            row(label, hp, per_seed, "; ".join(choices))
        elif choices:
            print(f"| {label} | {hp} | 0 | | | | | | | | {'; '.join(choices)} |")
    # Stage 2 on each seed's ERM model (decouple.json of seed<s>/<profile>-erm), tau chosen per
    # seed on its held-out split by decouple itself.
    rules = {}
    for s in seeds:
        dec = load(root / f"seed{s}" / f"{profile}-erm" / "decouple.json")
        for r in (dec or {}).get("table", []):
            if r["classifier"] != "joint":
                rules.setdefault(r["classifier"], {})[s] = (r["test"], r["tau"])
    for name, per in rules.items():
        taus = [f"seed {s}: tau {t:.2f}" for s, (_, t) in per.items() if t is not None]
        row(f"ERM + {name} (stage 2)", "on the ERM checkpoint", {s: t for s, (t, _) in per.items()}, "; ".join(taus))


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    root, cmd = pathlib.Path(sys.argv[1]), sys.argv[2]
    if cmd == "table":
        table(root)
    elif cmd == "select" and len(sys.argv) == 4:
        chosen = select(root, sys.argv[3])
        if chosen is None:
            sys.exit(f"results_table.py: no finished run of {sys.argv[3]} with a held-out report")
        print(f"{sys.argv[3]}-{chosen[0]}")
    elif cmd == "decouple":
        decouple(root)
    elif cmd == "seeds":
        args = sys.argv[3:]
        opts = dict(zip(args[::2], args[1::2]))
        if len(args) % 2 or set(opts) - {"--seeds", "--profile"}:
            sys.exit(__doc__)
        seeds = [int(v) for v in opts.get("--seeds", "0,1,2").split(",")]
        seeds_table(root, seeds, opts.get("--profile", "exp"))
    elif cmd == "data-flags" and len(sys.argv) == 4:
        res = load(root / sys.argv[3] / "results.json")
        if res is None:
            sys.exit(f"results_table.py: {sys.argv[3]} has not finished")
        print(" ".join(f"--{k} {run_arg(res, k)}" for k in ("profile", "rho", "seed", "held-out", "depth", "loss")))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
