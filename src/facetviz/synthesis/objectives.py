"""What is maximized: one objective per image, so a batch may mix units, layers and kinds.

An objective is a weighted sum of terms; a term is one unit read from one layer, either as its
activation (a class logit, a hidden unit at the centre of its map or its spatial mean/max) or as
its softmax probability over the layer's units (for class layers, as the paper's CBR octaves do).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from facetviz.errors import FacetvizError
from facetviz.models import Network, capture, unit_count, unit_values

KINDS = ("activation", "probability")


@dataclass(frozen=True)
class Unit:
    layer: str
    unit: int
    spatial: str = "center"
    kind: str = "activation"

    def as_kind(self, kind: str) -> Unit:
        return Unit(self.layer, self.unit, self.spatial, kind)


# One image's objective: (weight, unit) terms that are summed.
Objective = tuple[tuple[float, Unit], ...]


def single(unit: Unit) -> Objective:
    return ((1.0, unit),)


def _as_objective(target: Unit | Sequence[tuple[float, Unit]]) -> Objective:
    return single(target) if isinstance(target, Unit) else tuple(target)


def batch_objective(
    network: Network,
    targets: Sequence[Unit | Sequence[tuple[float, Unit]]],
    mixed_precision: bool = False,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function of pixels [B, C, H, W] -> [B]: image i's value of objective targets[i].

    Terms are grouped by (layer, spatial rule, kind), so a batch of many units costs one gather
    per group, not one indexing operation per image. A unit index outside its layer is an error
    that names the layer and its size (raised at the first call, when the size is known).
    """
    objectives = [_as_objective(target) for target in targets]
    if any(unit.kind not in KINDS for objective in objectives for _, unit in objective):
        raise FacetvizError(f"objective kind must be one of {', '.join(KINDS)}")
    groups: dict[tuple[str, str, str], tuple[list[int], list[int], list[float]]] = {}
    for image, objective in enumerate(objectives):
        for weight, unit in objective:
            rows, units, weights = groups.setdefault(
                (unit.layer, unit.spatial, unit.kind), ([], [], [])
            )
            rows.append(image)
            units.append(unit.unit)
            weights.append(weight)
    layers = sorted({layer for layer, _, _ in groups})
    checked: set[str] = set()

    def objective(pixels: torch.Tensor) -> torch.Tensor:
        if len(objectives) != len(pixels):
            raise ValueError(f"{len(pixels)} images for {len(objectives)} objectives")
        autocast = (
            torch.autocast(pixels.device.type, dtype=torch.float16)
            if mixed_precision and pixels.device.type == "cuda"
            else nullcontext()
        )
        with capture(network.module, layers) as outputs, autocast:
            network(pixels)
        total = torch.zeros(len(pixels), device=pixels.device, dtype=torch.float32)
        for (layer, spatial, kind), (rows, units, weights) in groups.items():
            if layer not in checked:
                _check_units(layer, outputs[layer], units)
                checked.add(layer)
            values = unit_values(outputs[layer].float(), spatial)
            if kind == "probability":
                values = values.softmax(dim=1)
            row_index = torch.tensor(rows, device=pixels.device)
            picked = values[row_index, torch.tensor(units, device=pixels.device)]
            weight = torch.tensor(weights, device=pixels.device)
            total = total.index_add(0, row_index, picked * weight)
        return total

    return objective


def _check_units(layer: str, output: torch.Tensor, units: list[int]) -> None:
    count = unit_count(output.shape[1:])
    bad = sorted({unit for unit in units if not 0 <= unit < count})
    if bad:
        raise FacetvizError(
            f"unit {bad[0]} is out of range for layer {layer!r}, which has {count} units "
            f"(0..{count - 1}): fix the neuron's `unit` in the config"
        )
