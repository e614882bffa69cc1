"""Plausibility of synthesized images in the oracle's features (MACO, Fel et al. 2023;
docs/design.md §6).

Two views, both in the oracle's penultimate features (the input of its final Linear), which the
visualized network never saw, so that an image cannot score well by exploiting that network:

- per image, `facet_similarity`: how close it is to the real images of its own facet (mean
  cosine similarity to the `nearest` most similar of them), read against `facet_range`, the same
  score of each real image against the other real images of the facet;
- per set, `kid`: the Kernel Inception Distance between a method's images and real images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from facetviz.measure.oracle import OracleNet, apply_to_pixels
from facetviz.measure.similarity import Spread, as_rows, leave_one_out, similarity_to_set, spread

# MACO compares a visualization with the real images nearest it; 10 is enough to smooth over
# single images and well below the size of a facet (facets.min_size).
DEFAULT_NEAREST = 10


def oracle_features(module: OracleNet, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """The oracle's penultimate features [B, d] of images [B, C, H, W] with pixels in [0, 1].

    Prepared exactly as `facetviz.measure.oracle.classify` prepares them (normalized, resized to the
    oracle's input); on the CPU.
    """
    pool_and_flatten = module.head[:-1]

    def features(x: torch.Tensor) -> torch.Tensor:
        return pool_and_flatten(module.blocks(module.stem(x)))

    return apply_to_pixels(module, images, features, module.head[-1].in_features, batch_size)


def facet_similarity(
    image_features: Any, real_features: Sequence[Any], nearest: int = DEFAULT_NEAREST
) -> np.ndarray:
    """Per synthesized image [B], its mean cosine similarity to the `nearest` most similar real
    images of its own facet (`real_features[i]` [n_i, d]: the real images of image i's facet)."""
    rows = as_rows(image_features)
    if len(rows) != len(real_features):
        raise ValueError(f"{len(rows)} images but real features for {len(real_features)} facets")
    return np.array(
        [
            similarity_to_set(row[None], real, nearest)[0]
            for row, real in zip(rows, real_features, strict=True)
        ]
    )


def facet_range(real_features: Any, nearest: int = DEFAULT_NEAREST) -> Spread:
    """The spread of the same score for each real image [n >= 2, d] of a facet against the other
    real images of the facet (leave-one-out): a method's image is as plausible as the facet's own
    images where its score lies in `low`..`high` (5th to 95th percentile)."""
    return spread(leave_one_out(real_features, nearest))


def _mmd2_unbiased(kxx: np.ndarray, kyy: np.ndarray, kxy: np.ndarray) -> float:
    """The unbiased MMD² from the kernel matrices: within-set means leave out the diagonal."""
    n, m = len(kxx), len(kyy)
    within_x = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
    within_y = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within_x + within_y - 2.0 * kxy.mean())


def _polynomial_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]

    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a @ b.T / d + 1.0) ** 3

    return _mmd2_unbiased(kernel(x, x), kernel(y, y), kernel(x, y))


def kid(x: Any, y: Any, subsets: int = 1, subset_size: int | None = None, seed: int = 0) -> float:
    """Kernel Inception Distance of feature sets x [n, d] and y [m, d] (n, m >= 2).

    The unbiased estimator of MMD² with the cubic polynomial kernel k(a, b) = (a·b/d + 1)³
    (Bińkowski et al. 2018). Unbiased means its expectation is 0 when x and y come from the same
    distribution, so on small sets it is often slightly negative: read values near 0 (either
    sign) as "no difference measured", and compare methods on sets of the same sizes.

    With `subset_size`, the mean over `subsets` estimates on random subsets of that size (drawn
    without replacement, numpy's default_rng(seed)), as Bińkowski et al. do on large sets to
    bound the cost; without it, one estimate on all of x and y.
    """
    x, y = as_rows(x), as_rows(y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature sizes differ: {x.shape[1]} and {y.shape[1]}")
    if min(len(x), len(y)) < 2:
        raise ValueError(f"KID needs at least 2 images per set, got {len(x)} and {len(y)}")
    if subset_size is None:
        return _polynomial_mmd2(x, y)
    if subset_size < 2 or subsets < 1:
        raise ValueError(f"need subset_size >= 2 and subsets >= 1, got {subset_size}, {subsets}")
    rng = np.random.default_rng(seed)
    estimates = [
        _polynomial_mmd2(
            x[rng.choice(len(x), min(subset_size, len(x)), replace=False)],
            y[rng.choice(len(y), min(subset_size, len(y)), replace=False)],
        )
        for _ in range(subsets)
    ]
    return float(np.mean(estimates))
