"""Measuring neurons that are directions (docs/design.md §12): a probe's images against its
class, and SAE latents against units.

- A probe for a fine class: the share of its selected (top) images that are of the class, the
  facets' purity, and for every method and reference the share of its images the oracle
  classifies as the class (`class_share`), beside the usual scores of `score_unit`.
- SAE latents against units: the fine-class purity of the top images of the latents that fire
  most often and of the layer's first units, the same count of each (`sae_purity`): the claim
  that latents are more monosemantic than units, measured rather than assumed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facetviz.activations.extract import Activations
from facetviz.core.io import write_json
from facetviz.core.progress import log
from facetviz.directions.sae import SaeRecord
from facetviz.facets.metrics import ground_truth
from facetviz.facets.record import FacetRecord
from facetviz.measure.oracle import classify, load_oracle
from facetviz.measure.synthesis import score_unit
from facetviz.synthesis.record import SynthesisRecord


def probe_scores(
    oracle_path: str | Path,
    facets_paths: Sequence[str | Path],
    image_dirs: Mapping[str, Sequence[str | Path]],
    classes: Sequence[str],
    out_json: str | Path,
) -> dict[str, Any]:
    """Score each probe neuron (facets_paths[i], its fine class classes[i]) and every method's
    images of it (`image_dirs[method][i]`); write the JSON."""
    oracle, oracle_names = load_oracle(oracle_path)
    neurons = []
    for position, path in enumerate(facets_paths):
        facets, name = FacetRecord.read(path), classes[position]
        target = facets.fine_names.index(name)
        entry = {"neuron": facets.neuron.name, "class": name, **_selection_scores(facets, target)}
        entry["methods"] = {}
        for method, folders in image_dirs.items():
            record = SynthesisRecord.read(folders[position])
            predicted = classify(oracle, torch.from_numpy(record.images)).argmax(1).numpy()
            scores = score_unit(facets, record.images, record.activation_final, predicted,
                                oracle_names)  # fmt: skip
            shown = np.array([oracle_names[p] for p in predicted])
            scores["class_share"] = float(np.mean(shown == name))
            entry["methods"][method] = scores
        neurons.append(entry)
        log.info(
            "probe %s (%s): top images %.3f of the class; class share %s", entry["neuron"], name,
            entry["top_precision"],
            ", ".join(f"{m} {s['class_share']:.2f}" for m, s in entry["methods"].items()),
        )  # fmt: skip
    report = {"neurons": neurons}
    write_json(out_json, report)
    return report


def _selection_scores(facets: FacetRecord, target: int) -> dict[str, Any]:
    """The selected images' share of the target class, and the facets' scores."""
    kept = facets.assignment >= 0
    scores = ground_truth(facets.clusters, facets.assignment, facets.fine_labels,
                          facets.fine_names, 0.05)  # fmt: skip
    return {
        "top_precision": float(np.mean(facets.fine_labels == target)),
        "facets": int(facets.facet_count),
        "facet_purity": scores["purity"],
        "facet_majorities": facets.majority_names(),
        "facet_class_share": float(np.mean(facets.fine_labels[kept] == target)),
    }


def top_purity(values: np.ndarray, fine_labels: np.ndarray, top_n: int) -> tuple[float, int]:
    """(share of the majority fine class, that class) among the `top_n` highest `values`."""
    top = np.argsort(-values, kind="stable")[:top_n]
    counts = np.bincount(fine_labels[top])
    return float(counts.max() / len(top)), int(counts.argmax())


def sae_purity(
    activations_path: str | Path, sae_path: str | Path, count: int, top_n: int,
    out_json: str | Path,
) -> dict[str, Any]:  # fmt: skip
    """Top-image purity of the `count` latents and the `count` units that fire most often
    (value > 0 on the most images; a unit that never fires has no top images to speak of);
    write the JSON."""
    record = SaeRecord.read(sae_path)
    with Activations(activations_path) as activations:
        values = activations.layer_values(record.layer, record.spatial)
        fine, names = activations.fine_labels, activations.fine_names
    alive = [int(j) for j in record.by_firing() if record.firing_rate[j] > 0][:count]
    latents = record.pre_activation(values)[:, alive]
    active = [int(u) for u in np.argsort(-(values > 0).mean(0), kind="stable")[:count]]
    rows = {
        "latents": [_purity_row(j, latents[:, i], fine, names, top_n) for i, j in enumerate(alive)],
        "units": [_purity_row(u, values[:, u], fine, names, top_n) for u in active],
    }
    report = {
        "layer": record.layer,
        "spatial": record.spatial,
        "top_n": top_n,
        **{f"{kind}_mean_purity": _mean_purity(found) for kind, found in rows.items()},
        **rows,
    }
    write_json(out_json, report)
    log.info(
        "%s: top-%d purity, %d latents %.3f, %d units %.3f", record.layer, top_n,
        len(alive), report["latents_mean_purity"], len(active), report["units_mean_purity"],
    )  # fmt: skip
    return report


def _purity_row(
    index: int, values: np.ndarray, fine: np.ndarray, names: Sequence[str], top_n: int
) -> dict[str, Any]:
    purity, majority = top_purity(values, fine, top_n)
    return {"index": index, "purity": purity, "majority": names[majority]}


def _mean_purity(rows: list[dict[str, Any]]) -> float:
    return float(np.mean([row["purity"] for row in rows]))
