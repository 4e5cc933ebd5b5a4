#!/usr/bin/python3
"""Renders the per-class analysis of an ltlearn run as PNG figures (SPEC §11).

    scripts/plot_analysis.py RUN_DIR [--out DIR]     (Debian's /usr/bin/python3)
    scripts/plot_analysis.py --compare NAME=RUN_DIR NAME=RUN_DIR ... --out DIR

Reads, when present in RUN_DIR:
  analysis.json   one report of a checkpoint      (decouple --analysis)
  analysis.jsonl  one report per epoch            (fmnist_lt --analysis-every k)
  decouple.json   stage-2 table and tau curves    (decouple)
and writes into DIR (default RUN_DIR/figures):
  per_class_accuracy.png, classifier_norms.png, feature_deviation.png, gradient_norms.png,
  classification_ratio.png, confusion.png  (last report), *_epochs.png (per-epoch curves),
  tau_curves.png (accuracy versus tau of every tuned post-hoc rule).
With --compare, the last per-epoch report of each run side by side: compare_per_class_test.png,
compare_per_class_train.png, compare_feature_deviation.png, and compare_feature_deviation_epochs.png
(one panel per run, shared axes).

Needs Debian's python3-matplotlib (optional: the library and its tests never need Python).
"""
import argparse
import json
import math
import os
import sys

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
except ImportError:  # pragma: no cover
    sys.exit("plot_analysis.py: matplotlib is missing; install python3-matplotlib "
             "(bash scripts/ltl.sh setup --plots)")

GROUP_COLOURS = {"many": "#4c72b0", "medium": "#dd8452", "few": "#c44e52"}


def nan(v):
    return float("nan") if v is None else v


def class_labels(rep):
    return [f"{c}\n({int(n)})" for c, n in enumerate(rep["train_counts"])]


def shade_groups(ax, rep):
    """Background band per shot group, so the head/tail split is visible on every bar chart."""
    for c, g in enumerate(rep.get("shot_group", [])):
        ax.axvspan(c - 0.5, c + 0.5, color=GROUP_COLOURS.get(g, "white"), alpha=0.12, lw=0)


def group_legend(ax, rep, handles):
    from matplotlib.patches import Patch
    present = [g for g in ("many", "medium", "few") if g in rep.get("shot_group", [])]
    several = len(handles) > 0  # several series: bars reach the top, so the legend goes below
    handles = handles + [Patch(color=GROUP_COLOURS[g], alpha=0.35, label=f"{g}-shot") for g in present]
    if several:
        ax.legend(handles=handles, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=len(handles))
    else:
        ax.legend(handles=handles, fontsize=8)


def finish(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print("wrote", path)


def bar_chart(rep, series, ylabel, title, path, percent=False, hline=None):
    C = len(rep["train_counts"])
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * C + 2), 4))
    shade_groups(ax, rep)
    width = 0.8 / len(series)
    handles = []
    for k, (name, values) in enumerate(series):
        vals = [nan(v) * (100 if percent else 1) for v in values]
        # One series: bars coloured by shot group; several: one colour per series.
        colour = ([GROUP_COLOURS.get(g, "grey") for g in rep.get("shot_group", [])] or None) if len(series) == 1 else None
        b = ax.bar([c - 0.4 + width * (k + 0.5) for c in range(C)], vals, width, label=name, color=colour)
        if len(series) > 1:
            handles.append(b)
    if hline is not None:
        ax.axhline(hline, color="grey", lw=1, ls="--")
    ax.set_xticks(range(C))
    ax.set_xticklabels(class_labels(rep), fontsize=8)
    ax.set_xlabel("class (training images N_c)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.set_xlim(-0.5, C - 0.5)
    group_legend(ax, rep, handles)
    finish(fig, path)


def epoch_chart(reports, key, ylabel, title, path, percent=False, log_if_wide=False):
    epochs = [r["epoch"] + 1 for r in reports]
    C = len(reports[-1]["train_counts"])
    fig, ax = plt.subplots(figsize=(7, 4.2))
    # Distinct colours for up to 10 classes; a head-to-tail gradient beyond.
    colour = (lambda c: plt.get_cmap("tab10")(c)) if C <= 10 else (lambda c: plt.get_cmap("viridis")(c / (C - 1)))
    for c in range(C):
        ys = [nan(r[key][c]) * (100 if percent else 1) if r.get(key) else float("nan") for r in reports]
        ax.plot(epochs, ys, marker="o", ms=3, color=colour(c),
                label=f"{c} ({int(reports[-1]['train_counts'][c])})")
    values = [v for r in reports for v in (r.get(key) or []) if v is not None and v > 0]
    if log_if_wide and values and max(values) > 100 * min(values):
        ax.set_yscale("log")  # gradient norms span orders of magnitude early in training
        ax.set_ylim(bottom=max(min(values), 1e-6 * max(values)))  # a saturated class can reach 1e-30
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2, title="class (N_c)", title_fontsize=7)
    finish(fig, path)


