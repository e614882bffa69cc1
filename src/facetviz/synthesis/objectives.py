"""What is maximized: one unit per image; images of one batch may target different layers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from facetviz.models import Network, capture, unit_values


@dataclass(frozen=True)
class Unit:
    layer: str
    unit: int
    spatial: str = "center"


def batch_objective(
    network: Network, targets: Sequence[Unit]
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function of pixels [B, C, H, W] -> [B]: image i's activation of targets[i]."""
    layers = sorted({t.layer for t in targets})

    def objective(pixels: torch.Tensor) -> torch.Tensor:
        if len(targets) != len(pixels):
            raise ValueError(f"{len(pixels)} images for {len(targets)} targets")
        with capture(network.module, layers) as outputs:
            network(pixels)
        values = [
            unit_values(outputs[t.layer][i : i + 1], t.spatial)[0, t.unit]
            for i, t in enumerate(targets)
        ]
        return torch.stack(values)

    return objective
