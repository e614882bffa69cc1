"""`plain`: gradient ascent from noise with L2 decay (Erhan et al. 2009; Simonyan et al. 2014)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from facetviz.synthesis.methods.base import Method, Task, register, setting
from facetviz.synthesis.objectives import Objective, units
from facetviz.synthesis.param import Pixels
from facetviz.synthesis.render import Result, decay_ascent


@dataclass(frozen=True)
class Settings:
    steps: int = setting(200, "gradient steps", minimum=1)
    step_size: float = setting(0.01, "mean pixel change per step on 0-1 pixels", exclusiveMinimum=0)
    decay: float = setting(0.005, "L2 decay towards gray per step", minimum=0, maximum=1)
    noise: float = setting(0.1, "std of the gray + noise start", minimum=0)


@register
class Plain(Method):
    name = "plain"
    summary = "gradient ascent from noise with L2 decay (Simonyan et al. 2014)"
    Settings = Settings

    def parameterization(self, task: Task) -> Pixels:
        return Pixels(task.noise(0.5, self.settings.noise))

    def objective(self, task: Task) -> Objective:
        return units(task.units)

    def priors(self) -> dict[str, Any]:
        """Hand-designed priors applied after each step (none: plain AM)."""
        return {}

    def optimize(self, task: Task, parameterization: Pixels, objective: Objective) -> Result:
        return decay_ascent(
            self.context.forward,
            objective,
            parameterization,
            self.context.steps(self.settings.steps),
            self.settings.step_size,
            self.settings.decay,
            task.generators,
            name=self.label(task),
            **self.priors(),
        )
