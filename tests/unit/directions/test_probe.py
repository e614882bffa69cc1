"""Linear probe: the direction it finds, its raw-space mapping, its errors and its stage."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy.stats import spearmanr
from threadpoolctl import threadpool_limits

from facetviz.core.errors import FacetvizError
from facetviz.directions.probe import (
    fit_probe,
    fit_standardized,
    precision_at,
    probe_stage,
    raw_weights,
    split_rows,
)

UNITS = 12


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Stages run with the threads they are given; BLAS pools on a busy 2-core machine crawl."""
    with threadpool_limits(1):
        yield


def separable(n: int = 4000, seed: int = 0, share: float = 0.3, distance: float = 2.0):
    """(values [n, UNITS], is_class, true direction in raw space).

    Two Gaussian classes with a shared diagonal covariance S^2 (unit scales from 0.5 to 2, and
    large offsets) whose means differ by S^2 t: their log-odds are linear in x with slope
    proportional to t, so t is what a probe must find in raw space. `distance` is the
    Mahalanobis distance between the classes (2: they overlap, AUC about 0.9). Units in raw space
    with small scales get noisy weights, so the scales span only 4x: over 20 seeds the cosine
    stays above 0.98 at n = 4000, while the standardized weights' cosine stays below 0.96.
    """
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=UNITS)
    truth /= np.linalg.norm(truth)
    is_class = rng.random(n) < share
    scales = rng.permutation(np.geomspace(0.5, 2.0, UNITS))
    shift = scales**2 * truth
    shift *= distance / np.sqrt(shift @ (shift / scales**2))
    offsets = rng.normal(0, 5, UNITS)
    values = rng.normal(size=(n, UNITS)) * scales + np.outer(is_class, shift) + offsets
    return values.astype(np.float32), is_class, truth


def test_direction_matches_the_truth_in_raw_space() -> None:
    values, is_class, truth = separable()
    direction, metrics = fit_probe(values, is_class, seed=0)
    assert direction.dtype == np.float32 and direction.shape == (UNITS,)
    assert np.linalg.norm(direction) == pytest.approx(1.0, abs=1e-6)
    assert float(direction @ truth) > 0.9
    assert metrics["test_auc"] > 0.85 and metrics["test_accuracy"] > 0.75
    assert metrics["train_accuracy"] > 0.75
    assert metrics["positives"] == int(is_class.sum())
    assert (metrics["images"], metrics["units"], metrics["held_out"]) == (len(values), UNITS, 800)


def test_mapping_to_raw_space_is_not_a_no_op() -> None:
    """The units' scales make the mapping matter: the standardized weights point elsewhere."""
    values, is_class, truth = separable()
    direction, _ = fit_probe(values, is_class, seed=0)
    train, _test = split_rows(is_class, 0.2, seed=0)
    w_std = fit_standardized(values[train], is_class[train], seed=0)[-1].coef_[0]
    w_std /= np.linalg.norm(w_std)
    assert float(w_std @ direction) < 0.99
    assert float(w_std @ truth) < float(direction @ truth)


def test_projection_ranks_as_the_logit() -> None:
    values, is_class, _truth = separable(n=600, seed=1, distance=4.0)
    pipeline = fit_standardized(values, is_class, seed=0)
    w, bias = raw_weights(pipeline)
    logits = pipeline.decision_function(values)
    np.testing.assert_allclose(values.astype(np.float64) @ w + bias, logits, rtol=1e-5, atol=1e-5)
    direction, _ = fit_probe(values, is_class, seed=0, test_share=0.2)
    train, _test = split_rows(is_class, 0.2, seed=0)
    same = fit_standardized(values[train], is_class[train], seed=0)
    projection = values.astype(np.float64) @ direction
    assert spearmanr(projection, same.decision_function(values)).statistic > 0.99999
    sample = np.random.default_rng(0).choice(len(values), 50, replace=False)
    order = np.argsort(projection[sample])
    assert (order == np.argsort(same.decision_function(values[sample]))).all()


def test_constant_unit_gets_no_weight() -> None:
    values, is_class, _ = separable()
    values[:, 3] = 7.0
    direction, _ = fit_probe(values, is_class, seed=0)
    assert direction[3] == 0.0


def test_split_is_seeded_stratified_and_disjoint() -> None:
    is_class = np.zeros(103, dtype=bool)
    is_class[:3] = True
    train, test = split_rows(is_class, 0.2, seed=4)
    assert np.intersect1d(train, test).size == 0 and len(train) + len(test) == 103
    assert is_class[test].any() and is_class[train].any()
    again = split_rows(is_class, 0.2, seed=4)
    assert (again[1] == test).all()
    assert not (split_rows(is_class, 0.2, seed=5)[1] == test).all()


