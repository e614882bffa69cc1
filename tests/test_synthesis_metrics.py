"""Scores of synthesized images against an oracle's predictions, on hand-made facets."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import facet_record

from facetviz.errors import FacetvizError
from facetviz.synthesis_metrics import _summarize, format_summary, score_unit

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
    assert "0.500" in format_summary({"mfv": summary})
