"""A lab's own synthesis method, as the text of a plug-in module: the tests write it into a
folder on PYTHONPATH and name the module in `synthesis.plugins`."""

from __future__ import annotations

TEMPLATE = '''
from dataclasses import dataclass

from facetviz.synthesis.methods import Method, register, setting
from facetviz.synthesis.objectives import units
from facetviz.synthesis.param import Pixels
from facetviz.synthesis.render import decay_ascent


@dataclass(frozen=True)
class Settings:
    steps: int = setting(3, "gradient steps", minimum=1)
    step_size: float = setting(0.05, "mean pixel change per step", exclusiveMinimum=0)


@register
class CLASS(Method):
    """A lab's own method: plain ascent from the facet's mean image."""

    name = NAME
    summary = "ascent from the mean image"
    Settings = Settings
    inputs = INPUTS
    replaces = REPLACES

    def parameterization(self, task):
        return Pixels(task.mean_images)

    def objective(self, task):
        return units(task.units)

    def optimize(self, task, parameterization, objective):
        return decay_ascent(self.context.forward, objective, parameterization,
                            self.context.steps(self.settings.steps), self.settings.step_size,
                            0.0, task.generators, name=self.label(task))
'''


def plugin_source(
    name: str = "toy", cls: str = "Toy", inputs: dict | None = None, replaces: bool = False
) -> str:
    """The module's text: class `cls` registers method `name` with these extra inputs."""
    values = {"NAME": repr(name), "INPUTS": repr(inputs or {}), "REPLACES": repr(replaces)}
    text = TEMPLATE.replace("class CLASS(", f"class {cls}(")
    for key, value in values.items():
        text = text.replace(f"= {key}\n", f"= {value}\n")
    return text


PLUGIN = plugin_source()
