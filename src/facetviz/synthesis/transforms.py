"""Robustness transforms applied to the image before each forward pass."""

from __future__ import annotations

import torch


def jitter(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by its own random offset in [-max_shift, max_shift] (wrapping)."""
    if max_shift <= 0:
        return images
    shifts = torch.randint(-max_shift, max_shift + 1, (len(images), 2), generator=generator)
    return torch.stack(
        [
            torch.roll(image, shifts=(int(dy), int(dx)), dims=(-2, -1))
            for image, (dy, dx) in zip(images, shifts, strict=True)
        ]
    )
