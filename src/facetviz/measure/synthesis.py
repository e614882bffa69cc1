"""How good the synthesized images are, measured with an independent oracle (docs/design.md §4, §6).

For each method (and each reference: the facets' mean and nearest real images, no optimization)
and each class unit (a neuron with `select: label`), with the oracle's fine-class prediction of
each facet image:
- facet fidelity: share of images predicted as their facet's majority fine class;
- transferability: share predicted as one of the unit's fine classes (its coarse class);
- diversity: distinct fine classes predicted among the unit's images;
- activation ratio: the unit's activation on the image / its best real image in that facet;
- plausibility, KID and the processing path against the facets' real images (`facet_reals`);
- for a sampler's chains (`samples`, ppgn): how far apart a chain's samples are (mean absolute
  pixel difference over its pairs) and how often the oracle's class changes along it.
Multi-facet units are those whose images span at least two fine classes; the summary pools them.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facetviz.core.errors import FacetvizError
from facetviz.core.io import atomic_path, write_json
from facetviz.core.progress import log
from facetviz.data.datasets import FacetDataset
from facetviz.facets.record import FacetRecord
from facetviz.measure.oracle import OracleNet, classify, load_oracle
from facetviz.measure.reals import FacetReals, facet_paths, path_scores, plausibility
from facetviz.model.networks import Network
from facetviz.synthesis.record import SynthesisRecord

COLUMNS = (
    "method",
    "neuron",
    "fine_classes",
    "images",
    "fidelity",
    "transferability",
    "diversity",
    "classes_shown",
    "activation_ratio_median",
    "plausibility",
    "plausible",
    "kid",
    "path_leaves",
    "chain_distance",
    "chain_class_changes",
)
ROUNDED = ("fidelity", "transferability", "activation_ratio_median", "plausibility", "plausible",
           "kid", "path_leaves", "chain_distance", "chain_class_changes")  # fmt: skip
# a method's pooled numbers in the summary (`_summarize`), which the evaluation over seeds takes
SUMMARY_METRICS = ("fidelity", "transferability", "activation_ratio_median", "mean_diversity",
                   "plausibility", "plausible", "kid", "path_leaves", "chain_distance",
                   "chain_class_changes")  # fmt: skip


def score_unit(
    facets: FacetRecord,
    images: np.ndarray,
    activations: np.ndarray,
    predicted: np.ndarray,
    oracle_names: Sequence[str],
) -> dict[str, Any]:
    """The scores of one unit's facet images (`predicted`: the oracle's fine class per image)."""
    names = list(facets.fine_names)
    try:  # the oracle's class order may differ from the dataset's
        to_dataset = np.array([names.index(name) for name in oracle_names])
    except ValueError as err:
        raise FacetvizError(
            f"the oracle's classes {list(oracle_names)} are not the dataset's fine classes "
            f"{names}: retrain the oracle for this dataset"
        ) from err
    predicted = to_dataset[predicted]
    majority = facets.majority[: len(images)]
    unit_classes = np.unique(facets.fine_labels[facets.assignment >= 0])
    best_real = facets.best_real_activation()[: len(images)]
    ratio = activations / np.where(best_real > 0, best_real, np.nan)
    return {
        "fine_classes": [names[c] for c in unit_classes],
        "images": len(images),
        "fidelity": float(np.mean(predicted == majority)),
        "transferability": float(np.mean(np.isin(predicted, unit_classes))),
        "diversity": len(set(predicted.tolist())),
        "classes_shown": sorted({names[c] for c in predicted if c in unit_classes}),
        "activation_ratio": ratio.tolist(),
        "activation_ratio_median": float(np.nanmedian(ratio)) if np.isfinite(ratio).any() else None,
        "predicted": [names[c] for c in predicted],
        "facet_majority": [names[c] for c in majority],
    }


def chain_scores(samples: np.ndarray, oracle: OracleNet) -> dict[str, float | None]:
    """A unit's chains, samples [S, k, C, H, W]: the mean over chains of the mean absolute pixel
    difference between two of its samples, and of the oracle's class changes along it."""
    if len(samples) < 2:
        return {"chain_distance": None, "chain_class_changes": None}
    steps, chains = samples.shape[:2]
    flat = torch.from_numpy(samples.reshape(steps, chains, -1)).float().transpose(0, 1)
    pairs = torch.cdist(flat, flat, p=1) / flat.shape[-1]  # [k, S, S]
    distance = pairs.sum((1, 2)) / (steps * (steps - 1))
    predicted = classify(oracle, torch.from_numpy(samples.reshape(-1, *samples.shape[2:])))
    classes = predicted.argmax(1).view(steps, chains)
    changes = (classes[1:] != classes[:-1]).sum(0).float()
    return {
        "chain_distance": float(distance.mean()),
        "chain_class_changes": float(changes.mean()),
    }


