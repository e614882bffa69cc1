"""Is a visualization processed like its facet's real images? (Geirhos et al. 2023;
docs/design.md §6)

A synthesized image can drive a unit as hard as its real images do while the network gets there
another way: Geirhos et al. ("Don't trust your eyes") show that visualizations can follow a
processing path of their own that natural images never take. So, for every layer along the
visualized network's path (each Conv2d and Linear output, in module order), we compare the
image's activations with those of its facet's real images, and read the score against the real
images' own scores:

- score of an image at a layer: the mean cosine similarity of its flattened activations to those
  of each of the facet's real images;
- the real images' spread at a layer: the same score of each real image against the others
  (leave-one-out), as `facetviz.measure.similarity.Spread` (5th-95th percentile, and a threshold a
  margin below it);
- `leaves_path`: an image whose score is below the threshold at one layer or more.

Why the mean over all real images (plausibility uses the nearest few): a facet is one cluster, so
all its images are fair company, and the mean needs no matrix of pairwise similarities. The mean
cosine similarity to n unit vectors is the dot product with their sum, and each real image's
leave-one-out score is (its dot product with the sum - 1) / (n - 1). So each layer keeps one
vector, whatever the number of real images: early layers of ImageNet networks have ~10⁵ values
per image, and a facet's thousand images would take gigabytes per layer as a matrix.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from facetviz.measure.similarity import Spread, spread
from facetviz.model.networks import Network, capture

PATH_TYPES = (nn.Conv2d, nn.Linear)


def path_layers(module: nn.Module) -> list[str]:
    """Dotted names of the module's Conv2d and Linear layers, in module (registration) order;
    not the projection inside an `nn.MultiheadAttention` (a ViT's blocks), which the attention
    uses by its weights without calling it, so no hook on it would ever see an output."""
    attention = [
        f"{name}." for name, m in module.named_modules() if isinstance(m, nn.MultiheadAttention)
    ]
    return [
        name
        for name, layer in module.named_modules()
        if isinstance(layer, PATH_TYPES) and not name.startswith(tuple(attention))
    ]


@dataclass(frozen=True)
class PathResult:
    """One facet's processing path: per layer, each image's score and the real images' spread."""

    layers: tuple[str, ...]
    scores: np.ndarray  # [B, L]: each image's score at each layer
    real_scores: np.ndarray  # [n, L]: each real image's leave-one-out score
    real: tuple[Spread, ...]  # [L]: the spread of real_scores per layer

    @property
    def below(self) -> np.ndarray:
        """[B, L]: where an image's score lies below the real images' threshold."""
        thresholds = np.array([layer.threshold for layer in self.real])
        return self.scores < thresholds

    @property
    def leaves_path(self) -> np.ndarray:
        """[B]: images that fall below the real images' threshold at one layer or more."""
        return self.below.any(axis=1)

    def first_below(self) -> list[str | None]:
        """Per image, the first layer where it leaves the path (None where it never does)."""
        return [self.layers[int(row.argmax())] if row.any() else None for row in self.below]

    def as_dict(self) -> dict[str, Any]:
        return {
            "layers": list(self.layers),
            "scores": self.scores.tolist(),
            "real": [layer.as_dict() for layer in self.real],
            "leaves_path": self.leaves_path.tolist(),
            "first_below": self.first_below(),
        }


def _unit_activations(
    network: Network, images: torch.Tensor, layers: Sequence[str], batch_size: int
) -> Iterator[list[torch.Tensor]]:
    """Per batch, each layer's output flattened to [b, values] and scaled to unit length
    (float64, where the network runs)."""
    device = next(network.module.parameters(), torch.empty(0)).device
    for batch in images.split(batch_size):
        with capture(network.module, layers) as outputs, torch.no_grad():
            network(batch.to(device=device, dtype=torch.float32))
            units = [nn.functional.normalize(outputs[n].flatten(1).double(), dim=1) for n in layers]
        yield units  # outside the block: no hooks or no_grad leak into the caller's code


def _layer_sums(batches: Iterator[list[torch.Tensor]]) -> list[torch.Tensor]:
    """Per layer, the sum of all images' unit activations."""
    sums: list[torch.Tensor] = []
    for units in batches:
        batch_sums = [u.sum(0) for u in units]
        sums = [s + b for s, b in zip(sums, batch_sums, strict=True)] if sums else batch_sums
    return sums


def _dot_with(
    sums: list[torch.Tensor], batches: Iterator[list[torch.Tensor]]
) -> tuple[np.ndarray, np.ndarray]:
    """[N, L] dot products of every image's unit activations with the layers' `sums`, and [N, L]
    their squared norms (1, or 0 for an all-zero activation)."""
    dots, norms = [], []
    for units in batches:
        dots.append(torch.stack([u @ s for u, s in zip(units, sums, strict=True)], 1).cpu())
        norms.append(torch.stack([(u * u).sum(1) for u in units], 1).cpu())
    return torch.cat(dots).numpy(), torch.cat(norms).numpy()


def processing_path(
    network: Network,
    images: torch.Tensor,
    real_images: torch.Tensor,
    layers: Sequence[str] | None = None,
    batch_size: int = 256,
) -> PathResult:
    """The processing path of images [B, C, H, W] of one facet against the facet's real images
    [n >= 2, C, H, W] (pixels in [0, 1]) along `layers` (default: `path_layers`).

    The network must be in eval mode (as `load_network` gives it): dropout would make the path
    random.
    """
    if network.module.training:
        raise ValueError("processing_path needs the network in eval mode (dropout is random)")
    n = len(real_images)
    if n < 2:
        raise ValueError(f"the real images' spread needs at least 2 real images, got {n}")
    layers = tuple(path_layers(network.module) if layers is None else layers)
    sums = _layer_sums(_unit_activations(network, real_images, layers, batch_size))
    real_dots, real_norms = _dot_with(
        sums, _unit_activations(network, real_images, layers, batch_size)
    )
    image_dots, _ = _dot_with(sums, _unit_activations(network, images, layers, batch_size))
    real_scores = (real_dots - real_norms) / (n - 1)  # each real image leaves itself out
    return PathResult(
        layers=layers,
        scores=image_dots / n,
        real_scores=real_scores,
        real=tuple(spread(real_scores[:, j]) for j in range(len(layers))),
    )
