"""The octave schedules of the paper's released code, and their scaling to other input sizes.

The numbers are the authors' (docs/design.md §1) for CaffeNet's 227 px input on 0-255 pixels:
step sizes are mean pixel change per step on that scale and TV weights are
`skimage.restoration.denoise_tv_bregman` weights (smaller smooths more). The loop converts both
to [0, 1] pixels (`render.octave_ascent`); here only sizes and step counts are scaled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

PAPER_SIZE = 227
# Caffe's ImageNet images are 256 px and the network sees 227 px crops of them: the canvas that
# the jitter crops move over starts that much larger than the input.
CANVAS_RATIO = 256 / 227


@dataclass(frozen=True)
class Octave:
    steps: int
    step_size: tuple[float, float]  # start -> end, linear over the octave (0-255 pixel scale)
    tv_weight: tuple[float, float]  # bregman weight, start -> end, linear over the octave
    window: float  # std of the crop offset as a share of the canvas's excess over the input
    scale: float = 1.0  # the canvas is upscaled by this at the octave's start
    margin: int = 0  # px (at 227) at the crop's border whose gradient is zeroed
    objective: str = "activation"  # or "probability": softmax of a class layer
    to_input_size: bool = False  # resize the canvas to the model's input size first


# opt_from_mean: facet mean image -> fc8 unit, 370 steps.
MFV = (
    Octave(190, (1.0, 2.0), (0.4, 0.8), window=0.3),
    Octave(150, (1.0, 1.0), (0.01, 2.0), window=0.3, scale=1.2),
    Octave(20, (2.0, 2.0), (0.1, 2.0), window=0.2, margin=50),
    Octave(10, (2.0, 2.0), (0.36, 2.2), window=0.3, to_input_size=True),
)

# Centre-biased regularization from gray + noise, 530 steps: the first octaves on the softmax
# probability, strong smoothing relaxed over time (a blurry whole object, then detail).
CBR = (
    Octave(190, (11.0, 11.0), (0.001, 0.01), window=0.3, objective="probability"),
    Octave(150, (6.0, 6.0), (0.01, 0.1), window=0.3, scale=1.2, objective="probability"),
    Octave(150, (1.0, 1.0), (0.1, 0.5), window=0.3, scale=1.2),
    Octave(30, (3.0, 3.0), (0.5, 1.0), window=0.2, margin=50),
    Octave(10, (6.0, 3.0), (1.0, 2.0), window=0.3, to_input_size=True),
)
CBR_GRAY = 175.0  # mean and std of the start image on the 0-255 scale
CBR_NOISE = 8.0

SCHEDULES = {"mfv": MFV, "cbr": CBR}


def scaled(octaves: tuple[Octave, ...], size: int, steps_scale: float = 1.0) -> list[Octave]:
    """The schedule for a `size` px input: margins in proportion, steps times `steps_scale`."""
    return [
        replace(
            octave,
            steps=max(1, math.ceil(octave.steps * steps_scale)),
            margin=round(octave.margin * size / PAPER_SIZE),
        )
        for octave in octaves
    ]


def canvas_size(size: int) -> int:
    return round(size * CANVAS_RATIO)


def interpolate(bounds: tuple[float, float], step: int, steps: int) -> float:
    """Linear from bounds[0] at the first step to bounds[1] at the last."""
    start, end = bounds
    return start if steps <= 1 else start + (end - start) * step / (steps - 1)


def scaled_pixels(pixels_at_224: int, size: int) -> int:
    """A transform's pixel amount given for 224 px inputs (Lucid's), at `size` px, at least 1."""
    return max(1, round(pixels_at_224 * size / 224))
