"""How close synthesized images come to their facets' real images (docs/design.md §6).

Per class unit, the real images of each facet (its members) are loaded once; every method's
images are then read against them:
- plausibility (MACO): each image's cosine similarity, in the oracle's penultimate features, to
  the nearest real images of its facet, and whether it lies within the real images' own spread;
- KID: a set distance between the unit's synthesized images and all its real images, in the same
  features (unbiased at small sample sizes);
- processing path (Geirhos et al. 2023): at each conv/fc layer of the visualized network, the
  image's similarity to the facet's real images against the real images' spread among
  themselves, normalized so 0 is the real images' median and -1 their 5th percentile; a flag
  where the image leaves the real range at some layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from facetviz.data.datasets import FacetDataset
from facetviz.facets.record import FacetRecord
from facetviz.measure.oracle import OracleNet
from facetviz.measure.plausibility import facet_range, facet_similarity, kid, oracle_features
from facetviz.measure.processing_path import PathResult, path_layers, processing_path
from facetviz.measure.similarity import Spread
from facetviz.model.networks import Network

# A facet's real images read for the processing path: enough for its spread at every layer,
# few enough that an ImageNet facet of ~130 images (or a hidden unit's larger ones) stays cheap.
PATH_IMAGES = 200


@dataclass(frozen=True)
class FacetReals:
    """One unit's real images, per facet, with their oracle features and spreads."""

    pixels: list[torch.Tensor]  # per facet [n_f, C, H, W]
    features: list[np.ndarray]  # per facet [n_f, d]
    spreads: list[Spread]  # per facet: plausibility of each real image against the others

    @property
    def all_features(self) -> np.ndarray:
        return np.concatenate(self.features)

    @classmethod
    def load(cls, facets: FacetRecord, dataset: FacetDataset, oracle: OracleNet) -> FacetReals:
        pixels = [
            dataset.pixels(dataset.positions_of(facets.members(f)))
            for f in range(facets.facet_count)
        ]
        features = [oracle_features(oracle, images).numpy() for images in pixels]
        return cls(pixels, features, [facet_range(f) for f in features])


def plausibility(images: np.ndarray, reals: FacetReals, oracle: OracleNet) -> dict[str, Any]:
    """Per image its similarity to its facet's real images; per unit the share inside the real
    images' spread and the KID to all the unit's real images."""
    features = oracle_features(oracle, torch.from_numpy(images)).numpy()
    scores = facet_similarity(features, reals.features[: len(images)])
    inside = [bool(s >= spread.low) for s, spread in zip(scores, reals.spreads, strict=False)]
    return {
        "plausibility_scores": scores.tolist(),
        "plausibility": float(scores.mean()),
        "plausible": float(np.mean(inside)),
        "kid": kid(features, reals.all_features),
    }


def facet_paths(
    network: Network, reals: FacetReals, images: Mapping[str, np.ndarray]
) -> list[PathResult]:
    """Per facet, the processing path of every method's image of it (in `images` order)."""
    layers = path_layers(network.module)
    paths = []
    for facet, real in enumerate(reals.pixels):
        batch = torch.from_numpy(np.stack([method[facet] for method in images.values()]))
        paths.append(processing_path(network, batch, real[:PATH_IMAGES], layers))
    return paths


def path_scores(paths: Sequence[PathResult], position: int) -> dict[str, Any]:
    """The processing path of one method's images (at `position` in each facet's batch): the
    share that leaves the real range, and the mean normalized score per layer."""
    normalized = np.stack([normalized_path(path)[position] for path in paths])
    leaves = [bool(path.leaves_path[position]) for path in paths]
    return {
        "path_layers": list(paths[0].layers),
        "path_profile": normalized.mean(0).tolist(),
        "path_leaves": float(np.mean(leaves)),
        "path_first_below": [path.first_below()[position] for path in paths],
    }


def normalized_path(path: PathResult) -> np.ndarray:
    """[B, L]: (score - real median) / (real median - real 5th percentile) at each layer."""
    median = np.array([layer.median for layer in path.real])
    gap = np.array([max(layer.median - layer.low, 1e-12) for layer in path.real])
    return (path.scores - median) / gap
