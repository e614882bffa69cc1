"""Robustness transforms applied to images before each forward pass, batched, one draw per image.

Every random draw takes one generator per image (or one for the batch), so with per-image
generators an image's result does not depend on the rest of its batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

Generators = torch.Generator | Sequence[torch.Generator]


def _draw(generator: Generators, count: int, sampler) -> torch.Tensor:
    """`sampler(shape, generator)` for each of `count` images, stacked along dim 0."""
    if isinstance(generator, torch.Generator):
        return sampler((count,), generator)
    if len(generator) != count:
        raise ValueError(f"{len(generator)} generators for {count} images")
    return torch.cat([sampler((1,), g) for g in generator])


def _integers(generator: Generators, count: int, low: int, high: int, dims: int) -> torch.Tensor:
    return _draw(
        generator, count, lambda n, g: torch.randint(low, high + 1, (*n, dims), generator=g)
    )


def jitter(images: torch.Tensor, max_shift: int, generator: Generators) -> torch.Tensor:
    """Translate each image by its own random offset in [-max_shift, max_shift] (wrapping)."""
    if max_shift <= 0:
        return images
    shifts = _integers(generator, len(images), -max_shift, max_shift, 2)
    return torch.stack(
        [
            torch.roll(image, shifts=(int(dy), int(dx)), dims=(-2, -1))
            for image, (dy, dx) in zip(images, shifts, strict=True)
        ]
    )


def roll(images: torch.Tensor, max_fraction: float, generator: Generators) -> torch.Tensor:
    """`jitter` by up to round(max_fraction × side) px per axis (Ghiasi et al. 2022: 1/7)."""
    return jitter(images, round(max_fraction * min(images.shape[-2:])), generator)


def colour_affine(
    images: torch.Tensor, shift: float, log_scale: float, generator: Generators
) -> torch.Tensor:
    """x' = (x − 0.5)·e^u + 0.5 + s, per image and channel, with s uniform in ±`shift` and u
    in ±`log_scale` (Ghiasi et al. 2022's colour jitter; no clipping). A bound of 0 draws
    nothing for its term."""
    count, channels = images.shape[:2]

    def uniform(bound: float) -> torch.Tensor:
        draws = _draw(generator, count, lambda n, g: torch.rand((*n, channels), generator=g))
        return ((2 * draws - 1) * bound).to(images).view(count, channels, 1, 1)

    if log_scale > 0:
        images = (images - 0.5) * uniform(log_scale).exp() + 0.5
    return images + uniform(shift) if shift > 0 else images


def augment(
    images: torch.Tensor,
    count: int,
    shift: float,
    log_scale: float,
    max_roll: float,
    generators: Generators,
) -> torch.Tensor:
    """`count` copies of the batch, copy-major ([copy 0's images, copy 1's, ...]), each copy
    rolled (`roll`) and colour-shifted (`colour_affine`) by its own draws: the objective then
    averages over an image's copies (the recipe's 8 per image; `render.copy_mean`). One copy
    is the batch itself, transformed."""
    copies = [
        colour_affine(roll(images, max_roll, generators), shift, log_scale, generators)
        for _ in range(count)
    ]
    return copies[0] if count == 1 else torch.cat(copies)


def centre_biased_offsets(
    canvas: int, size: int, window: float, generator: Generators, count: int
) -> torch.Tensor:
    """[count, 2] top-left corners of `size` crops of a `canvas` px image (the paper's jitter).

    Offsets are Gaussian around the centred crop with std `window` × (canvas − size), clipped
    to the canvas: central pixels are seen, and updated, most often.
    """
    excess = canvas - size
    centre = excess / 2
    if excess <= 0:
        return torch.zeros(count, 2, dtype=torch.long)
    noise = _draw(generator, count, lambda n, g: torch.randn((*n, 2), generator=g))
    return (centre + noise * window * excess).round().clamp(0, excess).long()


def crop_indices(
    offsets: torch.Tensor, size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Advanced indices that take (and put back) each image's `size` crop at its offset."""
    span = torch.arange(size, device=offsets.device)
    rows = (offsets[:, 0:1] + span)[:, :, None]  # [B, size, 1]
    cols = (offsets[:, 1:2] + span)[:, None, :]  # [B, 1, size]
    batch = torch.arange(len(offsets), device=offsets.device)[:, None, None]
    return batch, rows, cols


def crop(canvas: torch.Tensor, offsets: torch.Tensor, size: int) -> torch.Tensor:
    """[B, C, size, size] crops of `canvas` [B, C, S, S], one per image at its own offset."""
    batch, rows, cols = crop_indices(offsets.to(canvas.device), size)
    return canvas.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def add_to_crops(canvas: torch.Tensor, offsets: torch.Tensor, update: torch.Tensor) -> None:
    """canvas[crop of each image] += update, in place (the inverse of `crop`)."""
    batch, rows, cols = crop_indices(offsets.to(canvas.device), update.shape[-1])
    view = canvas.permute(0, 2, 3, 1)  # shares memory with canvas
    view[batch, rows, cols] += update.permute(0, 2, 3, 1)


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)


def scale_rotate(
    images: torch.Tensor,
    scales: Sequence[float],
    angles: Sequence[float],
    generator: Generators,
) -> torch.Tensor:
    """Scale and rotate each image by a factor and an angle (degrees) drawn from the lists."""
    count = len(images)
    scale_index = _integers(generator, count, 0, len(scales) - 1, 1)[:, 0]
    angle_index = _integers(generator, count, 0, len(angles) - 1, 1)[:, 0]
    scale = torch.tensor(scales, dtype=images.dtype)[scale_index]
    theta = torch.tensor(angles, dtype=images.dtype)[angle_index] * math.pi / 180
    cos, sin = torch.cos(theta) / scale, torch.sin(theta) / scale
    zero = torch.zeros_like(cos)
    matrix = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(matrix.to(images.device), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, padding_mode="reflection", align_corners=False)


def pad(images: torch.Tensor, pixels: int, value: float = 0.5) -> torch.Tensor:
    """Constant padding, so that jitter and rotation do not wrap the object's border in."""
    return F.pad(images, (pixels,) * 4, value=value) if pixels > 0 else images


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of every image and channel (reflect padding)."""
    if sigma <= 0:
        return images
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    padded = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(padded, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)
