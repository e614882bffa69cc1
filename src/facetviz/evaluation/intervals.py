"""Confidence over seeds: a claim is a mean with a 95 % interval, or a share of seeds
(docs/design.md §6).

A number from one synthesis seed (or one training seed) may be luck. `summarize` turns one value
per seed into mean, sample standard deviation, a percentile-bootstrap interval of the mean, and
the range the seeds' own values span (where a single run lands: the interval of the mean
narrows with more seeds, this range does not; with n seeds a new run falls inside it with
probability (n - 1) / (n + 1));
`share` turns a yes/no per seed ("footwear shows all 3 fine classes") into the share of seeds
where it holds. Both are deterministic (a fixed bootstrap seed), so the same values give the same
interval on every machine, and JSON-friendly (`as_dict`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

RESAMPLES = 10_000
CONFIDENCE = 0.95
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class Summary:
    """Mean over n seeds, sample std (0 for one seed), a bootstrap interval of the mean
    low..high, and the smallest and largest of the seeds' values, run_low..run_high."""

    mean: float
    std: float
    low: float
    high: float
    n: int
    run_low: float | None = None
    run_high: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self, digits: int = 3) -> str:
        """E.g. '0.733 [0.700, 0.767]'."""
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"

    def __str__(self) -> str:
        return self.format()


@dataclass(frozen=True)
class Share:
    """A unit-level claim over seeds: it holds in `holds` of `n` seeds."""

    share: float
    holds: int
    n: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self, digits: int = 2) -> str:
        """E.g. '4 of 5 seeds (0.80)'."""
        seeds = "seed" if self.n == 1 else "seeds"
        return f"{self.holds} of {self.n} {seeds} ({self.share:.{digits}f})"

    def __str__(self) -> str:
        return self.format()


def _finite_values(values: Any) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size == 0:
        raise ValueError("no values to summarize: one per seed is needed")
    if not np.isfinite(array).all():
        raise ValueError(f"values must be finite (drop seeds without a value first): {array}")
    return array


def bootstrap_interval(
    values: np.ndarray,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """The percentile-bootstrap interval of the mean of `values` (resampled with replacement)."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(low), float(high)


def summarize(
    values: Any,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Summary:
    """Mean, sample std and the bootstrap interval of the mean of one value per seed.

    One seed gives std 0 and the point as its interval: no spread measured, not no spread. Seeds
    that agree give zero width. Mean and bounds are clipped to the values' min..max, where they
    lie mathematically, so float rounding never puts the mean of equal values outside them.
    """
    array = _finite_values(values)
    smallest, largest = float(array.min()), float(array.max())
    if smallest == largest:
        return Summary(smallest, 0.0, smallest, largest, array.size, smallest, largest)
    low, high = bootstrap_interval(array, confidence, resamples, seed)

    def clip(value: float) -> float:
        return float(min(max(value, smallest), largest))

    return Summary(
        mean=clip(float(array.mean())),
        std=float(array.std(ddof=1)),
        low=clip(low),
        high=clip(high),
        n=int(array.size),
        run_low=smallest,
        run_high=largest,
    )


def share(holds: Any) -> Share:
    """The share of seeds where a claim holds, from one boolean (or 0/1) per seed."""
    array = np.asarray(holds).ravel()
    if array.size == 0:
        raise ValueError("no seeds: one boolean per seed is needed")
    if array.dtype != bool and not np.isin(array, (0, 1)).all():
        raise ValueError(f"share takes booleans (or 0/1) per seed, got {array}")
    count = int(array.astype(bool).sum())
    return Share(share=count / array.size, holds=count, n=int(array.size))
