"""`diversity`: `fourier` plus a penalty on the cosine similarity of a unit's images in the facet
layer's code: the usual alternative to facets (as Lucid's diversity objective)."""

from __future__ import annotations

from dataclasses import dataclass

from facetviz.synthesis.methods import fourier
from facetviz.synthesis.methods.base import Task, register, setting
from facetviz.synthesis.methods.fourier import Fourier
from facetviz.synthesis.objectives import Objective, similarity, units


@dataclass(frozen=True)
class Settings(fourier.Settings):
    weight: float = setting(
        10.0, "weight of the similarity penalty between a unit's images", minimum=0
    )


@register
class Diversity(Fourier):
    name = "diversity"
    summary = (
        "`fourier` plus a penalty on the cosine similarity of a unit's images in the facet "
        "layer's code (the usual alternative to facets)"
    )
    Settings = Settings

    def objective(self, task: Task) -> Objective:
        return units(task.units) - similarity(task.facet_layer, task.groups) * self.settings.weight