def test_precision_at_clips_to_the_rows() -> None:
    projection = np.arange(10.0)
    is_class = projection >= 6  # the top 4 rows
    assert precision_at(projection, is_class) == {"100": 0.4, "1000": 0.4}
    big = np.arange(2000.0)
    assert precision_at(big, big >= 1950)["100"] == pytest.approx(0.5)


@pytest.mark.parametrize("positives", [0, 1, 299, 300])
def test_degenerate_targets_are_refused(positives: int) -> None:
    values, _, _ = separable(n=300)
    is_class = np.arange(300) < positives
    with pytest.raises(FacetvizError, match="at least 2 images in the class"):
        fit_probe(values, is_class, seed=0)


def test_non_finite_values_are_refused() -> None:
    values, is_class, _ = separable()
    values[5, 2] = np.nan
    with pytest.raises(FacetvizError, match="NaN or infinite"):
        fit_probe(values, is_class, seed=0)


FINE = ["T-shirt", "Trouser", "Sneaker", "Bag"]
COARSE = ["clothes", "footwear-bag"]


def activations_file(path: Path, values: np.ndarray, fine: np.ndarray) -> Path:
    """An activations file by hand, in the layout `Activations` reads."""
    n = len(values)
    with h5py.File(path, "w") as handle:
        handle["codes"] = np.zeros((n, 4), dtype=np.float16)
        handle["labels"] = (fine >= 2).astype(np.int64)
        handle["fine_labels"] = fine.astype(np.int64)
        handle["indices"] = np.arange(n, dtype=np.int64) * 2
        handle["layers/fc1/value"] = values.astype(np.float32)
        handle.attrs["class_names"] = json.dumps(COARSE)
        handle.attrs["fine_names"] = json.dumps(FINE)
        handle.attrs["has_fine_labels"] = True
    return path


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    values, is_sneaker, _ = separable(n=600, seed=2, share=0.25, distance=5.0)
    rng = np.random.default_rng(3)
    fine = np.where(is_sneaker, 2, rng.choice([0, 1, 3], size=len(values)))
    path = activations_file(tmp_path_factory.mktemp("probe") / "activations.h5", values, fine)
    return path, values, fine


def test_probe_stage_writes_direction_and_metrics(stored, tmp_path: Path) -> None:
    path, values, fine = stored
    out_npy, out_json = tmp_path / "probe" / "fc1-Sneaker.npy", tmp_path / "probe.json"
    summary = probe_stage(path, "fc1", "center", "Sneaker", "fine", 0, out_npy, out_json)
    direction = np.load(out_npy)
    expected, _ = fit_probe(values, fine == 2, seed=0)
    np.testing.assert_array_equal(direction, expected)
    assert sorted(p.name for p in out_npy.parent.iterdir()) == ["fc1-Sneaker.npy"]
    written = json.loads(out_json.read_text())
    assert written == summary
    assert (written["class"], written["labels"], written["layer"]) == ("Sneaker", "fine", "fc1")
    assert written["positives"] == int((fine == 2).sum()) and written["test_auc"] > 0.99
    assert set(written["precision_at"]) == {"100", "1000"}


def test_probe_stage_coarse_labels(stored, tmp_path: Path) -> None:
    path, _values, fine = stored
    summary = probe_stage(
        path, "fc1", "center", "footwear-bag", "coarse", 1, tmp_path / "d.npy", tmp_path / "m.json"
    )
    assert summary["positives"] == int((fine >= 2).sum())


@pytest.mark.parametrize(("name", "labels"), [("Sandal", "fine"), ("Sneaker", "coarse")])
def test_absent_class_lists_the_available_ones(stored, tmp_path: Path, name, labels) -> None:
    path, _, _ = stored
    available = FINE if labels == "fine" else COARSE
    with pytest.raises(FacetvizError, match=f"{name}.*{', '.join(available)}"):
        probe_stage(path, "fc1", "center", name, labels, 0, tmp_path / "d.npy", tmp_path / "m.json")
    assert not (tmp_path / "d.npy").exists()


@pytest.mark.parametrize(("name", "resolved"), [("Sneaker", "fine"), ("clothes", "coarse")])
def test_auto_labels_prefer_the_fine_classes(stored, tmp_path: Path, name, resolved) -> None:
    path, _values, fine = stored
    summary = probe_stage(
        path, "fc1", "center", name, "auto", 0, tmp_path / "d.npy", tmp_path / "m.json"
    )
    assert summary["labels"] == resolved
    positives = (fine == 2) if resolved == "fine" else (fine < 2)
    assert summary["positives"] == int(positives.sum())


def test_unknown_label_kind_is_refused(stored, tmp_path: Path) -> None:
    path, _, _ = stored
    with pytest.raises(FacetvizError, match="fine, coarse or auto"):
        probe_stage(
            path, "fc1", "center", "Bag", "both", 0, tmp_path / "d.npy", tmp_path / "m.json"
        )
