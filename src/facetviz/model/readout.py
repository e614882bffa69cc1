"""A neuron that is not one unit: a direction, a weighted group of units, a probe or an SAE
latent, each read as a function of its layer's unit vector (docs/design.md §12).

The unit vector r is what the neuron's spatial rule reads (`unit_values`: a conv layer's
channels at the centre, or their max or mean; an fc layer as it is), the same r a unit neuron
indexes. Every kind of readout is then one affine map of r,

    value = w · r + b

with w a unit vector for a direction or a probe, the given weights for a group, and the
encoder row (folded with the SAE's input normalization) for a latent. With
`direction_cosine_power` p > 0 the value is Lucid's cosine-weighted form,

    value = (w · r) · max(0.1, cos(r, w))^p + b,

which rewards pointing along w, not only far along it. Its cosine is the one between the read
vector r and w: Lucid's per-position cosine at the one position `spatial: center` reads (and on
an fc layer, which has one position), the cosine of the channels' mean or max for `mean` or
`max`; Xplique's `dot_cossim` takes the cosine over the whole flattened map instead, a third
quantity. Activations are stored per read vector, so the value ranks images and is maximized by
the same formula.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

# Lucid's floor on the cosine: an image pointing away from w keeps a small gradient towards it.
COSINE_FLOOR = 0.1


@dataclass(frozen=True)
class Readout:
    """`weights` [units], `bias` and `cosine_power` of one neuron; `label` says what it is."""

    weights: np.ndarray
    bias: float = 0.0
    cosine_power: float = 0.0
    label: str = ""

    def __call__(self, values: torch.Tensor) -> torch.Tensor:
        """[N] the neuron's value from [N, units] read unit vectors."""
        return project(values, torch.as_tensor(self.weights, device=values.device), self)

    def of_array(self, values: np.ndarray) -> np.ndarray:
        """[N] the neuron's value from [N, units] stored activations (float32)."""
        with torch.no_grad():
            return self(torch.from_numpy(np.asarray(values, dtype=np.float32))).numpy()

    def describe(self) -> dict[str, Any]:
        """What the facet file records beside the weights."""
        return {"bias": self.bias, "cosine_power": self.cosine_power, "label": self.label}


def project(values: torch.Tensor, weights: torch.Tensor, readout: Readout) -> torch.Tensor:
    """[N] = readout's formula on `values` [N, units] with `weights` [units] or [N, units]."""
    weights = weights.to(values.dtype)
    dots = (values * weights).sum(-1)
    if readout.cosine_power:
        cosine = torch.nn.functional.cosine_similarity(values, weights.expand_as(values), dim=-1)
        dots = dots * cosine.clamp(min=COSINE_FLOOR) ** readout.cosine_power
    return dots + readout.bias


def group_weights(group: list[tuple[int, float]], units: int) -> np.ndarray:
    """[units] the weights of a group of (unit, weight) pairs."""
    weights = np.zeros(units, dtype=np.float32)
    for unit, weight in group:
        weights[unit] += weight
    return weights


def unit_direction(vector: np.ndarray) -> np.ndarray:
    """`vector` scaled to unit length, as float32 (the caller has refused a zero vector)."""
    vector = np.asarray(vector, dtype=np.float64).ravel()
    return (vector / np.linalg.norm(vector)).astype(np.float32)