def evaluate(
    oracle_path: str | Path,
    network: Network,
    facets_paths: Sequence[str | Path],
    image_dirs: Mapping[str, Sequence[str | Path]],
    dataset: FacetDataset,
    out_csv: str | Path,
    out_json: str | Path,
) -> dict[str, Any]:
    """Score every method's images of the class units; `image_dirs[method]` follows
    `facets_paths` (one `<neuron>` folder with images.h5 per facet file)."""
    oracle, oracle_names = load_oracle(oracle_path)
    for method, folders in image_dirs.items():
        if len(folders) != len(facets_paths):
            raise ValueError(f"{method}: {len(folders)} image folders for {len(facets_paths)}")
    units: list[dict[str, Any]] = []
    for position, path in enumerate(facets_paths):
        facets = FacetRecord.read(path)
        records = {m: SynthesisRecord.read(dirs[position]) for m, dirs in image_dirs.items()}
        units += score_methods(facets, records, oracle, oracle_names, network, dataset)
        log.info("scored %s (%d/%d)", facets.neuron.name, position + 1, len(facets_paths))
    summary = {
        method: _summarize([u for u in units if u["method"] == method]) for method in image_dirs
    }
    report = {"summary": summary, "units": units}
    write_json(out_json, report)
    _write_csv(out_csv, units)
    log.info("synthesis quality (oracle %s):\n%s", oracle_path, format_summary(summary))
    return report


def score_methods(
    facets: FacetRecord,
    records: Mapping[str, SynthesisRecord],
    oracle: OracleNet,
    oracle_names: Sequence[str],
    network: Network,
    dataset: FacetDataset,
) -> list[dict[str, Any]]:
    """One unit's scores by every method, against its facets' real images."""
    reals = FacetReals.load(facets, dataset, oracle)
    paths = facet_paths(network, reals, {m: r.images for m, r in records.items()})
    units = []
    for position, (method, record) in enumerate(records.items()):
        predicted = classify(oracle, torch.from_numpy(record.images)).argmax(1).numpy()
        scores = score_unit(facets, record.images, record.activation_final, predicted, oracle_names)
        scores |= plausibility(record.images, reals, oracle) | path_scores(paths, position)
        scores |= chain_scores(record.samples, oracle)
        units.append({"method": method, "neuron": facets.neuron.name, **scores})
    return units


def _summarize(units: list[dict[str, Any]]) -> dict[str, Any]:
    multi = [u for u in units if len(u["fine_classes"]) >= 2]

    def pooled(group: list[dict[str, Any]], key: str) -> float | None:
        total = sum(u["images"] for u in group)
        return sum(u[key] * u["images"] for u in group) / total if total else None

    ratios = [r for u in multi for r in u["activation_ratio"] if r is not None and np.isfinite(r)]
    return {
        "multi_facet_units": [u["neuron"] for u in multi],
        "fidelity": pooled(multi, "fidelity"),
        "transferability": pooled(multi, "transferability"),
        "activation_ratio_median": float(np.median(ratios)) if ratios else None,
        "mean_diversity": float(np.mean([u["diversity"] for u in multi])) if multi else None,
        "plausibility": pooled(multi, "plausibility"),
        "plausible": pooled(multi, "plausible"),
        "kid": float(np.mean([u["kid"] for u in multi])) if multi else None,
        "path_leaves": pooled(multi, "path_leaves"),
        "chain_distance": _mean(multi, "chain_distance"),
        "chain_class_changes": _mean(multi, "chain_class_changes"),
        "path_layers": multi[0]["path_layers"] if multi else [],
        "path_profile": _mean_profile(multi),
        "all_classes_shown": {
            u["neuron"]: len(u["classes_shown"]) == len(u["fine_classes"]) for u in units
        },
        "classes_shown": {u["neuron"]: len(u["classes_shown"]) for u in units},
    }


def _mean(units: list[dict[str, Any]], key: str) -> float | None:
    values = [u[key] for u in units if u.get(key) is not None]
    return float(np.mean(values)) if values else None


def _mean_profile(units: list[dict[str, Any]]) -> list[float]:
    """The images' mean normalized processing-path score per layer, over the units."""
    if not units:
        return []
    weights = np.array([u["images"] for u in units], dtype=float)
    profiles = np.array([u["path_profile"] for u in units])
    return (weights @ profiles / weights.sum()).tolist()


def format_summary(summary: Mapping[str, Mapping[str, Any]]) -> str:
    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    keys = ("fidelity", "transferability", "activation_ratio_median", "mean_diversity",
            "plausibility", "plausible", "kid", "path_leaves")  # fmt: skip
    heads = ("fidelity", "transfer", "act.ratio", "diversity", "plausib.", "in range", "KID",
             "off path")  # fmt: skip
    lines = ["method       " + " ".join(f"{h:>9}" for h in heads) + "  every fine class shown"]
    for method, row in summary.items():
        shown = [name for name, ok in row["all_classes_shown"].items() if ok]
        cells = " ".join(f"{number(row[key]):>9}" for key in keys)
        lines.append(f"{method:<12} {cells}  {', '.join(shown) or '-'}")
    return "\n".join(lines)


def _write_csv(path: str | Path, units: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for unit in units:
            row = dict(unit)
            row["fine_classes"] = " ".join(unit["fine_classes"])
            row["classes_shown"] = " ".join(unit["classes_shown"])
            for key in ROUNDED:
                if row[key] is not None:
                    row[key] = round(row[key], 4)
            writer.writerow(row)
