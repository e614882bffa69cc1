"""Colour scenes of Fashion-MNIST garments: the second embedded ground truth (dataset.kind
fashion_scenes, `scene_data.FashionScenesData`).

Each garment is tinted (a random colour times its intensity), scaled (its side a random share
of the canvas side, `dataset.garment_scale`) and placed anywhere fully inside an RGB canvas over
a textured background: a random colour, low-frequency noise, and stripes or checks of a second
colour (or neither). Where position, colour and clutter meet the method, as on ImageNet, while
every image keeps its garment's class as its label.

A scene is a function of (dataset.scene_seed, split, image index) alone: its random numbers come
from a generator seeded with those three, never with the label, the training seed or the other
images rendered with it. So the same index always gives the same scene, in any subset or order,
and the background cannot give the class away (tests/unit/data/test_scenes.py). Scenes render
in batches (`SceneMaker.render`): numpy's per-call cost would otherwise dominate at 40 px.
"""

from __future__ import annotations

import colorsys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
import torch.nn.functional as F

SPLIT_CODES = {"train": 0, "test": 1}  # a scene's seed names its split by number
GARMENT_SIDE = 28  # Fashion-MNIST's
NOISE_GRID = 4  # low-frequency noise: a 4 x 4 grid per channel, upsampled to the canvas
NOISE_STD = 0.08
ALPHA_GAIN = 4.0  # garment pixels above a quarter of full intensity hide the background
PATTERNS = ("none", "stripes", "checks")
PATTERN_CUMULATIVE = (0.2, 0.6)  # none 20 %, stripes 40 %, checks 40 %
UNIFORMS = 18  # the uniform numbers a scene draws (SceneMaker.draw)


@dataclass(frozen=True)
class SceneLayout:
    """Where the garment of a scene lies: its square's top-left pixel and side, in pixels."""

    top: int
    left: int
    side: int


@dataclass(frozen=True)
class SceneDraw:
    """Every random number of one scene (`SceneMaker.draw`)."""

    layout: SceneLayout
    tint: np.ndarray  # [3] the garment's colour at full intensity
    base: np.ndarray  # [3] the background's colour
    second: np.ndarray  # [3] the pattern's colour
    noise: np.ndarray  # [3, NOISE_GRID, NOISE_GRID]
    pattern: int  # index in PATTERNS
    period: float  # of the stripes or checks, in pixels
    angle: float
    phases: tuple[float, float]
    strength: float  # how far the pattern moves the base colour towards the second


class SceneMaker:
    """Draws and renders the scenes of one split: `render(garments, indices)`."""

    def __init__(
        self, canvas: int, garment_scale: tuple[float, float], scene_seed: int, split: str
    ) -> None:
        self.canvas = canvas
        self.garment_scale = (float(garment_scale[0]), float(garment_scale[1]))
        self.scene_seed = int(scene_seed)
        self.split_code = SPLIT_CODES[split]

    def rng(self, index: int) -> np.random.Generator:
        """The generator of image `index`'s scene: seeded by (scene seed, split, index) only."""
        return np.random.default_rng([self.scene_seed, self.split_code, int(index)])

    def draw(self, index: int) -> SceneDraw:
        """Scene `index`'s numbers: one batch of uniforms and one of normals (a call per
        number would cost more than the rendering), read in a fixed order."""
        rng = self.rng(index)
        u = iter(rng.random(UNIFORMS))
        noise = rng.normal(0.0, NOISE_STD, size=(3, NOISE_GRID, NOISE_GRID))
        low, high = self.garment_scale
        side = min(self.canvas, max(1, round(_between(next(u), low, high) * self.canvas)))
        room = self.canvas - side + 1
        layout = SceneLayout(int(next(u) * room), int(next(u) * room), side)
        tint = _colour(u, saturation=(0.4, 1.0), value=(0.75, 1.0))
        base = _colour(u, saturation=(0.1, 0.9), value=(0.1, 0.8))
        second = _colour(u, saturation=(0.1, 0.9), value=(0.1, 0.9))
        pattern = int(np.searchsorted(PATTERN_CUMULATIVE, next(u), side="right"))
        period = _between(next(u), 0.12, 0.35) * self.canvas
        angle = next(u) * np.pi
        phases = (next(u) * 2 * np.pi, next(u) * 2 * np.pi)
        strength = _between(next(u), 0.4, 0.9)
        return SceneDraw(layout, tint, base, second, noise, pattern, period, angle, phases,
                         strength)  # fmt: skip

    def layout(self, index: int) -> SceneLayout:
        return self.draw(index).layout

    def render(self, garments: np.ndarray, indices: Sequence[int]) -> np.ndarray:
        """The scenes of `indices` with their `garments` (uint8 [n, 28, 28], Fashion-MNIST's)
        as uint8 [n, 3, canvas, canvas], rounded as an 8-bit image file would be."""
        draws = [self.draw(index) for index in indices]
        canvas = self.backgrounds(draws)
        intensity = self.placed_garments(garments, draws)[:, None]  # [n, 1, canvas, canvas]
        alpha = np.clip(ALPHA_GAIN * intensity, 0.0, 1.0)
        garment = _stacked(draws, "tint")[:, :, None, None] * intensity
        garment -= canvas
        garment *= alpha
        canvas += garment  # canvas + alpha (garment - canvas), in place
        canvas *= 255.0
        return np.rint(canvas, out=canvas).astype(np.uint8)

    def backgrounds(self, draws: Sequence[SceneDraw]) -> np.ndarray:
        """[n, 3, canvas, canvas] in [0, 1]: base colour, pattern of the second, and noise."""
        up = _resampling(self.canvas, NOISE_GRID)
        base, second = _stacked(draws, "base"), _stacked(draws, "second")
        strength = _stacked(draws, "strength")[:, None, None]
        weight = (strength * _patterns(self.canvas, draws))[:, None]
        # in place on float32: at 40 px these passes cost more than the arithmetic
        canvas = (second - base)[:, :, None, None] * weight
        canvas += base[:, :, None, None]
        canvas += up @ _stacked(draws, "noise") @ up.T
        return np.clip(canvas, 0.0, 1.0, out=canvas)

    def placed_garments(self, garments: np.ndarray, draws: Sequence[SceneDraw]) -> np.ndarray:
        """[n, canvas, canvas]: each garment's intensity in [0, 1], resized to its side and
        placed where its layout says, 0 elsewhere. Garments of one side resize together."""
        placed = np.zeros((len(draws), self.canvas, self.canvas), dtype=np.float32)
        sides = np.array([draw.layout.side for draw in draws], dtype=np.int64)
        for side in np.unique(sides):
            members = np.flatnonzero(sides == side)
            shrink = _resampling(int(side), GARMENT_SIDE)
            resized = shrink @ (garments[members].astype(np.float32) / 255.0) @ shrink.T
            for member, garment in zip(members, np.clip(resized, 0.0, 1.0), strict=True):
                top, left = draws[member].layout.top, draws[member].layout.left
                placed[member, top : top + side, left : left + side] = garment
        return placed


