"""Cosine similarity to a set, leave-one-out scores and their spread, against brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facetviz.measure.similarity import (
    MARGIN,
    cosine_matrix,
    leave_one_out,
    mean_of_nearest,
    similarity_to_set,
    spread,
)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_cosine_matrix_matches_torch_and_flattens_and_zero_rows_score_zero(rng):
    a, b = rng.normal(size=(4, 2, 3)), rng.normal(size=(5, 6))
    expected = torch.nn.functional.cosine_similarity(
        torch.tensor(a).flatten(1)[:, None], torch.tensor(b)[None], dim=2
    )
    assert np.allclose(cosine_matrix(torch.tensor(a), b), expected.numpy())
    with_zero = np.vstack([np.zeros(6), b])
    assert np.array_equal(cosine_matrix(with_zero, b)[0], np.zeros(5))


def test_mean_of_nearest_takes_the_largest_and_skips_nan(rng):
    similarities = rng.uniform(-1, 1, size=(3, 7))
    for k in (1, 3, 7):
        brute = [np.mean(sorted(row, reverse=True)[:k]) for row in similarities]
        assert np.allclose(mean_of_nearest(similarities, k), brute)
    assert np.allclose(mean_of_nearest(similarities, None), similarities.mean(1))
    assert np.allclose(mean_of_nearest(similarities, 50), similarities.mean(1))
    similarities[0, :6] = np.nan  # only one entry left in the first row
    assert mean_of_nearest(similarities, 3)[0] == pytest.approx(similarities[0, 6])
    similarities[0, 6] = np.nan
    with pytest.raises(ValueError, match="at least one real image"):
        mean_of_nearest(similarities, 3)
    with pytest.raises(ValueError, match="at least 1"):
        mean_of_nearest(similarities[1:], 0)


def test_leave_one_out_compares_each_row_with_the_others_only(rng):
    reference = rng.normal(size=(6, 4))
    for nearest in (2, None):
        brute = [
            similarity_to_set(reference[i : i + 1], np.delete(reference, i, axis=0), nearest)[0]
            for i in range(len(reference))
        ]
        assert np.allclose(leave_one_out(reference, nearest), brute)
    # held in, each row would find itself at similarity 1
    assert np.allclose(similarity_to_set(reference, reference, 1), 1.0)
    with pytest.raises(ValueError, match="at least 2"):
        leave_one_out(reference[:1])


def test_spread_percentiles_and_threshold_flag_few_real_scores(rng):
    scores = rng.normal(0.9, 0.01, size=2000)
    result = spread(scores)
    assert result.n == 2000
    assert result.low < result.median < result.high
    assert np.mean(scores < result.low) == pytest.approx(0.05, abs=0.005)
    assert np.mean(scores > result.high) == pytest.approx(0.05, abs=0.005)
    assert result.threshold == pytest.approx(result.low - MARGIN * (result.median - result.low))
    # far below the 5th percentile: normal scores almost never fall below it
    assert result.below(scores).mean() < 0.002
    assert result.below([result.threshold - 1e-9, result.threshold]).tolist() == [True, False]
    assert set(result.as_dict()) == {"low", "median", "high", "threshold", "n"}
    with pytest.raises(ValueError, match="finite"):
        spread([0.5, np.nan])
