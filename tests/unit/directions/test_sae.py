"""TopK sparse autoencoder: it learns sparse data, its readout, its record and its stage."""

from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from facetviz.core.errors import FacetvizError
from facetviz.directions.sae import (
    SaeRecord,
    SaeSettings,
    normalization,
    sae_stage,
    split_rows,
    top_k_relu,
    train_sae,
)

UNITS, ATOMS, K = 32, 64, 4
# 500 steps at lr 3e-3 reach a held-out FVU of 0.065 to 0.09 over 3 data seeds x 3 SAE seeds
# (0.18 at 200 steps, 0.33 at 300 steps with lr 1e-3): a wide margin below the 0.2 asked for
SETTINGS = SaeSettings(width=128, k=K, steps=500, batch_size=256, lr=3e-3)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matrices: one thread is faster, and results depend on the thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def sparse_data(n: int = 2000, seed: int = 0) -> np.ndarray:
    """[n, UNITS] rows that are each a positive mix of 1 to K of ATOMS random unit atoms,
    with an offset (the SAE must learn it in b_dec, since it centres the data)."""
    rng = np.random.default_rng(seed)
    atoms = rng.normal(size=(ATOMS, UNITS))
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    x = np.zeros((n, UNITS))
    for i in range(n):
        active = rng.choice(ATOMS, size=rng.integers(1, K + 1), replace=False)
        x[i] = rng.uniform(0.5, 1.5, size=len(active)) @ atoms[active]
    return (x * 3.0 + 1.0).astype(np.float32)


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return sparse_data()


@pytest.fixture(scope="module")
def trained(data: np.ndarray) -> tuple[SaeRecord, dict]:
    return train_sae(data, SETTINGS, seed=0, layer="fc1", spatial="center")


def test_learns_sparse_data(trained, data: np.ndarray) -> None:
    record, metrics = trained
    assert metrics["fvu"] < 0.2
    assert 0 < metrics["l0"] <= K
    assert metrics["final_loss"] == pytest.approx(float(record.curve[-1]))
    assert record.curve[-1] < 0.5 * record.curve[0]
    assert metrics["dead_latents"] + metrics["alive_latents"] == SETTINGS.width
    assert metrics["dead_latents"] == int((record.firing_rate == 0).sum())
    assert (metrics["images"], metrics["held_out_images"], metrics["train_images"]) == (
        2000,
        200,
        1800,
    )
    assert (metrics["width"], metrics["k"], metrics["steps"]) == (128, K, 500)


def test_record_shapes_and_invariants(trained, data: np.ndarray) -> None:
    record, _ = trained
    assert record.w_enc.shape == record.w_dec.shape == (SETTINGS.width, UNITS)
    assert record.b_enc.shape == record.firing_rate.shape == (SETTINGS.width,)
    assert record.b_dec.shape == record.mean.shape == (UNITS,)
    assert record.curve.shape == (SETTINGS.steps,) and record.curve.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(record.w_dec, axis=1), 1.0, rtol=1e-5)
    codes = record.encode(data)
    assert ((codes > 0).sum(axis=1) <= K).all() and (codes >= 0).all()
    train, _ = split_rows(len(data), seed=0)
    # the normalization makes E|x'|^2 = units over the training rows
    squared = np.sum(record.normalize(data[train]) ** 2, axis=1).mean()
    assert squared == pytest.approx(UNITS, rel=1e-4)


def test_latent_readout_is_the_pre_activation(trained, data: np.ndarray) -> None:
    record, _ = trained
    pre = record.pre_activation(data[:50])
    for latent in (0, 17, SETTINGS.width - 1):
        weights, bias = record.latent_readout(latent)
        assert weights.shape == (UNITS,)
        np.testing.assert_allclose(data[:50] @ weights + bias, pre[:, latent], atol=1e-3, rtol=1e-4)
    # and the codes are the top-k of those pre-activations
    np.testing.assert_array_equal(record.encode(data[:50]), top_k_relu(pre, K))


@pytest.mark.parametrize("latent", [-1, SETTINGS.width])
def test_latent_out_of_range(trained, latent: int) -> None:
    record, _ = trained
    with pytest.raises(FacetvizError, match=f"latents 0 to {SETTINGS.width - 1}"):
        record.latent_readout(latent)


def test_by_firing_is_descending_and_stable(trained) -> None:
    record, _ = trained
    order = record.by_firing()
    assert sorted(order.tolist()) == list(range(SETTINGS.width))
    rates = record.firing_rate[order]
    assert (np.diff(rates) <= 0).all()
    ties = replace(record, firing_rate=np.array([0.1, 0.5, 0.1, 0.5] + [0.0] * 124))
    assert ties.by_firing()[:6].tolist() == [1, 3, 0, 2, 4, 5]