def _stacked(draws: Sequence[SceneDraw], field: str) -> np.ndarray:
    """One field of every draw, stacked on a first axis, as float32."""
    return np.array([getattr(draw, field) for draw in draws], dtype=np.float32)


def _between(uniform: float, low: float, high: float) -> float:
    return low + (high - low) * uniform


def _colour(
    uniforms: Iterator[float], saturation: tuple[float, float], value: tuple[float, float]
) -> np.ndarray:
    """A colour of any hue, its saturation and value in the given ranges, as RGB."""
    hue = next(uniforms)
    sat, val = _between(next(uniforms), *saturation), _between(next(uniforms), *value)
    return np.array(colorsys.hsv_to_rgb(hue, sat, val))


def _patterns(canvas: int, draws: Sequence[SceneDraw]) -> np.ndarray:
    """[n, canvas, canvas] in [0, 1]: where each scene's second colour shows (nowhere for
    none). Stripes along the scene's angle, checks on axes turned by it; edges sharpened but
    smooth."""
    kind = np.array([draw.pattern for draw in draws])
    angle, period = _stacked(draws, "angle"), _stacked(draws, "period")
    phases = _stacked(draws, "phases").reshape(len(draws), 2)
    steps = np.float32(2 * np.pi) * _positions(canvas)[None, :] / period[:, None]  # [n, canvas]
    cos, sin = np.cos(angle), np.sin(angle)
    wave = _plane_waves(steps, cos, sin, phases[:, 0])
    checks = kind == PATTERNS.index("checks")
    wave[checks] *= _plane_waves(steps[checks], -sin[checks], cos[checks], phases[checks, 1])
    shown = (kind != PATTERNS.index("none"))[:, None, None]
    wave *= 2.0
    wave += 0.5
    return np.clip(wave, 0.0, 1.0, out=wave) * shown


def _plane_waves(
    steps: np.ndarray, along_x: np.ndarray, along_y: np.ndarray, phase: np.ndarray
) -> np.ndarray:
    """sin(x·along_x + y·along_y + phase) per scene, x and y in `steps` (radians per pixel
    position), as the sum of two outer products of one-side vectors (sin(a + b) = sin a cos b +
    cos a sin b): sines per side, not per pixel."""
    across = steps * along_x[:, None] + phase[:, None]  # along the columns
    down = steps * along_y[:, None]  # along the rows
    return (
        np.cos(down)[:, :, None] * np.sin(across)[:, None, :]
        + np.sin(down)[:, :, None] * np.cos(across)[:, None, :]
    )


@cache
def _positions(canvas: int) -> np.ndarray:
    """Pixel positions along a side of the canvas, centred."""
    return np.arange(canvas, dtype=np.float32) - np.float32((canvas - 1) / 2)


@cache
def _resampling(out_side: int, in_side: int) -> np.ndarray:
    """[out_side, in_side]: bilinear resampling along one axis (antialiased when shrinking);
    an image X resizes as R @ X @ R.T. torch's own filter, so that it matches F.interpolate."""
    basis = torch.eye(in_side, dtype=torch.float32).reshape(in_side, 1, 1, in_side)
    rows = F.interpolate(
        basis, size=(1, out_side), mode="bilinear", align_corners=False, antialias=True
    )
    return rows[:, 0, 0, :].T.numpy().copy()
