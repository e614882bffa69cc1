"""Fidelity split by how pure each facet is: an analysis of an evaluation's results.

Fidelity asks whether the oracle gives an image its facet's majority fine class. A facet whose
own members are mostly one class (`--pure` or more of them) has a clear answer; a mixed one
(say 38 % pullovers, 32 % coats) has none, and no image of it can be expected to match. This
prints, per method, its fidelity on the pure and on the mixed facets of the multi-facet class
units, over every replicate of `config/evaluation.yaml`, and how many facets are mixed per
training seed. Needs the evaluation run first:

    make run ARGS="--configfile config/evaluation.yaml" RUN=evaluation
    .venv/bin/python analysis/fidelity_by_purity.py
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def majority_shares(facets: Path, units: list[str]) -> dict[str, np.ndarray]:
    """Per unit, [k] the share of each facet's members in its majority fine class."""
    from facetviz.facets.record import FacetRecord

    shares = {}
    for unit in units:
        record = FacetRecord.read(facets / f"{unit}.h5")
        labels = [record.fine_labels[record.assignment == f] for f in range(record.facet_count)]
        shares[unit] = np.array(
            [np.mean(lab == c) for lab, c in zip(labels, record.majority, strict=True)]
        )
    return shares


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=REPO / "results" / "evaluation")
    parser.add_argument("--pure", type=float, default=0.6)
    args = parser.parse_args()
    summary = json.loads((args.run / "evaluation" / "summary.json").read_text())
    hits: dict[tuple[str, bool], list[bool]] = defaultdict(list)
    mixed_per_training: dict[int, str] = {}
    root = args.run.resolve().parents[1]  # the trees are named from the working directory
    for tree, seeds in summary["trees"].items():
        training = root / tree if seeds["seed"] == 0 else (root / tree).parent
        metrics = json.loads((root / tree / "synthesis" / "metrics.json").read_text())
        units = metrics["summary"][next(iter(metrics["summary"]))]["multi_facet_units"]
        shares = majority_shares(training / "facets", units)
        flat = np.concatenate(list(shares.values()))
        mixed_per_training[seeds["train_seed"]] = f"{(flat < args.pure).sum()} of {flat.size}"
        for unit in metrics["units"]:
            if unit["neuron"] in shares:
                pairs = zip(
                    unit["predicted"], unit["facet_majority"], shares[unit["neuron"]], strict=True
                )
                for predicted, majority, share in pairs:
                    hits[(unit["method"], share >= args.pure)].append(predicted == majority)
    print(f"mixed facets (majority share < {args.pure}) per training seed: {mixed_per_training}")
    print(f"{'method':16} {'pure facets':>18} {'mixed facets':>18}")
    for method in dict.fromkeys(m for m, _ in hits):
        cells = [
            f"{np.mean(hits[(method, p)]):.3f} of {len(hits[(method, p)])}" for p in (True, False)
        ]
        print(f"{method:16} {cells[0]:>18} {cells[1]:>18}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
