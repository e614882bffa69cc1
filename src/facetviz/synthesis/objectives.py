"""What is maximized: objectives as expressions over one forward pass, one value per image.

A term declares the layers it reads and maps their captured outputs to a value per image [B].
Terms compose with `+`, `-` and `*` (by a number or a [B] tensor), as Lucid's and Lucent's
objectives do, but per image, so one batch can mix units, layers and kinds:

    objective = units(targets) - 3.0 * scales * facet_distance("classifier.3", centroids)

`Forward` runs the network once under a capture of the union of the terms' layers and
evaluates the expression on what it captured.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from facetviz.core.errors import FacetvizError
from facetviz.model.networks import Network, capture, unit_count, unit_values
from facetviz.model.readout import Readout

KINDS = ("activation", "probability", "log_probability")
Outputs = Mapping[str, torch.Tensor]


class Objective:
    """An expression over captured layer outputs: `layers` it reads, [B] values when called."""

    def __init__(self, layers: Iterable[str], value: Callable[[Outputs], torch.Tensor]) -> None:
        self.layers = tuple(dict.fromkeys(layers))
        self._value = value

    def __call__(self, outputs: Outputs) -> torch.Tensor:
        return self._value(outputs)

    def __add__(self, other: Objective) -> Objective:
        return Objective((*self.layers, *other.layers), lambda out: self(out) + other(out))

    def __sub__(self, other: Objective) -> Objective:
        return Objective((*self.layers, *other.layers), lambda out: self(out) - other(out))

    def __mul__(self, weight: float | torch.Tensor) -> Objective:
        if isinstance(weight, Objective):
            raise TypeError("objectives multiply by a number or a [B] tensor, not each other")
        return Objective(self.layers, lambda out: self(out) * _on(weight, out, self.layers))

    __rmul__ = __mul__

    def __neg__(self) -> Objective:
        return self * -1.0


def _on(weight: float | torch.Tensor, outputs: Outputs, layers: Sequence[str]):
    """A [B] weight on the device of the outputs (a number stays a number)."""
    if isinstance(weight, torch.Tensor) and layers:
        return weight.to(outputs[layers[0]].device)
    return weight


@dataclass(frozen=True)
class Unit:
    """One unit of one layer: its activation (conv units by `spatial`), or its softmax
    probability (or log probability) over the layer's units."""

    layer: str
    unit: int
    spatial: str = "center"
    kind: str = "activation"

    def as_kind(self, kind: str) -> Unit:
        return Unit(self.layer, self.unit, self.spatial, kind)


@dataclass(frozen=True, eq=False)
class Projection:
    """A neuron that is not one unit (a direction, a group, a probe, an SAE latent): its
    readout of the layer's unit vector as `spatial` reads it (model/readout.py)."""

    layer: str
    readout: Readout
    spatial: str = "center"

    def as_kind(self, kind: str) -> Projection:
        if kind != "activation":  # softmax kinds are for class units, which are units
            raise FacetvizError(f"a {kind} objective needs a unit, not {self.readout.label}")
        return self


# One image's target: a unit, (weight, unit) terms that are summed, or a projection.
Target = Unit | Projection | Sequence[tuple[float, Unit]]


def units(targets: Sequence[Target]) -> Objective:
    """Image i's value of targets[i] (a unit, a weighted sum of units, or a projection).

    Terms are grouped by (layer, spatial rule, kind), so a batch of many units costs one gather
    per group, not one indexing operation per image; a projection is evaluated once for all the
    images that share it (a neuron's facets). A unit index outside its layer is an error that
    names the layer and its size (raised at the first evaluation, when the size is known).
    """
    projected = [(i, t) for i, t in enumerate(targets) if isinstance(t, Projection)]
    if not projected:
        return _unit_sums(targets)
    rest = [t if not isinstance(t, Projection) else () for t in targets]
    unit_part = _unit_sums(rest) if any(rest) else None
    projections = _projections(projected, len(targets))
    return projections if unit_part is None else unit_part + projections


def _projections(projected: list[tuple[int, Projection]], count: int) -> Objective:
    """Image i's projection for the images that have one, 0 for the rest."""
    shared: dict[int, tuple[Projection, list[int]]] = {}
    for image, target in projected:
        shared.setdefault(id(target), (target, []))[1].append(image)

    def value(outputs: Outputs) -> torch.Tensor:
        first = outputs[projected[0][1].layer]
        total = torch.zeros(count, device=first.device, dtype=torch.float32)
        for target, rows in shared.values():
            read = unit_values(outputs[target.layer].float(), target.spatial)
            if read.shape[1] != len(target.readout.weights):
                raise FacetvizError(
                    f"{target.readout.label} has {len(target.readout.weights)} weights but layer "
                    f"{target.layer!r} has {read.shape[1]} units: rerun its facets stage"
                )
            row_index = torch.tensor(rows, device=first.device)
            total = total.index_add(0, row_index, target.readout(read[row_index]))
        return total

    return Objective(sorted({t.layer for _, t in projected}), value)


