"""A linear probe for one class on a layer's stored activations, as a direction in unit space.

The probe is a class-balanced logistic regression on standardized units (so that C regularizes
every unit alike, whatever its scale), fitted on a seeded, stratified share of the images and
scored on the rest. Its weights are mapped back to the RAW unit space, so that ranking images
by `values @ direction` ranks them exactly as the probe's logit does, and the direction can be
used wherever a raw activation vector is (ranking, synthesis) without the scaler.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from facetviz.activations.extract import Activations
from facetviz.core.errors import FacetvizError
from facetviz.core.io import atomic_path, write_json
from facetviz.core.progress import log

LABEL_KINDS = ("fine", "coarse")
PRECISION_AT = (100, 1000)


def split_rows(is_class: np.ndarray, test_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, held-out rows), sorted: a seeded `test_share` of each side of the target.

    Stratified, with at least one image of each side on each part, because a held-out set
    without positives has no AUC and a rare class could otherwise miss it by chance.
    """
    if not 0.0 < test_share < 1.0:
        raise FacetvizError(f"the probe's test share must be between 0 and 1, not {test_share}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for side in (True, False):
        rows = rng.permutation(np.flatnonzero(is_class == side))
        held = int(np.clip(round(test_share * len(rows)), 1, len(rows) - 1))
        test.append(rows[:held])
        train.append(rows[held:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def fit_standardized(
    values: np.ndarray, is_class: np.ndarray, seed: int, c: float = 1.0, max_iter: int = 1000
) -> Pipeline:
    """StandardScaler + balanced LogisticRegression fitted on all the rows given."""
    model = LogisticRegression(C=c, class_weight="balanced", random_state=seed, max_iter=max_iter)
    return make_pipeline(StandardScaler(), model).fit(values, is_class)


def raw_weights(pipeline: Pipeline) -> tuple[np.ndarray, float]:
    """(w, b) in raw unit space with `values @ w + b` equal to the pipeline's decision function.

    logit = w_std . (x - mu) / sigma + b_std = (w_std / sigma) . x + (b_std - w_std . mu / sigma)
    A unit constant on the training rows (sigma 0) gets weight 0: the scaler leaves it at
    x - mu, which the fit never saw vary, so no weight on it is supported by the data.
    """
    scaler, model = pipeline[0], pipeline[-1]
    sigma = np.sqrt(scaler.var_)
    w_std = model.coef_[0]
    w = np.divide(w_std, sigma, out=np.zeros_like(w_std), where=sigma > 0)
    bias = float(model.intercept_[0] - w @ scaler.mean_)
    return w, bias


def fit_probe(
    values: np.ndarray,
    is_class: np.ndarray,
    seed: int,
    test_share: float = 0.2,
    c: float = 1.0,
    max_iter: int = 1000,
) -> tuple[np.ndarray, dict[str, Any]]:
    """(unit-length float32 direction [units] in raw unit space, metrics) of a probe for
    `is_class` [N] bool on `values` [N, units]."""
    values = np.asarray(values, dtype=np.float32)
    is_class = np.asarray(is_class, dtype=bool)
    _check_inputs(values, is_class)
    train, test = split_rows(is_class, test_share, seed)
    pipeline = fit_standardized(values[train], is_class[train], seed, c, max_iter)
    w, _bias = raw_weights(pipeline)
    norm = float(np.linalg.norm(w))
    if norm == 0.0:
        raise FacetvizError(
            "the probe learned no direction (every weight is 0): no unit varies over the "
            "training images, or C is too small"
        )
    direction = (w / norm).astype(np.float32)
    logits = pipeline.decision_function(values[test])
    metrics = {
        "train_accuracy": float(pipeline.score(values[train], is_class[train])),
        "test_accuracy": float(pipeline.score(values[test], is_class[test])),
        "test_auc": float(roc_auc_score(is_class[test], logits)),
        "positives": int(is_class.sum()),
        "images": len(values),
        "held_out": len(test),
        "units": values.shape[1],
        "precision_at": precision_at(values[test] @ direction, is_class[test]),
    }
    return direction, metrics


def precision_at(projection: np.ndarray, is_class: np.ndarray) -> dict[str, float]:
    """Share of class images among the top N rows by projection, per N of PRECISION_AT
    (N clipped to the rows there are)."""
    order = np.argsort(-projection, kind="stable")
    return {str(n): float(is_class[order[: min(n, len(order))]].mean()) for n in PRECISION_AT}


def _check_inputs(values: np.ndarray, is_class: np.ndarray) -> None:
    if values.ndim != 2 or is_class.shape != (len(values),):
        raise FacetvizError(
            f"the probe needs values [N, units] and one target per row; got values "
            f"{values.shape} and targets {is_class.shape}"
        )
    if not np.isfinite(values).all():
        raise FacetvizError("the probe's activations hold NaN or infinite values")
    positives = int(is_class.sum())
    # two of each side: one to fit on and one to hold out
    if positives < 2 or len(is_class) - positives < 2:
        raise FacetvizError(
            f"a probe needs at least 2 images in the class and 2 outside it; the class has "
            f"{positives} of {len(is_class)} images"
        )


def resolve_labels(activations: Activations, class_name: str, labels: str) -> str:
    """ "fine" or "coarse": `labels` itself, or for "auto" the fine labels where `class_name` is
    a fine class (they say more where classes merge fine ones), else the coarse."""
    if labels not in (*LABEL_KINDS, "auto"):
        raise FacetvizError(
            f"probe labels must be one of {', '.join(LABEL_KINDS)} or auto, not {labels!r}"
        )
    if labels != "auto":
        return labels
    return "fine" if class_name in activations.fine_names else "coarse"


def class_target(activations: Activations, class_name: str, labels: str) -> np.ndarray:
    """[N] bool: which images of the activations file are of `class_name` (`labels` resolved:
    "fine" or "coarse")."""
    names, per_image = (
        (activations.fine_names, activations.fine_labels)
        if labels == "fine"
        else (activations.class_names, activations.labels)
    )
    if class_name not in names:
        raise FacetvizError(
            f"class {class_name!r} is not among the {labels} classes of the activations file; "
            f"available: {', '.join(names)}"
        )
    return np.asarray(per_image) == names.index(class_name)


def probe_stage(
    activations_path: str | Path,
    layer: str,
    spatial: str,
    class_name: str,
    labels: str,
    seed: int,
    out_npy: str | Path,
    out_json: str | Path,
    c: float = 1.0,
) -> dict[str, Any]:
    """Fit the probe for `class_name` on `layer`; write its direction (.npy) and metrics (JSON).

    `labels`: "fine", "coarse" or "auto" (see `resolve_labels`); the JSON holds the resolved one.
    """
    with Activations(activations_path) as activations:
        labels = resolve_labels(activations, class_name, labels)
        is_class = class_target(activations, class_name, labels)
        values = activations.layer_values(layer, spatial)
    direction, metrics = fit_probe(values, is_class, seed, c=c)
    # np.save appends ".npy" to a path without it (the temporary name): write through a handle
    with atomic_path(out_npy) as tmp, open(tmp, "wb") as handle:
        np.save(handle, direction)
    summary = {
        "layer": layer,
        "spatial": spatial,
        "class": class_name,
        "labels": labels,
        "seed": seed,
        "c": c,
        **metrics,
    }
    write_json(out_json, summary)
    log.info(
        "probe %s %s (%s): test AUC %.3f, accuracy %.3f, precision@100 %.3f on %d images",
        layer, class_name, labels, metrics["test_auc"], metrics["test_accuracy"],
        metrics["precision_at"]["100"], metrics["images"],
    )  # fmt: skip
    return summary
