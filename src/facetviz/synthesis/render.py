"""The optimization loop: normalized gradient ascent with jitter, TV smoothing and clipping."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from facetviz.synthesis.regularizers import total_variation
from facetviz.synthesis.transforms import jitter


@dataclass(frozen=True)
class AscentSettings:
    steps: int = 200
    step_size: float = 0.003
    tv_weight: float = 0.5
    jitter: int = 1


def per_image_mean_abs(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.abs().flatten(1).mean(1).clamp_min(1e-12).view(-1, *([1] * (tensor.ndim - 1)))


def ascend(
    objective: Callable[[torch.Tensor], torch.Tensor],
    init: torch.Tensor,
    settings: AscentSettings,
    seed: int | Sequence[int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximize `objective` from `init` (pixels in [0, 1]); returns (images, trace [steps, B]).

    Each step moves every image by `step_size` on average along its own normalized gradient
    (as in the paper's code, so images in a batch do not compete for step size), then takes a
    total-variation descent step and clips to the valid pixel range. `seed` is one seed for the
    batch, or one per image (then an image's result does not depend on its batch-mates).
    """
    generator: torch.Generator | list[torch.Generator] = (
        torch.Generator().manual_seed(seed)
        if isinstance(seed, int)
        else [torch.Generator().manual_seed(int(s)) for s in seed]
    )
    images = init.detach().clone().clamp(0, 1)
    trace = torch.empty(settings.steps, len(images))
    for step in range(settings.steps):
        images.requires_grad_(True)
        values = objective(jitter(images, settings.jitter, generator))
        (ascent,) = torch.autograd.grad(values.sum(), images)
        (smooth,) = torch.autograd.grad(total_variation(images).sum(), images)
        with torch.no_grad():
            images = images + settings.step_size * ascent / per_image_mean_abs(ascent)
            images = images - settings.step_size * settings.tv_weight * smooth
            images = images.clamp(0, 1)
        trace[step] = values.detach().cpu()
    return images.detach(), trace
