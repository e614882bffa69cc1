"""The evaluation over seeds: per-seed tables, intervals of every metric, shares of unit claims."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from facetviz.evaluation.aggregate import METRICS, aggregate, tree_of


def report(fidelity: float, shown: bool, profile: float = 0.0) -> dict:
    """A synthesis/metrics.json of one seed: two methods, one unit."""
    summary = {
        key: 0.5 for key in METRICS
    } | {"fidelity": fidelity, "path_layers": ["a", "b"], "path_profile": [profile, -profile],
         "all_classes_shown": {"footwear": shown}}  # fmt: skip
    return {"summary": {"mfv": summary, "mean_image": {**summary, "fidelity": 0.9}}, "units": []}


def outputs(root: Path) -> list[Path]:
    folder = root / "evaluation"
    return [folder / "per_seed.csv", folder / "summary.csv", folder / "summary.json"]


def write_seeds(root: Path, reports: list[dict]) -> tuple[list[Path], dict]:
    paths, trees = [], {}
    for seed, content in enumerate(reports):
        path = root / f"seed-{seed}" / "synthesis" / "metrics.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(content))
        paths.append(path)
        trees[tree_of(path)] = {"train_seed": 0, "seed": seed}
    return paths, trees


def test_identical_seeds_give_zero_width_intervals(tmp_path: Path) -> None:
    paths, trees = write_seeds(tmp_path, [report(0.7, True)] * 3)
    summary = aggregate(paths, trees, *outputs(tmp_path))
    fidelity = summary["methods"]["mfv"]["fidelity"]
    assert fidelity["mean"] == fidelity["low"] == fidelity["high"] == 0.7
    assert fidelity["std"] == 0.0 and fidelity["n"] == 3
    assert summary["methods"]["mean_image"]["fidelity"]["mean"] == 0.9
    assert summary["methods"]["mfv"]["all_classes_shown"]["footwear"] == {
        "share": 1.0, "holds": 3, "n": 3,
    }  # fmt: skip


def test_seeds_that_differ_give_an_interval_and_shares(tmp_path: Path) -> None:
    values = [0.6, 0.7, 0.8, 0.7, 0.9]
    paths, trees = write_seeds(tmp_path, [report(v, v > 0.65, profile=v) for v in values])
    summary = aggregate(paths, trees, *outputs(tmp_path))
    fidelity = summary["methods"]["mfv"]["fidelity"]
    assert fidelity["mean"] == pytest.approx(0.74)
    assert fidelity["low"] < 0.74 < fidelity["high"]
    assert fidelity["low"] >= 0.6 and fidelity["high"] <= 0.9
    assert summary["methods"]["mfv"]["all_classes_shown"]["footwear"]["holds"] == 4
    profile = summary["methods"]["mfv"]["path_profile"]
    assert profile["mean"][0] == pytest.approx(0.74) and profile["low"][0] < profile["high"][0]
    with open(tmp_path / "evaluation" / "per_seed.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * len(values)  # a row per seed and method
    assert {row["seed"] for row in rows} == {str(s) for s in range(5)}
    with open(tmp_path / "evaluation" / "summary.csv", newline="") as handle:
        summary_rows = list(csv.DictReader(handle))
    fidelity_row = next(
        r for r in summary_rows if r["method"] == "mfv" and r["metric"] == "fidelity"
    )
    assert float(fidelity_row["mean"]) == pytest.approx(0.74)
