"""Learned priors (Nguyen, Yosinski & Clune 2019, survey §"learned priors"): an image generator
G that inverts the visualized network's code at `priors.code_layer`, and an optional
denoising autoencoder R on that code (PPGN-h).

G maps a code h back to an image, so that optimizing h (DGN-AM, PPGN's MALA-approx) stays on
the images G can draw. Its architecture follows the input size: a small deconvolution net for
small inputs (Fashion-MNIST's 28 px), and for ImageNet-sized inputs the released upconv layout
of Dosovitskiy & Brox's generators (three fully connected layers of 4096 with LeakyReLU(0.3),
256×4×4, stride-2 deconvolutions to 256 px, a centre crop to the input). Training, checkpoints
and their checks are in `priors_training`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

SLOPE = 0.3  # LeakyReLU of the released generators
UPCONV_FROM = 96  # inputs from this size on get the upconv layout


class SmallGenerator(nn.Module):
    """code -> width × s/4 × s/4 -> two stride-2 deconvolutions -> sigmoid, at `size` px.

    A code that is a conv layer's map of that size (`code_shape` [C, s/4, s/4]) enters through
    a 3×3 conv that keeps its layout; any other through a fully connected layer. For conv3 of
    the default run (64×7×7) an fc layer would hold 10 M weights and train several times slower
    (docs/benchmarks.md)."""

    def __init__(
        self, code_dim: int, channels: int, size: int, width: int, code_shape=None
    ) -> None:
        super().__init__()
        self.base, self.size, self.width = math.ceil(size / 4), size, width
        spatial = code_shape is not None and tuple(code_shape[1:]) == (self.base, self.base)
        self.code_shape = tuple(code_shape) if spatial else None
        entry = nn.Conv2d(code_shape[0], width, 3, 1, 1) if spatial else (
            nn.Linear(code_dim, width * self.base**2)
        )  # fmt: skip
        self.entry = nn.Sequential(entry, nn.LeakyReLU(SLOPE))
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(width, width // 2, 4, 2, 1),
            nn.LeakyReLU(SLOPE),
            nn.ConvTranspose2d(width // 2, channels, 4, 2, 1),
        )

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        if self.code_shape:
            grid = self.entry(codes.view(len(codes), *self.code_shape))
        else:
            grid = self.entry(codes).view(len(codes), self.width, self.base, self.base)
        return centre_crop(torch.sigmoid(self.deconv(grid)), self.size)


class UpconvGenerator(nn.Module):
    """The released layout for 227 px inputs: 3 × fc 4096, 256×4×4, six stride-2
    deconvolutions to 256 px, centre crop."""

    def __init__(
        self, code_dim: int, channels: int, size: int, width: int, code_shape=None
    ) -> None:
        super().__init__()
        self.size = size
        hidden = 4096
        self.fc = nn.Sequential(
            nn.Linear(code_dim, hidden), nn.LeakyReLU(SLOPE),
            nn.Linear(hidden, hidden), nn.LeakyReLU(SLOPE),
            nn.Linear(hidden, 256 * 16), nn.LeakyReLU(SLOPE),
        )  # fmt: skip
        widths = [256, 4 * width, 4 * width, 2 * width, width, width // 2]
        layers: list[nn.Module] = []
        for a, b in zip(widths, widths[1:], strict=False):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1), nn.LeakyReLU(SLOPE)]
        layers.append(nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1))
        self.deconv = nn.Sequential(*layers)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        grid = self.fc(codes).view(len(codes), 256, 4, 4)
        return centre_crop(torch.sigmoid(self.deconv(grid)), self.size)


def centre_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    top = (images.shape[-2] - size) // 2
    left = (images.shape[-1] - size) // 2
    return images[..., top : top + size, left : left + size]


class Generator(nn.Module):
    """G with the facts synthesis needs: the code layer it inverts, the input it draws, and the
    per-unit code bounds [0, mean + 3·std] over the training codes (DGN-AM's `act_range`)."""

    def __init__(
        self,
        code_dim: int,
        input_shape: tuple[int, int, int],
        width: int,
        code_shape: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        channels, size, _ = input_shape
        self.code_dim, self.input_shape, self.width = code_dim, tuple(input_shape), width
        self.code_shape = tuple(code_shape or (code_dim,))  # the code layer's output per image
        body = UpconvGenerator if size >= UPCONV_FROM else SmallGenerator
        self.body = body(code_dim, channels, size, width, self.code_shape)
        for name in ("lower", "upper", "mean", "std"):
            self.register_buffer(name, torch.zeros(code_dim))
        self.register_buffer("scale", torch.ones(()))  # mean |h| of the training codes

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.body(codes)

    def clip(self, codes: torch.Tensor) -> torch.Tensor:
        return torch.maximum(torch.minimum(codes, self.upper), self.lower)

    def set_code_statistics(self, codes: torch.Tensor) -> None:
        mean, std = codes.mean(0), codes.std(0)
        self.mean.copy_(mean)
        self.std.copy_(std)
        self.lower.copy_(torch.minimum(codes.min(0).values, torch.zeros_like(mean)))
        self.upper.copy_(mean + 3 * std)
        self.scale.copy_(codes.abs().mean())

    def meta(self) -> dict[str, Any]:
        return {
            "kind": "generator",
            "code_dim": self.code_dim,
            "input_shape": list(self.input_shape),
            "code_shape": list(self.code_shape),
            "width": self.width,
        }


class CodeDAE(nn.Module):
    """A fully connected denoising autoencoder on codes (PPGN-h): trained to undo Gaussian
    noise of std sigma, R(h) − h estimates sigma² · ∇ log p(h)."""

    def __init__(self, code_dim: int, hidden: int, sigma: float) -> None:
        super().__init__()
        self.code_dim, self.hidden, self.sigma = code_dim, hidden, sigma
        self.net = nn.Sequential(
            nn.Linear(code_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, code_dim),
        )  # fmt: skip
        self.register_buffer("std", torch.ones(code_dim))

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """The denoised codes R(h), in the codes' own scale."""
        return self.net(codes / self.std) * self.std

    def meta(self) -> dict[str, Any]:
        return {"kind": "dae", "code_dim": self.code_dim, "hidden": self.hidden,
                "sigma": self.sigma}  # fmt: skip


def build(meta: Mapping[str, Any]) -> nn.Module:
    """An untrained prior of the kind and shape a checkpoint's `meta` describes."""
    if meta["kind"] == "generator":
        shape = tuple(meta["input_shape"])
        return Generator(int(meta["code_dim"]), shape, int(meta["width"]), meta.get("code_shape"))
    if meta["kind"] == "dae":
        return CodeDAE(int(meta["code_dim"]), int(meta["hidden"]), float(meta["sigma"]))
    raise KeyError(f"unknown prior kind {meta['kind']!r}")
