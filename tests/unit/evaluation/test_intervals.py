"""Confidence over seeds: bootstrap intervals of the mean, and shares of seeds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facetviz.evaluation.intervals import Share, Summary, share, summarize


def width(summary: Summary) -> float:
    return summary.high - summary.low


def test_identical_seeds_give_zero_width_and_the_value_itself():
    # 0.1 has no exact binary form: a plain mean of three of them is off by one ulp
    summary = summarize([0.1, 0.1, 0.1])
    assert summary == Summary(mean=0.1, std=0.0, low=0.1, high=0.1, n=3, run_low=0.1, run_high=0.1)
    assert width(summary) == 0


def test_one_seed_is_a_point_without_spread():
    assert summarize([0.42]) == Summary(0.42, 0.0, 0.42, 0.42, 1, run_low=0.42, run_high=0.42)


def test_interval_contains_the_mean_and_narrows_with_more_seeds():
    rng = np.random.default_rng(1)
    widths = []
    for seeds in (5, 20, 80):
        values = rng.normal(0.7, 0.05, size=seeds)
        summary = summarize(values)
        assert summary.n == seeds
        assert summary.mean == pytest.approx(values.mean())
        assert summary.std == pytest.approx(values.std(ddof=1))
        assert summary.low < summary.mean < summary.high
        # close to the normal-theory interval of the mean (the bootstrap's is a bit narrower)
        normal_width = 2 * 1.96 * summary.std / np.sqrt(seeds)
        assert 0.6 * normal_width < width(summary) < 1.2 * normal_width
        widths.append(width(summary))
        # where single seeds fall: their whole range, wider than the mean's interval
        assert summary.run_low < summary.low and summary.high < summary.run_high
        assert (summary.run_low, summary.run_high) == (values.min(), values.max())
    assert widths[0] > widths[1] > widths[2]


def test_deterministic_and_the_level_matters():
    values = np.random.default_rng(2).normal(0.7, 0.05, size=8)
    assert summarize(values) == summarize(values)
    assert summarize(values, seed=1) != summarize(values)  # the bootstrap seed is used
    assert width(summarize(values, confidence=0.5)) < width(summarize(values))
    # bounds never leave the values' range, even with two seeds
    two = summarize([0.2, 0.4])
    assert 0.2 <= two.low < two.high <= 0.4


def test_summaries_are_json_friendly_and_formatted():
    summary = summarize(np.array([0.7, 0.733, 0.767], dtype=np.float32))
    record = json.loads(json.dumps(summary.as_dict()))
    assert record == pytest.approx(summary.as_dict())
    assert isinstance(record["n"], int)
    assert Summary(0.7333, 0.01, 0.7, 0.7667, 3).format() == "0.733 [0.700, 0.767]"
    assert str(summary) == summary.format(3)
    with pytest.raises(ValueError, match="finite"):
        summarize([0.5, float("nan")])
    with pytest.raises(ValueError, match="one per seed"):
        summarize([])


def test_share_counts_the_seeds_where_a_claim_holds():
    assert share([True, False, True, True]) == Share(share=0.75, holds=3, n=4)
    assert share(np.array([1, 0, 0])) == Share(share=1 / 3, holds=1, n=3)
    assert share([False]) == Share(share=0.0, holds=0, n=1)
    assert json.loads(json.dumps(share([True, True]).as_dict())) == {
        "share": 1.0,
        "holds": 2,
        "n": 2,
    }
    assert str(share([True, False, True, True, True])) == "4 of 5 seeds (0.80)"
    with pytest.raises(ValueError, match="booleans"):
        share([0.5, 1.0])
    with pytest.raises(ValueError, match="no seeds"):
        share([])
