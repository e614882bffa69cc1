"""Image parameterizations: what the optimizer updates, and how it becomes an image in [0, 1].

Each has `start`, the images it begins from. `Pixels` are updated directly (plain, hand);
`Canvas` is the paper's upscaled canvas that centre-biased crops are cut from (mfv, cbr);
`FourierImage` is the Fourier-basis, decorrelated-colour parameterization of Olah et al. (2017,
"Feature Visualization"): the optimizer moves the coefficients of a spectrum whose amplitudes
fall off as 1/frequency, so a gradient step changes every frequency about equally in the
image's natural statistics instead of mostly adding high-frequency noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Pixels:
    """Images optimized pixel by pixel, from `start` [B, C, H, W] in [0, 1]."""

    start: torch.Tensor


@dataclass(frozen=True)
class Canvas:
    """The paper's canvas: `start` resized to a canvas larger than the input (Caffe's 256 px
    for a 227 px crop), upscaled between octaves; each step optimizes a crop of it."""

    start: torch.Tensor


# Square root of the colour covariance of ImageNet pixels (RGB; from its eigendecomposition, as
# documented by Lucid). Mapping independent channels through it gives natural colour statistics.
IMAGENET_COLOR_CORRELATION = torch.tensor(
    [
        [0.26, 0.09, 0.02],
        [0.27, 0.00, -0.05],
        [0.27, -0.09, 0.03],
    ]
)


def _normalized_color_correlation() -> torch.Tensor:
    # Dividing by the largest column norm keeps a unit step in any decorrelated channel at most
    # a unit step in RGB.
    matrix = IMAGENET_COLOR_CORRELATION
    return matrix / matrix.norm(dim=0).max()


def spectrum_scale(height: int, width: int, decay_power: float = 1.0) -> torch.Tensor:
    """Amplitude 1/frequency^decay_power for each coefficient of an rfft2 spectrum [H, W//2+1].

    Frequencies are in cycles per pixel; the zero frequency is floored at 1/max(H, W) (the lowest
    one the image holds) so the mean is not infinitely amplified.
    """
    fy = torch.fft.fftfreq(height).unsqueeze(1)
    fx = torch.fft.rfftfreq(width).unsqueeze(0)
    frequency = torch.sqrt(fx.square() + fy.square())
    return frequency.clamp_min(1.0 / max(height, width)).pow(-decay_power)


class FourierImage(torch.nn.Module):
    """A batch of images [B, C, H, W] in (0, 1) parameterized by a 1/f-scaled Fourier spectrum.

    The learnable `spectrum` [B, C, H, W//2+1, 2] (real and imaginary parts) starts as
    N(0, sd²) white noise; it is multiplied by `spectrum_scale` and inverted with an orthonormal
    inverse real FFT. Three channels are then mixed by the normalised ImageNet colour-correlation
    matrix (the optimizer works in decorrelated colour); other channel counts (e.g. 1 for
    Fashion-MNIST) are used as they are. A sigmoid maps the result into (0, 1).

    `generator` is one generator for the batch, or one per image: then each image's
    initialization does not depend on its batch-mates (as in `transforms.jitter`).
    """

    def __init__(
        self,
        batch: int,
        channels: int,
        size: int | tuple[int, int],
        decay_power: float = 1.0,
        sd: float = 0.01,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
    ) -> None:
        super().__init__()
        height, width = (size, size) if isinstance(size, int) else size
        if batch < 1 or channels < 1 or height < 1 or width < 1:
            raise ValueError(
                f"batch, channels and size must be positive: {batch}, {channels}, {size}"
            )
        self.height, self.width = height, width
        shape = (channels, height, width // 2 + 1, 2)
        if generator is None or isinstance(generator, torch.Generator):
            noise = torch.randn((batch, *shape), generator=generator)
        else:
            if len(generator) != batch:
                raise ValueError(f"{len(generator)} generators for a batch of {batch}")
            noise = torch.stack([torch.randn(shape, generator=g) for g in generator])
        self.spectrum = torch.nn.Parameter(sd * noise)
        self.register_buffer("scale", spectrum_scale(height, width, decay_power))
        self.register_buffer(
            "color", _normalized_color_correlation() if channels == 3 else torch.empty(0)
        )

    @property
    def start(self) -> torch.Tensor:
        with torch.no_grad():
            return self()

    def forward(self) -> torch.Tensor:
        coefficients = torch.view_as_complex(self.spectrum) * self.scale
        images = torch.fft.irfft2(coefficients, s=(self.height, self.width), norm="ortho")
        if self.color.numel():
            images = torch.einsum("ck,bkhw->bchw", self.color, images)
        return torch.sigmoid(images)


class GeneratorImage(torch.nn.Module):
    """Images G(h) of a learned generator's codes h [B, D] (the learned prior of DGN-AM and
    PPGN): optimizing h keeps every image on what G can draw. `start` is G(h) at the start."""

    def __init__(self, generator: torch.nn.Module, codes: torch.Tensor) -> None:
        super().__init__()
        self.generator = generator
        self.codes = codes.detach().clone()
        with torch.no_grad():
            self._start = generator(self.codes)

    @property
    def start(self) -> torch.Tensor:
        return self._start

    def forward(self) -> torch.Tensor:
        return self.generator(self.codes)