def confusion_chart(rep, path):
    C = len(rep["train_counts"])
    m = rep["test_confusion"]
    rows = [m[t * C:(t + 1) * C] for t in range(C)]
    norm = [[v / max(1, sum(r)) for v in r] for r in rows]
    fig, ax = plt.subplots(figsize=(max(5, 0.55 * C + 2), max(4.5, 0.55 * C + 1.5)))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    if C <= 20:
        for t in range(C):
            for p in range(C):
                ax.text(p, t, f"{100 * norm[t][p]:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if norm[t][p] > 0.5 else "black")
    ax.set_xticks(range(C))
    ax.set_yticks(range(C))
    ax.set_yticklabels(class_labels(rep), fontsize=7)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class (N_c)")
    ax.set_title("test confusion matrix (% of each true class)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    finish(fig, path)


def tau_chart(dec, path):
    curves = dec.get("tau_curves", {})
    if not curves:
        return
    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.8), squeeze=False)
    for ax, (name, cv) in zip(axes[0], curves.items()):
        ax.plot(cv["taus"], [100 * s for s in cv["scores"]], marker="o", ms=3,
                label=f"selection ({cv.get('tuned_on', '')})")
        if "test" in cv:
            ax.plot(cv["taus"], [100 * s for s in cv["test"]], marker="s", ms=3, label="test")
        ax.axvline(cv["tau"], color="grey", ls="--", lw=1)
        ax.set_title(f"{name}: chosen tau = {cv['tau']:.2f}")
        ax.set_xlabel("tau")
        ax.set_ylabel("mean per-class accuracy (%)")
        ax.legend(fontsize=7)
    finish(fig, path)


def read_reports(run_dir):
    path = os.path.join(run_dir, "analysis.jsonl")
    if not os.path.exists(path):
        sys.exit(f"plot_analysis.py: no analysis.jsonl in {run_dir} (train with --analysis-every k)")
    with open(path) as f:
        reports = [json.loads(line) for line in f if line.strip()]
    # A resumed run may repeat an epoch; keep the last report of each.
    by_epoch = {r["epoch"]: r for r in reports}
    return [by_epoch[e] for e in sorted(by_epoch)]


