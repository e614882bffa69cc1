"""Image priors used as penalties or smoothing steps."""

from __future__ import annotations

import torch


def total_variation(images: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Isotropic total variation per image [B], smoothed by `eps` so it is differentiable."""
    dy = images[..., 1:, :-1] - images[..., :-1, :-1]
    dx = images[..., :-1, 1:] - images[..., :-1, :-1]
    return torch.sqrt(dx.square() + dy.square() + eps).flatten(1).sum(1)
