"""Robustness transforms applied to the image before each forward pass."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def jitter(
    images: torch.Tensor,
    max_shift: int,
    generator: torch.Generator | Sequence[torch.Generator],
) -> torch.Tensor:
    """Translate each image by its own random offset in [-max_shift, max_shift] (wrapping).

    With one generator per image, an image's offsets do not depend on the rest of the batch.
    """
    if max_shift <= 0:
        return images
    if isinstance(generator, torch.Generator):
        shifts = torch.randint(-max_shift, max_shift + 1, (len(images), 2), generator=generator)
    else:
        shifts = torch.cat(
            [torch.randint(-max_shift, max_shift + 1, (1, 2), generator=g) for g in generator]
        )
    return torch.stack(
        [
            torch.roll(image, shifts=(int(dy), int(dx)), dims=(-2, -1))
            for image, (dy, dx) in zip(images, shifts, strict=True)
        ]
    )
