"""The evaluation over seeds: every synthesis metric as a mean with a 95 % interval
(docs/design.md §6).

Each seed (a synthesis seed on a training seed) has its `synthesis/metrics.json`; this module
joins them into one table per seed (`per_seed.csv`) and a summary per method: for every metric
its mean, sample standard deviation and bootstrap interval over the seeds, and for every unit
the share of seeds in which it shows all its fine classes (`summary.csv`, `summary.json`).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from facetviz.core.io import atomic_path, read_json, write_json
from facetviz.core.progress import log
from facetviz.evaluation.intervals import share, summarize
from facetviz.measure.synthesis import SUMMARY_METRICS as METRICS


def tree_of(metrics_path: str | Path) -> str:
    """`<tree>/synthesis/metrics.json` -> `<tree>`."""
    return str(Path(metrics_path).parent.parent)


def per_seed_rows(reports: Mapping[str, Mapping[str, Any]], trees: Mapping[str, Any]):
    """One row per (seed, method): the tree, its seeds, the method's pooled metrics and, per
    unit, whether it showed all its fine classes."""
    rows = []
    for tree, report in reports.items():
        for method, summary in report["summary"].items():
            row = {"tree": tree, **trees[tree], "method": method}
            row |= {key: summary.get(key) for key in METRICS}  # None: not this method's
            row |= {f"shown:{u}": ok for u, ok in summary["all_classes_shown"].items()}
            row |= {f"classes:{u}": n for u, n in summary.get("classes_shown", {}).items()}
            rows.append(row)
    return rows


def summarize_method(rows: Sequence[Mapping[str, Any]], profiles: list[list[float]]) -> dict:
    """A method's metrics over its seeds' rows: intervals of numbers, shares of unit claims."""
    result: dict[str, Any] = {"seeds": len(rows)}
    for key in METRICS:
        values = [row[key] for row in rows if row[key] is not None]
        result[key] = summarize(values).as_dict() if values else None
    units = [key.split(":", 1)[1] for key in rows[0] if key.startswith("shown:")]
    result["all_classes_shown"] = {
        unit: share([bool(row[f"shown:{unit}"]) for row in rows]).as_dict() for unit in units
    }
    result["classes_shown"] = {  # how many of its fine classes a unit shows, over the seeds
        unit: summarize([row[f"classes:{unit}"] for row in rows]).as_dict()
        for unit in units
        if all(f"classes:{unit}" in row for row in rows)
    }
    profile = np.array(profiles)
    result["path_profile"] = {
        "mean": profile.mean(0).tolist(),
        "low": np.percentile(profile, 2.5, axis=0).tolist(),
        "high": np.percentile(profile, 97.5, axis=0).tolist(),
    }
    return result


def aggregate(
    metrics_paths: Sequence[str | Path],
    trees: Mapping[str, Any],
    per_seed_csv: str | Path,
    summary_csv: str | Path,
    summary_json: str | Path,
) -> dict[str, Any]:
    """Join every seed's metrics; write the per-seed table and the summary (CSV and JSON)."""
    reports = {tree_of(p): read_json(p, "synthesis_metrics") for p in metrics_paths}
    rows = per_seed_rows(reports, trees)
    methods = list(next(iter(reports.values()))["summary"])
    summary: dict[str, Any] = {"trees": dict(trees), "methods": {}}
    for method in methods:
        mine = [row for row in rows if row["method"] == method]
        profiles = [report["summary"][method]["path_profile"] for report in reports.values()]
        summary["methods"][method] = summarize_method(mine, profiles)
    first = next(iter(reports.values()))["summary"][methods[0]]
    summary["path_layers"] = first["path_layers"]
    _write_rows(per_seed_csv, rows)
    _write_rows(summary_csv, summary_rows(summary))
    write_json(summary_json, summary)
    log.info("evaluation over %d seeds:\n%s", len(reports), format_summary(summary))
    return summary


def summary_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per (method, metric) with mean, std and the interval; shares per unit claim."""
    rows = []
    for method, result in summary["methods"].items():
        for key in METRICS:
            if result[key] is not None:
                rows.append({"method": method, "metric": key, **_rounded(result[key])})
        for unit, claim in result["all_classes_shown"].items():
            rows.append({"method": method, "metric": f"all classes shown: {unit}",
                         "mean": claim["share"], "n": claim["n"]})  # fmt: skip
        for unit, count in result.get("classes_shown", {}).items():
            rows.append({"method": method, "metric": f"classes shown: {unit}", **_rounded(count)})
    return rows


def _rounded(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in values.items()}


def format_summary(summary: Mapping[str, Any]) -> str:
    lines = [f"{'method':<13} {'fidelity':>22} {'activation ratio':>22} {'plausibility':>22}"]
    for method, result in summary["methods"].items():
        cells = []
        for key in ("fidelity", "activation_ratio_median", "plausibility"):
            value = result[key]
            cells.append("-" if value is None else _interval(value))
        lines.append(f"{method:<13} " + " ".join(f"{cell:>22}" for cell in cells))
    return "\n".join(lines)


def _interval(value: Mapping[str, Any]) -> str:
    return f"{value['mean']:.3f} [{value['low']:.3f}, {value['high']:.3f}]"


def _write_rows(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