def test_top_k_relu() -> None:
    pre = np.array([[3.0, -1.0, 2.0, 0.5], [-3.0, -1.0, -2.0, -0.5]])
    np.testing.assert_array_equal(top_k_relu(pre, 2), [[3.0, 0.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0]])


def assert_records_equal(a: SaeRecord, b: SaeRecord) -> None:
    for field in fields(SaeRecord):
        left, right = getattr(a, field.name), getattr(b, field.name)
        if isinstance(left, np.ndarray):
            assert left.dtype == right.dtype, field.name
            np.testing.assert_array_equal(left, right, err_msg=field.name)
        else:
            assert left == right, field.name


def test_write_read_round_trip(trained, tmp_path: Path) -> None:
    record, _ = trained
    path = tmp_path / "sae" / "fc1.h5"
    record.write(path)
    assert_records_equal(SaeRecord.read(path), record)


def test_incomplete_record_names_the_stage(trained, tmp_path: Path) -> None:
    record, _ = trained
    path = tmp_path / "fc1.h5"
    record.write(path)
    with h5py.File(path, "a") as handle:
        del handle["w_dec"]
    with pytest.raises(FacetvizError, match="w_dec.*'sae' stage"):
        SaeRecord.read(path)


def test_same_seed_same_record(data: np.ndarray) -> None:
    short = replace(SETTINGS, steps=60)
    a, _ = train_sae(data, short, seed=3, layer="fc1", spatial="center")
    b, _ = train_sae(data, short, seed=3, layer="fc1", spatial="center")
    c, _ = train_sae(data, short, seed=4, layer="fc1", spatial="center")
    assert_records_equal(a, b)
    assert not np.array_equal(a.w_dec, c.w_dec)


def test_normalization() -> None:
    rows = np.random.default_rng(0).normal(2.0, 3.0, size=(500, 8)).astype(np.float32)
    mean, scale = normalization(rows)
    np.testing.assert_allclose(mean, rows.mean(axis=0), rtol=1e-5)
    assert np.mean(np.sum(((rows - mean) / scale) ** 2, axis=1)) == pytest.approx(8, rel=1e-5)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (replace(SETTINGS, k=129), "between 1 and sae.width"),
        (replace(SETTINGS, k=0), "between 1 and sae.width"),
        (replace(SETTINGS, steps=0), "must be positive"),
    ],
)
def test_bad_settings_are_refused(data: np.ndarray, settings: SaeSettings, message: str) -> None:
    with pytest.raises(FacetvizError, match=message):
        train_sae(data, settings, seed=0, layer="fc1", spatial="center")


def test_non_finite_values_are_refused(data: np.ndarray) -> None:
    bad = data.copy()
    bad[3, 4] = np.inf
    with pytest.raises(FacetvizError, match="NaN or infinite"):
        train_sae(bad, SETTINGS, seed=0, layer="fc1", spatial="center")


def test_sae_stage(data: np.ndarray, tmp_path: Path) -> None:
    """End to end on a hand-made activations file of a conv layer (spatial rules)."""
    path = tmp_path / "activations.h5"
    n = 600
    with h5py.File(path, "w") as handle:
        handle["codes"] = np.zeros((n, 4), dtype=np.float16)
        handle["labels"] = handle["fine_labels"] = np.zeros(n, dtype=np.int64)
        handle["indices"] = np.arange(n, dtype=np.int64)
        handle["layers/conv2/max"] = data[:n]
        handle["layers/conv2/mean"] = np.zeros((n, UNITS), dtype=np.float32)
        handle.attrs["class_names"] = handle.attrs["fine_names"] = json.dumps(["a"])
        handle.attrs["has_fine_labels"] = False
    settings = replace(SETTINGS, steps=250, width=32)
    out_h5, out_json = tmp_path / "sae" / "conv2.h5", tmp_path / "sae" / "conv2.json"
    threads = torch.get_num_threads()
    summary = sae_stage(path, "conv2", "max", settings, 0, out_h5, out_json, threads=1)
    assert torch.get_num_threads() == threads
    record = SaeRecord.read(out_h5)
    expected, _ = train_sae(data[:n], settings, seed=0, layer="conv2", spatial="max")
    assert_records_equal(record, expected)
    written = json.loads(out_json.read_text())
    assert written == summary
    assert written["settings"] == {"width": 32, "k": K, "steps": 250, "batch_size": 256, "lr": 3e-3}
    assert written["curve"]["step"] == sorted(set(written["curve"]["step"]))
    assert len(written["curve"]["step"]) == 200 and written["curve"]["step"][-1] == 249
    assert written["curve"]["loss"][-1] == pytest.approx(float(record.curve[-1]))
    top = [entry["latent"] for entry in written["by_firing"]]
    assert top == record.by_firing()[:32].tolist() and written["fvu"] < 0.5
