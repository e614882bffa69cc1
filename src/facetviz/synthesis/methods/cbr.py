"""`cbr`: the paper's centre-biased regularization from gray + noise (530 steps).

Strong smoothing relaxed over time and centre-biased crops draw a blurry image of the whole
object first, then its detail; the first octaves maximize a class unit's softmax probability.
It shares mfv's loop and differs in its start and schedule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from facetviz.synthesis.methods.base import Task, register, setting
from facetviz.synthesis.methods.mfv import Mfv, octave_objectives
from facetviz.synthesis.objectives import Objective
from facetviz.synthesis.param import Canvas
from facetviz.synthesis.schedules import CBR, CBR_GRAY, CBR_NOISE


@dataclass(frozen=True)
class Settings:
    tv_iterations: int = setting(20, "iterations of the TV denoising step", minimum=1)
    steps_scale: float = setting(
        1.0,
        "share of the paper's schedule to run (times synthesis.steps_scale)",
        exclusiveMinimum=0,
    )


@register
class Cbr(Mfv):
    name = "cbr"
    summary = (
        "the paper's centre-biased regularization from gray + noise (530 steps, first octaves "
        "on the softmax probability)"
    )
    Settings = Settings
    schedule = CBR

    def parameterization(self, task: Task) -> Canvas:
        return Canvas(task.noise(CBR_GRAY / 255, CBR_NOISE / 255))

    def objective(self, task: Task) -> Mapping[str, Objective]:
        return octave_objectives(task)
