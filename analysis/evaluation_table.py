"""An evaluation's tables for docs/results.md (§3.1, §10.5): each method's and reference's mean
with its 95 % interval from `evaluation/summary.csv`, then per class unit the facets' purity,
NMI and coverage against the fine labels and the generator's check figures over the training
trees, each as a mean with its interval (evaluation/intervals.py).

    .venv/bin/python analysis/evaluation_table.py results/colour-evaluation

The run folder is the evaluation's (its first training tree); its train-seed-N folders are the
others.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from facetviz.evaluation.intervals import summarize

METRICS = {
    "fidelity": "fidelity",
    "transferability": "transferability",
    "activation_ratio_median": "activation ratio",
    "plausible": "in range",
}
GENERATOR = ("reconstruction_accuracy", "code_cosine", "real_accuracy")


def interval(mean: float, low: float, high: float) -> str:
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def method_table(summary: Path) -> None:
    rows = list(csv.DictReader(summary.open()))
    cells = {(r["method"], r["metric"]): r for r in rows if r["metric"] in METRICS}
    methods = list(dict.fromkeys(method for method, _ in cells))
    print("| method | " + " | ".join(METRICS.values()) + " |")
    print("|" + " --- |" * (1 + len(METRICS)))
    for method in methods:
        row = [cells.get((method, metric)) for metric in METRICS]
        text = [interval(*(float(r[k]) for k in ("mean", "low", "high"))) if r else "" for r in row]
        print(f"| `{method}` | " + " | ".join(text) + " |")
    print(f"(n = {rows[0]['n']} replicates)\n")


def tree_tables(run: Path) -> None:
    trees = [run, *sorted(run.glob("train-seed-*"))]
    units = sorted(path.stem for path in (run / "facets").glob("*.json"))
    print("| unit | t-SNE purity | NMI | coverage |\n| --- | --- | --- | --- |")
    for unit in units:
        scores = [json.loads((t / "facets" / f"{unit}.json").read_text()) for t in trees]
        spaces = [next(g for g in s["ground_truth"] if g["space"] == "tsne") for s in scores]
        cells = [summarize([g[m] for g in spaces]) for m in ("purity", "nmi", "coverage")]
        print(f"| {unit} | " + " | ".join(interval(c.mean, c.low, c.high) for c in cells) + " |")
    print(f"(over {len(trees)} training trees)\n")
    generators = [json.loads((t / "priors" / "generator.json").read_text()) for t in trees]
    for key in GENERATOR:
        values = summarize([g[key] for g in generators])
        each = ", ".join(f"{g[key]:.3f}" for g in generators)
        print(f"generator {key}: {interval(values.mean, values.low, values.high)} ({each})")
    passed = sum(bool(g.get("check", {}).get("passed")) for g in generators)
    print(f"generator check passed in {passed} of {len(generators)} trees")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="an evaluation's run folder")
    args = parser.parse_args()
    summary = args.run / "evaluation" / "summary.csv"
    if not summary.exists():
        sys.exit(f"{summary} is missing: run the evaluation config first")
    method_table(summary)
    tree_tables(args.run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
