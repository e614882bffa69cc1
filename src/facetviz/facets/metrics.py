"""How well a neuron's facets recover known sub-classes: scores against fine labels, and the
run's table of them.

The paper never measured whether its facets are real. Where the dataset has fine labels (the
default run's coarse classes are unions of Fashion-MNIST classes) we can:

- purity: the share of images whose fine class is the majority of their cluster (size-weighted),
- NMI and ARI of the clusters against the fine labels,
- coverage: the share of the unit's fine classes that are the majority of at least one facet.
  A unit's fine classes are those making up at least `min_share` of its selected images, so
  that a handful of stray images does not count as a class the unit responds to.

Purity, NMI and ARI score the k-means clustering of all selected images; coverage scores the
facets that are kept (after dropping small clusters), the ones that get visualized.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from facetviz.core.io import atomic_path

TABLE_COLUMNS = (
    "neuron",
    "layer",
    "unit",
    "select",
    "images",
    "facets",
    "space",
    "used",
    "purity",
    "nmi",
    "ari",
    "coverage",
    "covered",
    "fine_classes",
)


def purity(clusters: np.ndarray, fine: np.ndarray) -> float:
    """Size-weighted purity: share of images in their cluster's majority fine class."""
    majority = sum(np.bincount(fine[clusters == c]).max() for c in np.unique(clusters))
    return float(majority / len(fine))


def unit_fine_classes(fine: np.ndarray, min_share: float) -> np.ndarray:
    """Fine classes making up at least `min_share` of the selected images."""
    classes, counts = np.unique(fine, return_counts=True)
    return classes[counts >= min_share * len(fine)]


def majority_classes(assignment: np.ndarray, fine: np.ndarray) -> np.ndarray:
    """The majority fine class of each facet 0..k-1 (images with assignment -1 are ignored)."""
    k = int(assignment.max()) + 1 if len(assignment) else 0
    return np.array([np.bincount(fine[assignment == f]).argmax() for f in range(k)], dtype=int)


def ground_truth(
    clusters: np.ndarray,
    assignment: np.ndarray,
    fine: np.ndarray,
    fine_names: Sequence[str],
    min_share: float,
) -> dict[str, Any]:
    """Scores of one clustering: `clusters` the raw k-means labels of every selected image,
    `assignment` the kept facet of each image (-1 where its cluster was dropped)."""
    # imported here, not at the top: every figure and synthesis job reads facet records
    # (facet_record -> majority_classes), and scikit-learn's import costs them 1.5 s each
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    wanted = unit_fine_classes(fine, min_share)
    majorities = set(majority_classes(assignment, fine).tolist())
    covered = [int(c) for c in wanted if int(c) in majorities]
    return {
        "purity": purity(clusters, fine),
        "nmi": float(normalized_mutual_info_score(fine, clusters)),
        "ari": float(adjusted_rand_score(fine, clusters)),
        "coverage": float(len(covered) / len(wanted)) if len(wanted) else 1.0,
        "covered": [fine_names[c] for c in covered],
        "fine_classes": [fine_names[int(c)] for c in wanted],
    }


def table_rows(summaries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per neuron and clustering space, from the facet stage's JSON summaries."""
    rows = []
    for summary in summaries:
        neuron = summary["neuron_config"]
        for scores in summary.get("ground_truth", []):
            rows.append(
                {
                    "neuron": summary["neuron"],
                    "layer": neuron["layer"],
                    "unit": neuron["unit"],
                    "select": neuron["select"],
                    "images": summary["images"],
                    "facets": len(summary["facets"]),
                    "space": scores["space"],
                    "used": scores["used"],
                    "purity": round(scores["purity"], 4),
                    "nmi": round(scores["nmi"], 4),
                    "ari": round(scores["ari"], 4),
                    "coverage": round(scores["coverage"], 4),
                    "covered": len(scores["covered"]),
                    "fine_classes": len(scores["fine_classes"]),
                }
            )
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as an aligned text table, for logs and terminals."""
    if not rows:
        return "no ground truth: the dataset has no fine labels"
    columns = [c for c in TABLE_COLUMNS if c not in ("layer", "unit")]
    cells = [[str(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def write_table(summaries: Sequence[dict[str, Any]], out_csv: str | Path) -> str:
    """Write the run's ground-truth table as CSV; return it as text."""
    rows = table_rows(summaries)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=TABLE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(out_csv) as tmp:
        Path(tmp).write_text(buffer.getvalue())
    return format_table(rows)
