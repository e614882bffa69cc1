"""References that need no optimization, scored beside every method (docs/design.md §6).

- `mean_image`: each facet's mean image, where mfv starts;
- `nearest_real`: the real image nearest each facet's centroid;
- `g_centroid`: the generator's drawing of each facet's centroid code, where `ppgn` and
  `dgn_released` start and near where `dgn` starts (the facet's mode), in runs with a learned
  prior: what their optimization adds over the facet's own code.

A method earns its place by beating them: more activation without losing the facet. They run
as methods (same job, record, metrics and figures), with one "step" that only reads the unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from facetviz.synthesis.methods.base import Method, Task, register
from facetviz.synthesis.objectives import Objective, units
from facetviz.synthesis.param import Pixels
from facetviz.synthesis.render import Result


@dataclass(frozen=True)
class Settings:
    """References have nothing to set."""


class Reference(Method):
    """Images taken as they are; the trace holds the unit's value on them."""

    reference: ClassVar[bool] = True
    Settings = Settings

    def objective(self, task: Task) -> Objective:
        return units(task.units)

    def optimize(self, task: Task, parameterization: Pixels, objective: Objective) -> Result:
        with torch.no_grad():
            values = self.context.forward(objective, parameterization.start)
        return Result(parameterization.start.clone(), values.float().cpu()[None])


@register
class MeanImage(Reference):
    name = "mean_image"
    summary = "reference: each facet's mean image (mfv's start), no optimization"

    def parameterization(self, task: Task) -> Pixels:
        return Pixels(task.mean_images)


@register
class NearestReal(Reference):
    name = "nearest_real"
    summary = "reference: the real image nearest each facet's centroid, no optimization"

    def parameterization(self, task: Task) -> Pixels:
        return Pixels(task.nearest_images)


@register
class GCentroid(Reference):
    name = "g_centroid"
    summary = "reference: the generator's image of each facet's centroid code, no optimization"
    inputs = {"generator": "priors/generator.pt"}

    def parameterization(self, task: Task) -> Pixels:
        from facetviz.synthesis.methods import dgn

        G = dgn.load_generator(self.context, task)
        codes = dgn.task_codes(self.context, task, G, dgn.Settings().mode_bandwidth)
        with torch.no_grad():
            return Pixels(G(G.clip(codes.centroid)))
