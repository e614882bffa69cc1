"""Cosine similarity of an image to a set of real images, and the spread of the real images'
own scores against their set: the yardstick the plausibility and processing-path scores share.

A score alone says little (cosine similarities of network features sit in a narrow band that
depends on the layer and the network); read against the same score of the real images of the
facet, each left out in turn, it says whether an image is as close to the facet as the facet's
own images are. Everything is computed in float64: the real images' scores can differ from
each other only in the fourth or fifth decimal (features after a ReLU and pooling).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

# The real images' range is their 5th to 95th percentile; an image is outside them below
# low - MARGIN * (median - low) (see `Spread`).
PERCENTILES = (5.0, 95.0)
MARGIN = 2.0


def as_rows(values: Any) -> np.ndarray:
    """A float64 array [n, d] from a tensor or array [n, ...] (anything after n is flattened)."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    array = np.asarray(values, dtype=np.float64)
    if array.ndim < 2:
        raise ValueError(f"expected rows [n, d], got shape {list(array.shape)}")
    return array.reshape(len(array), -1)


def unit_rows(values: Any) -> np.ndarray:
    """Rows scaled to unit length; an all-zero row stays zero (similarity 0 to everything)."""
    rows = as_rows(values)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


def cosine_matrix(a: Any, b: Any) -> np.ndarray:
    """Cosine similarities [n, m] of the rows of `a` [n, d] to the rows of `b` [m, d]."""
    return unit_rows(a) @ unit_rows(b).T


def mean_of_nearest(similarities: np.ndarray, nearest: int | None) -> np.ndarray:
    """Per row, the mean of its `nearest` largest entries (None or more than there are: all).

    NaN entries (used to leave an image out of its own row) are never among the nearest.
    """
    similarities = np.where(np.isnan(similarities), -np.inf, similarities)
    available = similarities.shape[1] - np.isinf(similarities).sum(axis=1)
    if available.min(initial=1) < 1:
        raise ValueError("every image needs at least one real image to compare with")
    k = similarities.shape[1] if nearest is None else int(nearest)
    if k < 1:
        raise ValueError(f"nearest must be at least 1, got {nearest}")
    top = -np.sort(-similarities, axis=1)[:, :k]
    counts = np.minimum(k, available)
    return np.where(np.isinf(top), 0.0, top).sum(axis=1) / counts


def similarity_to_set(images: Any, reference: Any, nearest: int | None = None) -> np.ndarray:
    """Per image [n], its mean cosine similarity to its `nearest` most similar reference rows."""
    return mean_of_nearest(cosine_matrix(images, reference), nearest)


def leave_one_out(reference: Any, nearest: int | None = None) -> np.ndarray:
    """Per reference row [n], the same score against the other rows (n must be at least 2).

    A held-in image would find itself at similarity 1; leaving it out makes its score what a new
    image of the same facet would get. (An outside image is compared with all n rows, a reference
    row with n - 1: for `nearest` well below n that difference is negligible.)
    """
    similarities = cosine_matrix(reference, reference)
    if len(similarities) < 2:
        raise ValueError("leave-one-out needs at least 2 real images")
    np.fill_diagonal(similarities, np.nan)
    return mean_of_nearest(similarities, nearest)


@dataclass(frozen=True)
class Spread:
    """Where the real images' leave-one-out scores lie: `low` to `high` (5th to 95th percentile),
    their `median`, and the `threshold` below which an image counts as outside them.

    Percentiles rather than min and max, because min and max follow the facet's single oddest
    image and widen with its size. The threshold lies `MARGIN` times the gap from `median` down
    to `low` below `low`: for normally distributed scores 4.9 standard deviations below the
    median. A score just under `low` (which 5 % of real images have) is no sign of anything,
    and the flag must stay rare for real images over all layers of a path. Measured on random
    EmbeddedCNNs (two seeds, 40 and 200 real images, 1,000 held-out images of the same kind):
    a margin of 1 flagged 1-2 % of the held-out real images at some layer of 5, a margin of 2
    at most 0.1 %, while noise images fall hundreds of gaps below `low` at the first layer.
    """

    low: float
    median: float
    high: float
    threshold: float
    n: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def below(self, scores: Any) -> np.ndarray:
        """Which scores lie below the threshold (boolean, the shape of `scores`)."""
        return np.asarray(scores, dtype=np.float64) < self.threshold


def spread(scores: Any, percentiles: tuple[float, float] = PERCENTILES) -> Spread:
    """The `Spread` of real images' scores [n] (at least one)."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if scores.size == 0 or not np.isfinite(scores).all():
        raise ValueError("the spread needs at least one score, all of them finite")
    low, median, high = np.percentile(scores, [percentiles[0], 50.0, percentiles[1]])
    return Spread(
        low=float(low),
        median=float(median),
        high=float(high),
        threshold=float(low - MARGIN * (median - low)),
        n=int(scores.size),
    )
