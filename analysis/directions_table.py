"""The tables of docs/results.md §8 from a run of config/directions-evaluation.yaml: the probe
neuron's scores and every method's beside the references, the SAE's latents against the layer's
units, and the facets of the SAE latents that the run visualizes, over every seed.

    make run ARGS="--configfile config/directions-evaluation.yaml" RUN=directions-evaluation
    .venv/bin/python analysis/directions_table.py
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cell(entry: dict | None) -> str:
    return (
        "—" if entry is None else f"{entry['mean']:.3f} [{entry['low']:.3f}, {entry['high']:.3f}]"
    )


def probe_tables(evaluation: dict) -> None:
    for name, probe in evaluation["probes"].items():
        print(f"\nprobe neuron {name} ({probe['class']}), {probe['seeds']} seeds")
        for key in ("top_precision", "facet_class_share", "facet_purity", "facets"):
            print(f"  {key}: {cell(probe[key])}")
        print("\n| method | share of its class | fidelity | activation ratio |")
        print("| --- | --- | --- | --- |")
        for method, scores in probe["methods"].items():
            print(f"| `{method}` | {cell(scores['class_share'])} | {cell(scores['fidelity'])} "
                  f"| {cell(scores['activation_ratio_median'])} |")  # fmt: skip


def sae_tables(evaluation: dict) -> None:
    for name, sae in evaluation["sae"].items():
        print(f"\nsae {name} on {sae['layer']}, {sae['seeds']} training seeds")
        for key in ("latents_mean_purity", "units_mean_purity", "latents_minus_units"):
            print(f"  {key}: {cell(sae[key])}")


def sae_facets(run: Path) -> None:
    """Each visualized latent's facets by majority fine class, per training tree."""
    trees = [run, *sorted(run.glob("train-seed-*"))]
    print("\n| tree | neuron | latent | top-image classes | facets' majority classes |")
    print("| --- | --- | --- | --- | --- |")
    for tree in trees:
        for path in sorted((tree / "facets").glob("*-[0-9]*.json")):
            summary = json.loads(path.read_text())
            if "sae" not in summary.get("readout", {}).get("label", ""):
                continue
            majorities = Counter(f["majority_fine_class"] for f in summary["facets"])
            classes = summary["ground_truth"][0]["fine_classes"]
            latent = summary["readout"]["label"].split()[-1]
            print(f"| {tree.name} | {summary['neuron']} | {latent} "
                  f"| {', '.join(classes)} | "
                  f"{', '.join(f'{c} ×{n}' for c, n in majorities.most_common())} |")  # fmt: skip
        for path in sorted((tree / "sae").glob("*.json")):
            metrics = json.loads(path.read_text())
            print(f"  {tree.name} {path.stem}: FVU {metrics['fvu']:.4f}, L0 {metrics['l0']:.1f}, "
                  f"{metrics['dead_latents']} dead of {metrics['width']}, "
                  f"{metrics['seconds']:.0f} s")  # fmt: skip
        for path in sorted((tree / "probes").glob("*.json")):
            probe = json.loads(path.read_text())
            print(f"  {tree.name} probe {path.stem}: accuracy {probe['test_accuracy']:.3f}, "
                  f"AUC {probe['test_auc']:.3f}, precision@100 {probe['precision_at']['100']:.2f}, "
                  f"@1000 {probe['precision_at']['1000']:.3f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=str(REPO / "results" / "directions-evaluation"))
    run = Path(parser.parse_args().run)
    evaluation = json.loads((run / "evaluation" / "directions.json").read_text())
    probe_tables(evaluation)
    sae_tables(evaluation)
    sae_facets(run)


if __name__ == "__main__":
    main()
