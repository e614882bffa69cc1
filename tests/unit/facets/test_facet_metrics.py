"""Ground-truth scores of facets against fine labels, and the run's table."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from facetviz.facets.metrics import (
    TABLE_COLUMNS,
    ground_truth,
    majority_classes,
    purity,
    unit_fine_classes,
    write_table,
)

NAMES = ["a", "b", "c", "d"]


def test_scores_hand_computed() -> None:
    clusters = np.array([0, 0, 0, 1, 1, 1])
    fine = np.array([0, 0, 1, 1, 2, 2])
    scores = ground_truth(clusters, clusters, fine, NAMES, min_share=0.0)
    # purity: cluster 0 has majority 2 (of 3), cluster 1 majority 2 (of 3) -> 4 / 6
    assert scores["purity"] == pytest.approx(4 / 6)
    # MI = 2/3 ln 2; H(clusters) = ln 2, H(fine) = ln 3; NMI (arithmetic mean) = MI / ((ln2+ln3)/2)
    assert scores["nmi"] == pytest.approx((4 / 3) * np.log(2) / np.log(6))
    # ARI: sum C(n_ij, 2) = 2, rows 6, columns 3, C(6, 2) = 15 -> (2 - 1.2) / (4.5 - 1.2)
    assert scores["ari"] == pytest.approx(0.8 / 3.3)
    # majorities: cluster 0 -> a, cluster 1 -> c; b is the majority of none
    assert scores["fine_classes"] == ["a", "b", "c"]
    assert scores["covered"] == ["a", "c"]
    assert scores["coverage"] == pytest.approx(2 / 3)


def test_perfect_and_permuted() -> None:
    fine = np.array([3, 3, 1, 1, 1, 2, 2])
    clusters = np.array([2, 2, 0, 0, 0, 1, 1])  # same partition, other names
    scores = ground_truth(clusters, clusters, fine, NAMES, min_share=0.0)
    assert (scores["purity"], scores["nmi"], scores["ari"], scores["coverage"]) == pytest.approx(
        (1.0, 1.0, 1.0, 1.0)
    )
    assert purity(np.zeros(7, dtype=np.int64), fine) == pytest.approx(3 / 7)


def test_unit_fine_classes_ignore_stray_images() -> None:
    fine = np.array([0] * 50 + [1] * 45 + [3] * 5)
    assert unit_fine_classes(fine, 0.05).tolist() == [0, 1, 3]
    assert unit_fine_classes(fine, 0.06).tolist() == [0, 1]


def test_coverage_counts_only_kept_facets() -> None:
    fine = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    clusters = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    assignment = np.array([0, 0, 0, 0, -1, -1, 1, 1, 1, 1])  # cluster 1 (all b) was dropped
    assert majority_classes(assignment, fine).tolist() == [0, 2]
    scores = ground_truth(clusters, assignment, fine, NAMES, min_share=0.1)
    assert scores["purity"] == pytest.approx(1.0)  # the clustering itself is perfect
    assert scores["covered"] == ["a", "c"]
    assert scores["coverage"] == pytest.approx(2 / 3)


def summary(name: str, fine: bool = True) -> dict:
    entry = {
        "neuron": name,
        "neuron_config": {"name": name, "layer": "fc", "unit": 2, "select": "label"},
        "images": 100,
        "facets": [{"rank": 0}, {"rank": 1}],
    }
    if fine:
        entry["ground_truth"] = [
            {"space": space, "used": space == "tsne", "purity": 0.81234567, "nmi": 0.5,
             "ari": 0.25, "coverage": 2 / 3, "covered": ["a", "b"], "fine_classes": NAMES[:3]}
            for space in ("tsne", "pca")
        ]  # fmt: skip
    return entry


def test_write_table(tmp_path: Path) -> None:
    out = tmp_path / "table.csv"
    text = write_table([summary("shoes"), summary("plain", fine=False)], out)
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == TABLE_COLUMNS
    assert [(r["neuron"], r["space"], r["used"]) for r in rows] == [
        ("shoes", "tsne", "True"),
        ("shoes", "pca", "False"),
    ]
    assert rows[0]["purity"] == "0.8123"
    assert rows[0]["coverage"] == "0.6667"
    assert (rows[0]["covered"], rows[0]["fine_classes"], rows[0]["facets"]) == ("2", "3", "2")
    lines = text.splitlines()
    assert len(lines) == 3
    assert lines[0].split()[:3] == ["neuron", "select", "images"]
    assert "0.8123" in lines[1]


def test_write_table_without_fine_labels(tmp_path: Path) -> None:
    text = write_table([summary("plain", fine=False)], tmp_path / "table.csv")
    assert "no fine labels" in text
    assert (tmp_path / "table.csv").read_text().strip() == ",".join(TABLE_COLUMNS)
