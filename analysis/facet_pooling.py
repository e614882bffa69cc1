"""Facets that ignore position: each `facets.pool` measured against the fine labels.

For every run directory given (a training tree: its activations.h5 holds the facet layer's
codes), this runs the package's own facet discovery (select the class's images, pool, PCA ->
t-SNE -> k-means, the run config's facet settings, the tree's training seed) for each class
unit and each pool, and prints purity, NMI and coverage against the fine labels per training
seed, with the mean and its 95 % bootstrap interval over the seeds (evaluation/intervals.py).
For pool `none` it also says whether it reproduces the tree's own facets/<unit>.json, where the
run made one. Pass the config the runs were made with (it gives the facet settings):

    .venv/bin/python analysis/facet_pooling.py --config config/directions-evaluation.yaml \\
        results/directions-evaluation results/directions-evaluation/train-seed-{1,2}

A tree named train-seed-N has training seed N, any other the config's `seed` (or give --seeds).
--units, --pools and --seeds take comma-separated lists. An activations file from before the
code's shape was recorded, whose facet layer is not also a stored conv layer, needs
--code-shape C,H,W (e.g. 64,7,7 for the embedded CNN's conv3).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
METRICS = ("purity", "nmi", "coverage")
POOLS = ("none", "mean", "max", "pyramid")  # facets/pooling.py


def names(text: str) -> list[str]:
    """A comma-separated list."""
    return [name.strip() for name in text.split(",") if name.strip()]


def run_config(path: Path) -> dict[str, Any]:
    """The config as the workflow reads it: overlays resolved, the schema's defaults filled in."""
    from snakemake.utils import validate

    from facetviz.core.overlay import resolve

    config = resolve(yaml.safe_load(path.read_text()), REPO)
    validate(config, str(SCHEMA))
    return config


def class_unit(config: dict[str, Any], name: str, class_names: list[str]):
    """The class unit `name` as the workflow resolves it: the config's neuron of that name, or
    the unit of class `name` in the layer of the config's first class unit."""
    from facetviz.core.settings import Neuron

    if name not in class_names:
        sys.exit(f"{name!r} is not a class of the runs (classes: {', '.join(class_names)})")
    labelled = [n for n in config["neurons"] if n.get("select") == "label" and n.get("layer")]
    own = next((n for n in labelled if n["name"] == name), labelled[0] if labelled else None)
    if own is None:
        sys.exit("the config has no class unit (a neuron with select: label) to take a layer from")
    index = class_names.index(name)
    unit = own["unit"] if own["name"] == name else index
    return Neuron(name, own["layer"], unit, "center", "label", class_index=index)


def training_seed(tree: Path, config: dict[str, Any]) -> int:
    found = re.fullmatch(r"train-seed-(\d+)", tree.name)
    return int(found[1]) if found else int(config["seed"])


def measure_tree(
    tree: Path,
    seed: int,
    config: dict[str, Any],
    units: list[str],
    pools: list[str],
    code_shape: tuple[int, ...] | None = None,
) -> dict[str, Any]:
    """{unit: {pool: {space: scores}}} for one training tree."""
    from facetviz.activations.extract import Activations
    from facetviz.core.settings import FacetSettings
    from facetviz.facets.discover import clustered_codes, read_selection, space_scores

    settings = FacetSettings.from_config(config["facets"])
    path = tree / "activations.h5"
    with Activations(path) as activations:
        layer, class_names = activations.attrs()["facet_layer"], activations.class_names
        print(f"{tree}: seed {seed}, codes {activations.code_shape} of {layer}", flush=True)
    if layer != settings.layer:
        sys.exit(f"{path} holds codes of {layer}, the config's facets.layer is {settings.layer}")
    other = "pca" if settings.space == "tsne" else "tsne"
    spaces = [settings.space, *([other] if settings.compare_spaces else [])]
    results: dict[str, Any] = {}
    for name in units:
        neuron = class_unit(config, name, class_names)
        selection = read_selection(path, neuron, settings, seed)
        if code_shape is not None:
            selection = replace(selection, code_shape=code_shape)
        results[name] = {}
        for pool in pools:
            features = clustered_codes(selection, replace(settings, pool=pool))
            start = time.perf_counter()
            results[name][pool] = {
                space: space_scores(
                    features, selection.fine_labels, selection.fine_names, settings, seed, space
                )
                for space in spaces
            }
            print(f"  {name} {pool}: {features.shape[1]}-d, {time.perf_counter() - start:.0f} s",
                  flush=True)  # fmt: skip
        check_against_run(tree, name, results[name].get("none"))
    return results


