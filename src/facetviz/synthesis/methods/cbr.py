"""`cbr`: the paper's centre-biased regularization from gray + noise (530 steps).

Strong smoothing relaxed over time and centre-biased crops draw a blurry image of the whole
object first, then its detail; the first octaves maximize a class unit's softmax probability.
It shares mfv's loop and differs in its start and schedule.
"""

from __future__ import annotations

from collections.abc import Mapping

from facetviz.synthesis.methods.base import Task, register
from facetviz.synthesis.methods.mfv import Mfv, OctaveSettings, octave_objectives
from facetviz.synthesis.objectives import Objective
from facetviz.synthesis.param import Canvas
from facetviz.synthesis.schedules import CBR, CBR_GRAY, CBR_NOISE


@register
class Cbr(Mfv):
    name = "cbr"
    summary = (
        "the paper's centre-biased regularization from gray + noise (530 steps, first octaves "
        "on the softmax probability)"
    )
    Settings = OctaveSettings
    schedule = CBR

    def parameterization(self, task: Task) -> Canvas:
        return Canvas(task.noise(CBR_GRAY / 255, CBR_NOISE / 255))

    def objective(self, task: Task) -> Mapping[str, Objective]:
        return octave_objectives(task)
