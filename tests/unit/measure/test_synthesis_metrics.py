"""Scores of synthesized images against an oracle's predictions, on hand-made facets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import facet_record, synthesize

from facetviz.core.errors import FacetvizError
from facetviz.data.datasets import FacetDataset
from facetviz.facets.record import FacetRecord
from facetviz.measure.synthesis import _summarize, evaluate, format_summary, score_unit
from facetviz.model.networks import Network
from facetviz.synthesis.record import SynthesisRecord

NAMES = ["Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def facets():
    """Three facets: sandals (0), sneakers (1), boots (2); one dropped image (-1)."""
    return facet_record(
        assignment=[0, 0, 0, 1, 1, 2, 2, 2, -1],
        fine_labels=[0, 0, 2, 2, 2, 4, 4, 0, 1],
        unit_values=[4.0, 5.0, 1.0, 2.0, 8.0, 3.0, 6.0, 1.0, 99.0],
        fine_names=NAMES,
    )


def test_scores_of_one_unit() -> None:
    oracle_names = ["Bag", "Sandal", "Sneaker", "Shirt", "Ankle boot"]  # another order
    # predictions in the oracle's order: Sandal, Sandal, Shirt
    predicted = np.array([1, 1, 3])
    scores = score_unit(
        facets(), np.zeros((3, 1, 4, 4)), np.array([10.0, 4.0, 3.0]), predicted, oracle_names
    )
    assert scores["facet_majority"] == ["Sandal", "Sneaker", "Ankle boot"]
    assert scores["fidelity"] == pytest.approx(1 / 3)  # only the first is its facet's class
    assert scores["transferability"] == pytest.approx(2 / 3)  # Shirt is not footwear
    assert scores["fine_classes"] == ["Sandal", "Sneaker", "Ankle boot"]  # the dropped Shirt is not
    assert scores["diversity"] == 2 and scores["classes_shown"] == ["Sandal"]
    np.testing.assert_allclose(scores["activation_ratio"], [10 / 5, 4 / 8, 3 / 6])
    assert scores["activation_ratio_median"] == pytest.approx(0.5)


def test_oracle_of_other_classes_is_refused() -> None:
    with pytest.raises(FacetvizError, match="retrain the oracle"):
        score_unit(facets(), np.zeros((3, 1, 4, 4)), np.ones(3), np.zeros(3, int), ["Cat", "Dog"])


def test_summary_pools_multi_facet_units() -> None:
    def unit(name: str, classes: list[str], images: int, fidelity: float) -> dict:
        return {
            "neuron": name,
            "fine_classes": classes,
            "images": images,
            "fidelity": fidelity,
            "transferability": 1.0,
            "diversity": len(classes),
            "classes_shown": classes,
            "activation_ratio": [1.5] * images,
            "plausibility": fidelity,
            "plausible": 1.0,
            "kid": 0.1,
            "path_leaves": 0.0,
            "path_layers": ["conv", "fc"],
            "path_profile": [fidelity, 0.0],
        }

    summary = _summarize(
        [
            unit("a", ["x", "y"], 10, 0.8),
            unit("b", ["x", "y", "z"], 30, 0.4),
            unit("c", ["x"], 5, 0.0),
        ]
    )
    assert summary["multi_facet_units"] == ["a", "b"]
    assert summary["fidelity"] == pytest.approx((8 + 12) / 40)  # pooled over images; c left out
    assert summary["activation_ratio_median"] == 1.5
    assert summary["all_classes_shown"] == {"a": True, "b": True, "c": True}
    assert summary["plausibility"] == pytest.approx(0.5) and summary["kid"] == pytest.approx(0.1)
    assert summary["path_profile"] == pytest.approx([0.5, 0.0])  # weighted by images
    assert "0.500" in format_summary({"mfv": summary})


@pytest.fixture(scope="module")
def scored(small_run: Path, small_run_network: Network, small_oracle, coarse_fashion: FacetDataset,
           tmp_path_factory: pytest.TempPathFactory) -> dict:  # fmt: skip
    """The small run's tops unit by mfv, the two references and noise images, scored."""
    folder = tmp_path_factory.mktemp("scored")
    dirs = {}
    for name in ("mfv", "mean_image", "nearest_real"):
        synthesize(small_run_network, small_run, folder / name, names=["tops"], method=name)
        dirs[name] = [folder / name / "tops"]
    real = SynthesisRecord.read(folder / "nearest_real" / "tops")
    noise = np.random.default_rng(0).random(real.images.shape).astype(np.float32)
    (folder / "noise").mkdir()
    SynthesisRecord(**{**real.__dict__, "method": "noise", "images": noise}).write(
        folder / "noise" / "tops"
    )
    dirs["noise"] = [folder / "noise" / "tops"]
    oracle = small_oracle[0] / "o.pt"
    return evaluate(oracle, small_run_network, [small_run / "facets" / "tops.h5"], dirs,
                    coarse_fashion, folder / "m.csv", folder / "m.json")  # fmt: skip


