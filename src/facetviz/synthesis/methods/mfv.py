"""`mfv`: the paper's method (Nguyen, Yosinski & Clune 2016, the released `opt_from_mean`).

From each facet's mean image, the released code's octave schedule: normalized gradient steps on
centre-biased crops of an upscaled canvas, clipping, a TV denoising step after every step and a
central-gradient "margin" octave. With `facet_weight` > 0 the unit's objective loses that weight
× the unit's mean activation × the cosine distance of the image's facet-layer code to its
facet's centroid code (our addition: the mean image alone does not keep the facet; docs/results.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from facetviz.synthesis.methods.base import Method, Task, register, setting
from facetviz.synthesis.objectives import Objective, facet_distance, units
from facetviz.synthesis.param import Canvas
from facetviz.synthesis.render import Result, octave_ascent
from facetviz.synthesis.schedules import MFV, Octave, scaled

STARTS = ("mean", "nearest")


@dataclass(frozen=True)
class OctaveSettings:
    """What the paper's two methods share (cbr's settings)."""

    tv_iterations: int = setting(20, "iterations of the TV denoising step", minimum=1)
    steps_scale: float = setting(
        1.0,
        "share of the paper's schedule to run (times synthesis.steps_scale)",
        exclusiveMinimum=0,
    )


@dataclass(frozen=True)
class Settings(OctaveSettings):
    facet_weight: float = setting(
        0.0,
        "weight of the facet-keeping term: the unit's objective loses weight × the unit's mean "
        "activation × the cosine distance of the image's facets.layer code to its facet's "
        "centroid code; 0 is the paper's objective",
        minimum=0,
    )
    start: str = setting(
        "mean",
        "start image: the facet's mean image (the paper's) or its real image nearest the "
        "facet's centroid (keeps one member's layout where the members' mean blurs)",
        enum=list(STARTS),
    )


def octave_objectives(task: Task) -> dict[str, Objective]:
    """The objective of each octave kind: the unit's activation, or (for class units only: a
    hidden unit has no class distribution) its softmax probability."""
    probability = [
        unit.as_kind("probability") if is_class else unit
        for unit, is_class in zip(task.units, task.class_units, strict=True)
    ]
    return {"activation": units(task.units), "probability": units(probability)}


@register
class Mfv(Method):
    name = "mfv"
    summary = (
        "the paper: from each facet's mean image, the released code's octave schedule (370 "
        "steps; step normalized by the mean gradient magnitude, clipping to valid pixels, a TV "
        "denoising step after every step with the paper's weight schedule, Gaussian "
        'centre-biased crops of an upscaled canvas, the central-gradient "margin" octave)'
    )
    Settings = Settings
    schedule: ClassVar[tuple[Octave, ...]] = MFV

    def parameterization(self, task: Task) -> Canvas:
        return Canvas(task.nearest_images if self.settings.start == "nearest" else task.mean_images)

    def objective(self, task: Task) -> Mapping[str, Objective]:
        objectives = octave_objectives(task)
        if self.settings.facet_weight <= 0:
            return objectives
        # in the unit's own scale, so one weight suits a logit of ~10 and a conv channel of ~1;
        # the unit's scale, not the facet's, so a weaker facet is held as firmly as a strong one
        weight = self.settings.facet_weight * task.unit_scales.abs()
        keeping = facet_distance(task.facet_layer, task.centroid_codes) * weight
        return {kind: objective - keeping for kind, objective in objectives.items()}

    def optimize(
        self, task: Task, parameterization: Canvas, objective: Mapping[str, Objective]
    ) -> Result:
        scale = self.context.steps_scale * self.settings.steps_scale
        return octave_ascent(
            self.context.forward,
            objective,
            parameterization,
            scaled(self.schedule, task.size, scale),
            task.size,
            task.generators,
            self.settings.tv_iterations,
            self.label(task),
        )
