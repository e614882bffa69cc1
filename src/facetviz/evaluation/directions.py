"""Directions over seeds (docs/design.md §12): each probe neuron's and each SAE's scores, from
every seed's `directions/*.json`, as means with 95 % intervals (`intervals.summarize`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from facetviz.core.io import read_json, write_json
from facetviz.core.progress import log
from facetviz.evaluation.intervals import summarize

PROBE_KEYS = ("top_precision", "facets", "facet_purity", "facet_class_share")
METHOD_KEYS = ("class_share", "fidelity", "transferability", "activation_ratio_median")
SAE_KEYS = ("latents_mean_purity", "units_mean_purity")


def interval(values: Sequence[float | None]) -> dict[str, Any] | None:
    kept = [v for v in values if v is not None]
    return summarize(kept).as_dict() if kept else None


def summarize_probes(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per probe neuron: its selection's and facets' scores and every method's, over seeds."""
    names = [entry["neuron"] for entry in reports[0]["neurons"]]
    summary: dict[str, Any] = {}
    for position, name in enumerate(names):
        entries = [report["neurons"][position] for report in reports]
        methods = entries[0]["methods"]
        summary[name] = {
            "class": entries[0]["class"],
            "seeds": len(entries),
            **{key: interval([e[key] for e in entries]) for key in PROBE_KEYS},
            "methods": {
                method: {
                    key: interval([e["methods"][method][key] for e in entries])
                    for key in METHOD_KEYS
                }
                for method in methods
            },
        }
    return summary


def summarize_sae(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Latents' and units' mean top-image purity over the training seeds, and their gap."""
    gaps = [r["latents_mean_purity"] - r["units_mean_purity"] for r in reports]
    return {
        "layer": reports[0]["layer"],
        "seeds": len(reports),
        **{key: interval([r[key] for r in reports]) for key in SAE_KEYS},
        "latents_minus_units": interval(gaps),
    }


def evaluate_directions(
    probe_paths: Sequence[str | Path], sae_paths: Sequence[str | Path], out_json: str | Path
) -> dict[str, Any]:
    """Summarize the probe reports (one per seed) and the SAE reports (one per SAE and training
    seed, `<tree>/directions/sae-<name>.json`); write the JSON."""
    by_sae: dict[str, list[dict[str, Any]]] = {}
    for path in sae_paths:
        by_sae.setdefault(Path(path).stem.removeprefix("sae-"), []).append(read_json(path))
    probes = [read_json(path) for path in probe_paths]
    result = {
        "probes": summarize_probes(probes) if probes else {},
        "sae": {name: summarize_sae(reports) for name, reports in by_sae.items()},
    }
    write_json(out_json, result)
    for name, entry in result["probes"].items():
        log.info("probe neuron %s (%s), top precision %s", name, entry["class"],
                 entry["top_precision"])  # fmt: skip
    for name, entry in result["sae"].items():
        log.info("sae %s: latents %s, units %s", name, entry["latents_mean_purity"],
                 entry["units_mean_purity"])  # fmt: skip
    return result