def compare(runs, out):
    """Side-by-side figures of several runs (e.g. ERM vs CDT vs MFW) from their analysis.jsonl."""
    named = []
    for spec in runs:
        name, sep, run_dir = spec.partition("=")
        if not sep:
            sys.exit(f"plot_analysis.py: --compare takes NAME=RUN_DIR, got '{spec}'")
        named.append((name, read_reports(run_dir)))
    last = named[0][1][-1]
    if any(r[-1]["train_counts"] != last["train_counts"] for _, r in named):
        sys.exit("plot_analysis.py: --compare needs runs on the same training set")
    tag = lambda r: f"epoch {r[-1]['epoch'] + 1}"
    bar_chart(last, [(f"{n} ({100 * r[-1]['test_top1']:.1f}%)", r[-1]["test_accuracy"]) for n, r in named],
              "test accuracy (%)", "per-class test accuracy (" + ", ".join(f"{n}: {tag(r)}" for n, r in named) + ")",
              os.path.join(out, "compare_per_class_test.png"), percent=True)
    bar_chart(last, [(n, r[-1]["train_accuracy"]) for n, r in named], "training accuracy (%)",
              "per-class training accuracy", os.path.join(out, "compare_per_class_train.png"), percent=True)
    if all(r[-1].get("feature_deviation") for _, r in named):
        bar_chart(last, [(n, r[-1]["feature_deviation"]) for n, r in named], "dis(c)",
                  "feature deviation dis(c) of train and test means", os.path.join(out, "compare_feature_deviation.png"))
        C = len(last["train_counts"])
        fig, axes = plt.subplots(1, len(named), figsize=(4.2 * len(named), 3.8), squeeze=False, sharey=True)
        colour = (lambda c: plt.get_cmap("tab10")(c)) if C <= 10 else (lambda c: plt.get_cmap("viridis")(c / (C - 1)))
        for ax, (name, reps) in zip(axes[0], named):
            epochs = [r["epoch"] + 1 for r in reps]
            for c in range(C):
                ax.plot(epochs, [nan(r["feature_deviation"][c]) for r in reps], marker="o", ms=3, color=colour(c),
                        label=f"{c} ({int(last['train_counts'][c])})")
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
            ax.set_title(f"{name}: feature deviation")
            ax.set_xlabel("epoch")
        axes[0][0].set_ylabel("dis(c)")
        axes[0][-1].legend(fontsize=7, ncol=2, title="class (N_c)", title_fontsize=7)
        finish(fig, os.path.join(out, "compare_feature_deviation_epochs.png"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", nargs="?")
    ap.add_argument("--out", help="output directory (default RUN_DIR/figures)")
    ap.add_argument("--compare", nargs="+", metavar="NAME=RUN_DIR", help="side-by-side figures of several runs")
    a = ap.parse_args()
    if a.compare:
        if not a.out:
            sys.exit("plot_analysis.py: --compare needs --out DIR")
        os.makedirs(a.out, exist_ok=True)
        compare(a.compare, a.out)
        return
    if not a.run_dir:
        ap.error("give RUN_DIR or --compare")
    out = a.out or os.path.join(a.run_dir, "figures")
    os.makedirs(out, exist_ok=True)
    p = lambda name: os.path.join(a.run_dir, name)

    reports = read_reports(a.run_dir) if os.path.exists(p("analysis.jsonl")) else []
    last = None
    if os.path.exists(p("analysis.json")):
        with open(p("analysis.json")) as f:
            last = json.load(f)
    elif reports:
        last = reports[-1]
    if last is None and not os.path.exists(p("decouple.json")):
        sys.exit(f"plot_analysis.py: no analysis.json, analysis.jsonl or decouple.json in {a.run_dir}")

    if last is not None:
        tag = "checkpoint" if last.get("epoch", -1) < 0 else f"epoch {last['epoch'] + 1}"
        bar_chart(last, [("train", last["train_accuracy"]), ("test", last["test_accuracy"])], "accuracy (%)",
                  f"per-class accuracy ({tag}); test top-1 {100 * last['test_top1']:.2f}%, "
                  f"ECE {last['test_ece']:.3f}", os.path.join(out, "per_class_accuracy.png"), percent=True)
        if last.get("classifier_norms"):
            bar_chart(last, [("||w_c||", last["classifier_norms"])], "classifier weight norm",
                      f"classifier norms ({tag})", os.path.join(out, "classifier_norms.png"))
        if last.get("feature_deviation"):
            bar_chart(last, [("dis(c)", last["feature_deviation"])], "dis(c)",
                      f"feature deviation of train and test means ({tag})", os.path.join(out, "feature_deviation.png"))
        if last.get("grad_norms"):
            bar_chart(last, [("grad", last["grad_norms"])], "mean ||grad_g(x) loss||",
                      f"feature-gradient norm at '{last.get('grad_point', '')}' ({tag})",
                      os.path.join(out, "gradient_norms.png"))
        bar_chart(last, [("ratio", last["classification_ratio"])], "predicted / true count",
                  f"classification ratio on the training set ({tag})", os.path.join(out, "classification_ratio.png"),
                  hline=1.0)
        confusion_chart(last, os.path.join(out, "confusion.png"))
    if len(reports) > 1:
        epoch_chart(reports, "feature_deviation", "dis(c)", "feature deviation across epochs",
                    os.path.join(out, "feature_deviation_epochs.png"))
        epoch_chart(reports, "grad_norms", "mean ||grad_g(x) loss||",
                    f"feature-gradient norm at '{reports[-1].get('grad_point', '')}' across epochs",
                    os.path.join(out, "gradient_norms_epochs.png"), log_if_wide=True)
        epoch_chart(reports, "train_accuracy", "training accuracy (%)", "per-class training accuracy across epochs",
                    os.path.join(out, "train_accuracy_epochs.png"), percent=True)
        epoch_chart(reports, "classification_ratio", "predicted / true count",
                    "classification ratio across epochs", os.path.join(out, "classification_ratio_epochs.png"))
        epoch_chart(reports, "classifier_norms", "||w_c||", "classifier norms across epochs",
                    os.path.join(out, "classifier_norms_epochs.png"))
    if os.path.exists(p("decouple.json")):
        with open(p("decouple.json")) as f:
            tau_chart(json.load(f), os.path.join(out, "tau_curves.png"))


if __name__ == "__main__":
    main()
