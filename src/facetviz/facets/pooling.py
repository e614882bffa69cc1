"""Facets that ignore position (`facets.pool`): a conv facet layer's codes pooled over space
before PCA, so that facets separate kinds of object rather than where an object sits.

A code is the facet layer's [C, H, W] map, flattened (as the activations file stores it). Pools:
  none     the code as it is (the paper): C*H*W numbers
  mean     per channel, the mean over the H*W positions: C numbers
  max      per channel, the largest value over the H*W positions: C numbers
  pyramid  a two-level spatial pyramid of means: per channel the mean over the whole map, then
           per channel the mean over each cell of a 2x2 grid, cells in row-major order (top
           left, top right, bottom left, bottom right): 5*C numbers, laid out
           [whole map | cell (0,0) | cell (0,1) | cell (1,0) | cell (1,1)], C each. The cells are
           torch's adaptive_avg_pool2d(map, 2)'s: rows floor(i*H/2) to ceil((i+1)*H/2), columns
           likewise, so on an odd map (conv3's 7x7) the middle row and column belong to both
           halves and the pyramid stays symmetric under flips.
Only what PCA, t-SNE and k-means see changes: the facet record's code centroids stay the mean
of the members' raw codes, in the layer itself, where synthesis reads them (mfv's facet-keeping
term compares an image's raw code with its facet's).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from facetviz.core.errors import FacetvizError

POOLS = ("none", "mean", "max", "pyramid")
PYRAMID_GRID = 2  # the pyramid's finer level: a 2x2 grid of cells


def pool_codes(codes: np.ndarray, code_shape: Sequence[int] | None, pool: str) -> np.ndarray:
    """[n, D] codes of a [C, H, W] layer as `pool` reads them; `none` returns `codes` itself."""
    if pool not in POOLS:
        raise FacetvizError(f"facets.pool: unknown {pool!r}; use one of {', '.join(POOLS)}")
    if pool == "none":
        return codes
    maps = code_maps(codes, code_shape, pool)
    if pool == "mean":
        return maps.mean(axis=(2, 3))
    if pool == "max":
        return maps.max(axis=(2, 3))
    cells = [maps[:, :, rows, cols].mean(axis=(2, 3)) for rows, cols in pyramid_cells(maps.shape)]
    return np.concatenate([maps.mean(axis=(2, 3)), *cells], axis=1)


def code_maps(codes: np.ndarray, code_shape: Sequence[int] | None, pool: str) -> np.ndarray:
    """[n, C, H, W]: the flat codes as the maps they are, or an error naming the fix. The
    workflow refuses a pool on a layer without positions at parse time (facetviz.checks); this
    catches a stage run by hand, or an activations file from before the shape was recorded."""
    if code_shape is None:
        raise FacetvizError(
            f"facets.pool: {pool} needs the facet layer's [C, H, W] shape, which this activations "
            "file does not record (it predates facets.pool): delete it and rerun the activations "
            "stage, or set facets.pool: none"
        )
    shape = tuple(int(size) for size in code_shape)
    if len(shape) != 3 or int(np.prod(shape)) != codes.shape[1]:
        raise FacetvizError(
            f"facets.pool: {pool} pools a conv map [C, H, W] over its positions, but the facet "
            f"layer's codes are {list(shape)} ({codes.shape[1]} numbers per image): set "
            "facets.pool: none, or a conv facets.layer"
        )
    return codes.reshape(len(codes), *shape)


def pyramid_cells(map_shape: Sequence[int]) -> list[tuple[slice, slice]]:
    """(rows, columns) of each cell of the pyramid's 2x2 grid on maps of `map_shape` (its last
    two sizes: H, W), in row-major order, as torch's adaptive average pooling cuts them."""
    height, width = map_shape[-2], map_shape[-1]
    rows, cols = _halves(height), _halves(width)
    return [(row, col) for row in rows for col in cols]


def _halves(size: int) -> list[slice]:
    grid = PYRAMID_GRID
    return [slice(i * size // grid, -(-(i + 1) * size // grid)) for i in range(grid)]