def _unit_sums(targets: Sequence[Target]) -> Objective:
    terms = [((1.0, t),) if isinstance(t, Unit) else tuple(t) for t in targets]
    if any(unit.kind not in KINDS for image in terms for _, unit in image):
        raise FacetvizError(f"objective kind must be one of {', '.join(KINDS)}")
    groups: dict[tuple[str, str, str], tuple[list[int], list[int], list[float]]] = {}
    for image, image_terms in enumerate(terms):
        for weight, unit in image_terms:
            rows, indices, weights = groups.setdefault(
                (unit.layer, unit.spatial, unit.kind), ([], [], [])
            )
            rows.append(image)
            indices.append(unit.unit)
            weights.append(weight)
    checked: set[str] = set()

    def value(outputs: Outputs) -> torch.Tensor:
        first = outputs[next(iter(groups))[0]]
        if len(first) != len(terms):
            raise ValueError(f"{len(first)} images for {len(terms)} objectives")
        total = torch.zeros(len(first), device=first.device, dtype=torch.float32)
        for (layer, spatial, kind), (rows, indices, weights) in groups.items():
            if layer not in checked:
                _check_units(layer, outputs[layer], indices)
                checked.add(layer)
            values = unit_values(outputs[layer].float(), spatial)
            if kind == "probability":
                values = values.softmax(dim=1)
            elif kind == "log_probability":  # PPGN's log p(y | x), stable where p is tiny
                values = values.log_softmax(dim=1)
            row_index = torch.tensor(rows, device=first.device)
            picked = values[row_index, torch.tensor(indices, device=first.device)]
            total = total.index_add(
                0, row_index, picked * torch.tensor(weights, device=first.device)
            )
        return total

    return Objective(sorted({layer for layer, _, _ in groups}), value)


def _check_units(layer: str, output: torch.Tensor, indices: list[int]) -> None:
    count = unit_count(output.shape[1:])
    bad = sorted({unit for unit in indices if not 0 <= unit < count})
    if bad:
        raise FacetvizError(
            f"unit {bad[0]} is out of range for layer {layer!r}, which has {count} units "
            f"(0..{count - 1}): fix the neuron's `unit` in the config"
        )


def facet_distance(layer: str, centroids: torch.Tensor) -> Objective:
    """Cosine distance [B] of each image's code in `layer` to its facet's centroid code.

    Cosine, not Euclidean: maximizing a unit scales the code up, which is not leaving the facet;
    turning it towards another facet's direction is.
    """

    def value(outputs: Outputs) -> torch.Tensor:
        codes = outputs[layer]
        return 1 - F.cosine_similarity(
            codes.flatten(1).float(), centroids.to(codes.device).flatten(1).float(), dim=1
        )

    return Objective([layer], value)


def similarity(layer: str, groups: Sequence[slice]) -> Objective:
    """Each image's mean cosine similarity, in `layer`'s code, to the other images of its group
    (a neuron's images): subtracted, it is the diversity term (as Lucid's diversity objective)."""

    def value(outputs: Outputs) -> torch.Tensor:
        codes = F.normalize(outputs[layer].flatten(1).float(), dim=1)
        total = torch.zeros(len(codes), device=codes.device)
        for group in groups:
            count = group.stop - group.start
            if count < 2:
                continue
            pairs = codes[group] @ codes[group].T
            others = (pairs.sum(1) - pairs.diagonal()) / (count - 1)
            total = total.index_add(
                0, torch.arange(group.start, group.stop, device=codes.device), others
            )
        return total

    return Objective([layer], value)


@dataclass(frozen=True)
class Forward:
    """The visualized network, run once per evaluation under a capture of the objective's layers
    (float16 autocast of the forward pass on CUDA with `mixed_precision`)."""

    network: Network
    mixed_precision: bool = False

    def __call__(self, objective: Objective, pixels: torch.Tensor) -> torch.Tensor:
        return self.with_outputs(objective, pixels)[0]

    def with_outputs(
        self, objective: Objective, pixels: torch.Tensor, extra: Iterable[str] = ()
    ) -> tuple[torch.Tensor, Outputs]:
        """The objective's values and the captured outputs (of its layers and `extra`), from
        the same forward pass."""
        autocast = (
            torch.autocast(pixels.device.type, dtype=torch.float16)
            if self.mixed_precision and pixels.device.type == "cuda"
            else nullcontext()
        )
        with capture(self.network.module, [*objective.layers, *extra]) as outputs, autocast:
            self.network(pixels)
        return objective(outputs), outputs