def check_against_run(tree: Path, unit: str, none: dict[str, Any] | None) -> None:
    """Pool `none` is the run's own discovery: say whether it gives the run's own scores."""
    summary = tree / "facets" / f"{unit}.json"
    if none is None or not summary.exists():
        return
    recorded = json.loads(summary.read_text())
    for scores in recorded.get("ground_truth", []):
        ours = none.get(scores["space"])
        if ours is not None:
            same = all(np.isclose(ours[m], scores[m], atol=1e-9) for m in ("purity", "nmi", "ari"))
            word = "reproduces" if same else "DIFFERS FROM"
            print(f"  {unit} none {scores['space']}: {word} the run's own facets ({summary})")


def interval_cell(values: list[float]) -> str:
    """The mean of `values` and its 95 % bootstrap interval, as a table cell."""
    from facetviz.evaluation.intervals import summarize

    summary = summarize(values)
    return f"{summary.mean:.3f} [{summary.low:.3f}, {summary.high:.3f}]"


def print_table(per_seed: dict[int, dict[str, Any]], units: list[str], pools: list[str]) -> None:
    """One row per unit, pool and space: each seed's purity / NMI / coverage, then each
    metric's mean [95 % interval] over the seeds."""
    seeds = list(per_seed)
    spaces = list(next(iter(per_seed.values()))[units[0]][pools[0]])
    head = " | ".join(f"seed {s} P / NMI / cov" for s in seeds)
    print(f"\n| unit | pool | space | {head} | " + " | ".join(METRICS) + " |")
    print("|" + " --- |" * (3 + len(seeds) + len(METRICS)))
    for unit in units:
        for pool in pools:
            for space in spaces:
                rows = [per_seed[s][unit][pool][space] for s in seeds]
                cells = [
                    f"{r['purity']:.3f} / {r['nmi']:.3f} / "
                    f"{len(r['covered'])}/{len(r['fine_classes'])}"
                    for r in rows
                ]
                cells += [interval_cell([r[metric] for r in rows]) for metric in METRICS]
                print(f"| {unit} | {pool} | {space} | " + " | ".join(cells) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="training trees (activations.h5)")
    parser.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    parser.add_argument("--units", type=names, default="footwear,tops,trouser-dress")
    parser.add_argument("--pools", type=names, default=",".join(POOLS))
    parser.add_argument(
        "--seeds",
        type=lambda text: [int(seed) for seed in names(text)],
        help="each run's training seed, comma-separated, in the runs' order",
    )
    parser.add_argument(
        "--code-shape",
        type=lambda text: tuple(int(size) for size in names(text)),
        help="C,H,W of the facet layer, for activations files that do not record it",
    )
    parser.add_argument("--json", type=Path, help="also write every score here")
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    import facetviz.facets.discover  # noqa: F401 - loads scikit-learn's OpenMP, for the limit

    config = run_config(args.config)
    seeds = args.seeds or [training_seed(run, config) for run in args.runs]
    if len(seeds) != len(args.runs) or len(set(seeds)) != len(seeds):
        sys.exit(f"one distinct training seed per run, got {seeds} for {len(args.runs)} runs")
    per_seed = {}
    # one thread, as the facets rule runs: t-SNE's map depends on it. The limit holds for the
    # libraries loaded by now, so scikit-learn's OpenMP was imported above.
    with threadpool_limits(1):
        for run, seed in zip(args.runs, seeds, strict=True):
            per_seed[seed] = measure_tree(
                run, seed, config, args.units, args.pools, args.code_shape
            )
    print_table(per_seed, args.units, args.pools)
    if args.json:
        args.json.write_text(json.dumps({str(s): r for s, r in per_seed.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
