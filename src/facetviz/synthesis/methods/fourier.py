"""`fourier`: Fourier parameterization with decorrelated colour, seen through random
pad/jitter/scale/rotate transforms, optimized with Adam (Olah et al. 2017, Lucid).

Optionally also through the augmentations of Ghiasi et al. 2022 (the `vit` method's): several
copies of each image a step, each rolled and colour-jittered; `preset: vit` sets all four to
the `vit` method's defaults. By default there are none, and no extra random draws.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from facetviz.synthesis.methods import vit
from facetviz.synthesis.methods.base import Method, Task, register, setting
from facetviz.synthesis.objectives import Objective, units
from facetviz.synthesis.param import FourierImage
from facetviz.synthesis.render import Result, parameterized_ascent
from facetviz.synthesis.schedules import scaled_pixels
from facetviz.synthesis.transforms import augment, jitter, pad, scale_rotate

# what `preset` stands for: Ghiasi et al. 2022's augmentations, as the `vit` method's defaults
RECIPE = ("copies", "colour_shift", "colour_scale", "roll")
VIT_PRESET = {key: getattr(vit.Settings(), key) for key in RECIPE}


@dataclass(frozen=True)
class Settings:
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"vit": VIT_PRESET}

    steps: int = setting(512, "Adam steps", minimum=1)
    learning_rate: float = setting(0.05, "Adam's learning rate", exclusiveMinimum=0)
    decay_power: float = setting(1.0, "spectrum amplitudes fall off as 1/f^decay_power", minimum=0)
    copies: int = setting(
        1, "transformed copies of each image per step, objective averaged (vit: 8)", minimum=1
    )
    colour_shift: float = setting(
        0.0,
        "largest per-channel colour shift of a copy, on [0, 1] pixels (vit: 0.25)",
        minimum=0,
    )
    colour_scale: float = setting(
        0.0, "largest |log| of a copy's per-channel contrast factor (vit: 1.0)", minimum=0
    )
    roll: float = setting(
        0.0,
        "largest wrapping translation of a copy per axis, as a share of the side (vit: 1/7)",
        minimum=0,
        maximum=0.5,
    )
    preset: str = setting(
        "none",
        "`vit`: copies, colour_shift, colour_scale and roll at the vit method's defaults (8, "
        "0.25, 1.0, 1/7; keys set beside it win); `none`: the settings as given",
        enum=["none", "vit"],
    )


def robustness(
    task: Task, settings: Settings | None = None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Lucid's standard transforms, their pixel amounts scaled from 224 px to the input size;
    then, with `settings`, its copies, each rolled and colour-jittered (`transforms.augment`)."""
    size, generators = task.size, task.generators
    scales = [1 + (i - 5) / 50 for i in range(11)]
    angles = list(range(-10, 11))
    s = settings or Settings()

    def transform(images: torch.Tensor) -> torch.Tensor:
        images = jitter(pad(images, scaled_pixels(12, size)), scaled_pixels(8, size), generators)
        images = scale_rotate(images, scales, angles, generators)
        images = jitter(images, scaled_pixels(4, size), generators)
        margin = (images.shape[-1] - size) // 2
        images = images[..., margin : margin + size, margin : margin + size]
        return augment(images, s.copies, s.colour_shift, s.colour_scale, s.roll, generators)

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
            robustness(task, self.settings),
            self.label(task),
            copies=self.settings.copies,
        )