def unit_of(report: dict, name: str) -> dict:
    return next(u for u in report["units"] if u["method"] == name)


def test_references_are_scored_like_every_method(scored: dict, small_run: Path) -> None:
    assert list(scored["summary"]) == ["mfv", "mean_image", "nearest_real", "noise"]
    facets = FacetRecord.read(small_run / "facets" / "tops.h5")
    nearest = unit_of(scored, "nearest_real")
    # the nearest real image is a real image of its facet: its activation ratio is at most 1
    assert all(r <= 1.0 + 1e-6 for r in nearest["activation_ratio"])
    assert len(nearest["predicted"]) == facets.facet_count
    for name in scored["summary"]:
        row = scored["summary"][name]
        assert {"plausibility", "plausible", "kid", "path_leaves", "path_profile"} <= set(row)


def test_a_real_image_is_plausible_and_on_the_path_noise_is_neither(scored: dict) -> None:
    """Constructed inputs: the facet's own real images score inside the real images' range and
    stay on the processing path; noise images score lower and leave it."""
    real, noise = unit_of(scored, "nearest_real"), unit_of(scored, "noise")
    assert real["plausible"] == 1.0 and real["path_leaves"] == 0.0
    assert noise["plausible"] == 0.0 and noise["path_leaves"] == 1.0
    assert noise["plausibility"] < real["plausibility"]
    assert noise["kid"] > real["kid"]
    assert max(noise["path_profile"]) < min(real["path_profile"])


def test_chain_scores_measure_how_a_chain_moves(small_oracle) -> None:
    """A chain that stands still scores distance 0 and no class change; one that alternates
    between two images the oracle tells apart changes class at every step, at their distance."""
    from facetviz.measure.oracle import classify, load_oracle
    from facetviz.measure.synthesis import chain_scores

    oracle, _names = load_oracle(small_oracle[0] / "o.pt")
    candidates = np.random.default_rng(0).random((40, 1, 28, 28)).astype(np.float32)
    candidates[20:] = 0.0
    predicted = classify(oracle, torch.from_numpy(candidates)).argmax(1).numpy()
    first, second = next(
        (i, j) for i in range(40) for j in range(40) if predicted[i] != predicted[j]
    )
    still = np.repeat(candidates[first][None, None], 5, axis=0)  # [S=5, k=1, C, H, W]
    assert chain_scores(still, oracle) == {"chain_distance": 0.0, "chain_class_changes": 0.0}
    moving = np.stack([candidates[first if s % 2 == 0 else second][None] for s in range(5)])
    scores = chain_scores(moving, oracle)
    assert scores["chain_class_changes"] == 4.0
    # 6 of the 10 pairs differ, each by the images' mean absolute difference
    gap = float(np.abs(candidates[first] - candidates[second]).mean())
    assert scores["chain_distance"] == pytest.approx(gap * 6 / 10, rel=1e-4)
    assert chain_scores(moving[:1], oracle)["chain_distance"] is None  # no chain: not a sampler
