"""`fourier`: Fourier parameterization with decorrelated colour, seen through random
pad/jitter/scale/rotate transforms, optimized with Adam (Olah et al. 2017, Lucid)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from facetviz.synthesis.methods.base import Method, Task, register, setting
from facetviz.synthesis.objectives import Objective, units
from facetviz.synthesis.param import FourierImage
from facetviz.synthesis.render import Result, parameterized_ascent
from facetviz.synthesis.schedules import scaled_pixels
from facetviz.synthesis.transforms import jitter, pad, scale_rotate


@dataclass(frozen=True)
class Settings:
    steps: int = setting(512, "Adam steps", minimum=1)
    learning_rate: float = setting(0.05, "Adam's learning rate", exclusiveMinimum=0)
    decay_power: float = setting(1.0, "spectrum amplitudes fall off as 1/f^decay_power", minimum=0)


def robustness(task: Task) -> Callable[[torch.Tensor], torch.Tensor]:
    """Lucid's standard transforms, their pixel amounts scaled from 224 px to the input size."""
    size, generators = task.size, task.generators
    scales = [1 + (i - 5) / 50 for i in range(11)]
    angles = list(range(-10, 11))

    def transform(images: torch.Tensor) -> torch.Tensor:
        images = jitter(pad(images, scaled_pixels(12, size)), scaled_pixels(8, size), generators)
        images = scale_rotate(images, scales, angles, generators)
        images = jitter(images, scaled_pixels(4, size), generators)
        margin = (images.shape[-1] - size) // 2
        return images[..., margin : margin + size, margin : margin + size]

    return transform


@register
class Fourier(Method):
    name = "fourier"
    summary = (
        "Fourier parameterization with decorrelated colour (none for grayscale), "
        "pad/jitter/scale/rotate, Adam 0.05, 512 steps (Olah et al. 2017)"
    )
    Settings = Settings

    def parameterization(self, task: Task) -> FourierImage:
        batch, channels, size, _ = task.mean_images.shape
        # generators of their own, derived from each image's seed, for the spectrum's draw
        seeds = [g.initial_seed() ^ 0x5EED for g in task.generators]
        image = FourierImage(
            batch,
            channels,
            size,
            decay_power=self.settings.decay_power,
            generator=[torch.Generator().manual_seed(s) for s in seeds],
        )
        return image.to(task.mean_images.device)

    def objective(self, task: Task) -> Objective:
        return units(task.units)

    def optimize(self, task: Task, parameterization: FourierImage, objective: Objective) -> Result:
        return parameterized_ascent(
            self.context.forward,
            objective,
            parameterization,
            self.context.steps(self.settings.steps),
            self.settings.learning_rate,
            robustness(task),
            self.label(task),
        )
