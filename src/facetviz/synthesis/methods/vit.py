"""`vit`: the visualization recipe of Ghiasi et al. (2022, "What do Vision Transformers
Learn? A Visual Exploration"), from each facet's mean image.

Pixels optimized by Adam (betas 0.5, 0.99) with a cosine learning-rate schedule; each step the
objective is averaged over 8 augmented copies of each image (a wrapping roll of up to 1/7 of
the side, a random per-channel colour affine), minus an L2 total-variation penalty (diagonal
neighbours included); pixels are clipped to [0, 1] after each step, as the release does.

Clipping, not a sigmoid, as the release clips: the recipe's learning rate is a step in pixel
units (Adam's steps are about its size whatever the gradient's scale), which a sigmoid would
shrink near black and white (most of a Fashion-MNIST image is black background).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from facetviz.synthesis.methods.base import Method, Task, register, setting
from facetviz.synthesis.objectives import Objective, units
from facetviz.synthesis.regularizers import total_variation
from facetviz.synthesis.render import Result, parameterized_ascent
from facetviz.synthesis.transforms import augment

# The recipe's colour jitter is ±1 in the network's normalized units, whose std is ImageNet's
# pixel std (about 0.25 of [0, 1] pixels): on our [0, 1] pixels that is a shift of ±0.25.
PIXEL_STD = 0.25
RECIPE_SIZE = 224  # the recipe's input size, at which `tv_weight` is given


@dataclass(frozen=True)
class Settings:
    steps: int = setting(400, "Adam steps (recipe: 400)", minimum=1)
    learning_rate: float = setting(
        0.1, "Adam's learning rate at the first step, cosine-annealed to 0", exclusiveMinimum=0
    )
    beta1: float = setting(0.5, "Adam's beta1 (recipe: 0.5)", minimum=0, exclusiveMaximum=1)
    beta2: float = setting(0.99, "Adam's beta2 (recipe: 0.99)", minimum=0, exclusiveMaximum=1)
    copies: int = setting(
        8, "augmented copies of each image per step, objective averaged", minimum=1
    )
    colour_shift: float = setting(
        PIXEL_STD,
        "largest per-channel colour shift of a copy, on [0, 1] pixels (the recipe's ±1 in "
        "normalized units × the pixel std 0.25); 0: none",
        minimum=0,
    )
    colour_scale: float = setting(
        1.0,
        "largest |log| of a copy's per-channel contrast factor around gray 0.5 (recipe: 1, "
        "factors e^-1 to e); 0: none",
        minimum=0,
    )
    roll: float = setting(
        1 / 7,
        "largest wrapping translation of a copy per axis, as a share of the side (recipe: 1/7, "
        "32 px at 224 px, 4 px at 28 px); 0: none",
        minimum=0,
        maximum=0.5,
    )
    tv_weight: float = setting(
        0.004,
        "weight of the L2 total-variation penalty (diagonals included) on [0, 1] pixels, in units "
        "of the unit's mean activation, at 224 px and × 224/side at other sizes (the TV of pixel "
        "noise grows with the side); 0.004 is the recipe's 0.0005, whose code divides the "
        "objective by 8; 0: none",
        minimum=0,
    )


class PixelImage(torch.nn.Module):
    """Images [B, C, H, W] optimized pixel by pixel from `start`, clipped to [0, 1] (`clip_`)."""

    def __init__(self, start: torch.Tensor) -> None:
        super().__init__()
        self.pixels = torch.nn.Parameter(start.detach().clone().clamp(0, 1))
        self._start = self.pixels.detach().clone()

    @property
    def start(self) -> torch.Tensor:
        return self._start

    def forward(self) -> torch.Tensor:
        return self.pixels

    @torch.no_grad()
    def clip_(self) -> None:
        self.pixels.clamp_(0, 1)


def tv_penalty(weight: float, task: Task) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """Each image's TV × `weight` × its unit's scale × RECIPE_SIZE / the input size.

    In the unit's scale (as mfv's facet_weight), so that one weight suits a logit of ~10 and a
    hidden unit of ~1. × 224/side: a smooth image's L2 TV hardly depends on its size, but pixel
    noise's grows with the side (per pixel differences stay, their number grows), so at 28 px
    the weight is 8× the recipe's to make noise cost as much. Measured at 28 px (the default
    run's CNN, 400 steps, a class, a conv and an fc neuron's facets): the default halves the
    final TV (from ~47, uniform noise's level, to ~25; the mean images have ~16) for 1-15% of the
    objective; 0.002 keeps ~32 for 2-7%; 0.01 flattens class and fc images.
    """
    if weight <= 0:
        return None
    per_image = weight * task.unit_scales.abs() * RECIPE_SIZE / task.size
    return lambda images: per_image.to(images.device) * total_variation(images)


@register
class ViT(Method):
    name = "vit"
    summary = (
        "Ghiasi et al. 2022's ViT recipe from each facet's mean image: pixels, Adam (0.1, betas "
        "0.5/0.99, cosine schedule, 400 steps) on the mean over 8 rolled, colour-jittered copies "
        "minus an L2 TV penalty"
    )
    Settings = Settings

    def parameterization(self, task: Task) -> PixelImage:
        return PixelImage(task.mean_images)

    def objective(self, task: Task) -> Objective:
        return units(task.units)

    def optimize(self, task: Task, parameterization: PixelImage, objective: Objective) -> Result:
        s = self.settings

        def transform(images: torch.Tensor) -> torch.Tensor:
            return augment(
                images, s.copies, s.colour_shift, s.colour_scale, s.roll, task.generators
            )

        return parameterized_ascent(
            self.context.forward,
            objective,
            parameterization,
            self.context.steps(s.steps),
            s.learning_rate,
            transform,
            self.label(task),
            copies=s.copies,
            betas=(s.beta1, s.beta2),
            cosine=True,
            penalty=tv_penalty(s.tv_weight, task),
            project=parameterization.clip_,
        )
