"""The synthesis methods, compared side by side: the paper's and the survey's baselines.

- `mfv`: the paper. From each facet's mean image, the released code's octave schedule; with
  `facet_weight` > 0 the unit's objective loses that weight × the unit's mean activation × the
  cosine distance of the image's facet-layer code to its facet's centroid code (our addition:
  the mean image alone does not keep the facet).
- `cbr`: the paper's centre-biased regularization from gray + noise.
- `plain`: gradient ascent from noise with L2 decay (Simonyan et al. 2014).
- `hand`: L2 decay, Gaussian blur every few steps, clipping of small-norm pixels
  (Yosinski et al. 2015).
- `fourier`: Fourier parameterization with decorrelated colour, random pad/jitter/scale/rotate,
  Adam (Olah et al. 2017).
- `diversity`: `fourier` plus a penalty on the similarity of a unit's k images in the facet
  layer's code, the usual alternative to facets (as Lucid's diversity objective).

Each method takes a `Task` (the images of one job: their units, facet mean images and
generators) and returns a `render.Result`. Settings per method have the defaults below, which
the config overrides (`synthesis.<method>`); `steps_scale` multiplies every step count.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from facetviz.errors import ConfigError, FacetvizError
from facetviz.models import Network, capture
from facetviz.synthesis.objectives import Unit, batch_objective
from facetviz.synthesis.param import FourierImage
from facetviz.synthesis.regularizers import facet_distance
from facetviz.synthesis.render import (
    Result,
    decay_ascent,
    octave_ascent,
    parameterized_ascent,
)
from facetviz.synthesis.schedules import (
    CBR_GRAY,
    CBR_NOISE,
    SCHEDULES,
    scaled,
    scaled_pixels,
)
from facetviz.synthesis.transforms import jitter, pad, scale_rotate

DEFAULTS: dict[str, dict[str, Any]] = {
    # steps_scale: share of the paper's schedule (times synthesis.steps_scale)
    # facet_weight: weight of the facet-keeping term (0: the paper's objective)
    "mfv": {"tv_iterations": 20, "steps_scale": 1.0, "facet_weight": 0.0},
    "cbr": {"tv_iterations": 20, "steps_scale": 1.0},
    "plain": {"steps": 200, "step_size": 0.01, "decay": 0.005, "noise": 0.1},
    "hand": {
        "steps": 1000,
        "step_size": 0.01,
        "decay": 1e-4,
        "blur_every": 4,
        "blur_sigma": 1.0,
        "clip_percentile": 10.0,
        "jitter": 1,
        "noise": 0.1,
    },
    "fourier": {"steps": 512, "learning_rate": 0.05, "decay_power": 1.0},
    "diversity": {"steps": 512, "learning_rate": 0.05, "decay_power": 1.0, "weight": 10.0},
}
METHODS = tuple(DEFAULTS)


@dataclass
class Task:
    """The images one job optimizes: image i maximizes units[i]; `groups` are each neuron's."""

    units: list[Unit]
    mean_images: torch.Tensor  # [B, C, H, W] facet mean images, pixels in [0, 1]
    groups: list[slice]
    generators: list[torch.Generator]
    facet_layer: str
    # which images maximize a class unit: only those switch to the softmax probability in the
    # octaves that ask for it (a hidden unit has no class distribution to take it from)
    class_units: list[bool] | None = None
    # mfv's facet-keeping term only: each image's facet centroid in the facet layer [B, d] (the
    # facets stage's code_centroids) and its unit's mean activation over the clustered images [B]
    facet_codes: torch.Tensor | None = None
    unit_scales: torch.Tensor | None = None

    @property
    def size(self) -> int:
        return int(self.mean_images.shape[-1])


def method_settings(method: str, overrides: dict[str, Any] | None) -> dict[str, Any]:
    if method not in DEFAULTS:
        raise ConfigError(f"synthesis.methods: unknown method {method!r}; use {', '.join(METHODS)}")
    unknown = set(overrides or {}) - set(DEFAULTS[method])
    if unknown:
        raise ConfigError(
            f"synthesis.{method}: unknown setting(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(DEFAULTS[method])}"
        )
    return {**DEFAULTS[method], **(overrides or {})}


def _steps(count: int, steps_scale: float) -> int:
    return max(1, math.ceil(count * steps_scale))


def _noise(task: Task, mean: float, std: float) -> torch.Tensor:
    shape = task.mean_images.shape[1:]
    noise = torch.stack([torch.randn(shape, generator=g) for g in task.generators])
    return (mean + std * noise).clamp(0, 1).to(task.mean_images.device)


def _start_images(method: str, task: Task, settings: dict[str, Any]) -> torch.Tensor:
    if method == "mfv":
        return task.mean_images
    if method == "cbr":
        return _noise(task, CBR_GRAY / 255, CBR_NOISE / 255)
    return _noise(task, 0.5, settings["noise"])


def _fourier(task: Task, settings: dict[str, Any]) -> FourierImage:
    batch, channels, size, _ = task.mean_images.shape
    # generators of their own, derived from each image's seed, for the spectrum's draw
    seeds = [g.initial_seed() ^ 0x5EED for g in task.generators]
    image = FourierImage(
        batch,
        channels,
        size,
        decay_power=settings["decay_power"],
        generator=[torch.Generator().manual_seed(s) for s in seeds],
    )
    return image.to(task.mean_images.device)


def _robustness(task: Task) -> Callable[[torch.Tensor], torch.Tensor]:
    """Lucid's standard transforms, their pixel amounts scaled from 224 px to the input size."""
    size, generators = task.size, task.generators
    scales = [1 + (i - 5) / 50 for i in range(11)]
    angles = list(range(-10, 11))

    def transform(images: torch.Tensor) -> torch.Tensor:
        images = jitter(pad(images, scaled_pixels(12, size)), scaled_pixels(8, size), generators)
        images = scale_rotate(images, scales, angles, generators)
        images = jitter(images, scaled_pixels(4, size), generators)
        margin = (images.shape[-1] - size) // 2
        return images[..., margin : margin + size, margin : margin + size]

    return transform


def _minus_code_penalty(
    network: Network,
    objective: Callable[[torch.Tensor], torch.Tensor],
    facet_layer: str,
    penalty: Callable[[torch.Tensor], torch.Tensor],
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The objective minus a penalty [B] on the images' codes in the facet layer, captured in
    the same forward pass."""

    def penalized(pixels: torch.Tensor) -> torch.Tensor:
        with capture(network.module, [facet_layer]) as outputs:
            values = objective(pixels)
        return values - penalty(outputs[facet_layer])

    return penalized


def _with_diversity(
    network: Network,
    objective: Callable[[torch.Tensor], torch.Tensor],
    task: Task,
    weight: float,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The objective minus `weight` × each image's mean cosine similarity, in the facet layer's
    code, to the other images of its neuron."""

    def similarity_penalty(layer_codes: torch.Tensor) -> torch.Tensor:
        codes = F.normalize(layer_codes.flatten(1).float(), dim=1)
        penalty = torch.zeros(len(codes), device=codes.device)
        for group in task.groups:
            count = group.stop - group.start
            if count < 2:
                continue
            similarity = codes[group] @ codes[group].T
            others = (similarity.sum(1) - similarity.diagonal()) / (count - 1)
            penalty = penalty.index_add(
                0, torch.arange(group.start, group.stop, device=codes.device), others
            )
        return weight * penalty

    return _minus_code_penalty(network, objective, task.facet_layer, similarity_penalty)


def _with_facet_keeping(
    network: Network,
    objective: Callable[[torch.Tensor], torch.Tensor],
    task: Task,
    weight: float,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The objective minus `weight` × |the unit's mean activation| × the cosine distance of each
    image's facet-layer code to its facet's centroid code: ascent on the unit may raise the code,
    not turn it to another facet (a class unit's strongest facet otherwise absorbs the others).

    The unit's mean activation (over the images its facets were found in) puts the term in the
    unit's own scale, so one weight suits a logit of ~10 and a conv channel of ~1 alike; it is
    the unit's, not the facet's, so a weaker facet is held as firmly as a strong one.
    """
    if task.facet_codes is None or task.unit_scales is None:
        raise FacetvizError(
            "synthesis.mfv.facet_weight > 0 needs each facet's centroid code (code_centroids "
            "in the facet file): rerun the facets stage (snakemake --forcerun facets)"
        )
    centroids, scale = task.facet_codes, weight * task.unit_scales.abs()
    return _minus_code_penalty(
        network,
        objective,
        task.facet_layer,
        lambda codes: scale * facet_distance(codes, centroids),
    )


def run_method(
    method: str,
    network: Network,
    task: Task,
    settings: dict[str, Any],
    steps_scale: float = 1.0,
    mixed_precision: bool = False,
) -> tuple[Result, torch.Tensor]:
    """Optimize the task's images with `method` (settings: `method_settings`' result).

    Returns the result and the images the method started from.
    """
    activation = batch_objective(network, task.units, mixed_precision)
    name = f"{method} ({len(task.units)} images)"
    if method in SCHEDULES:
        classes = task.class_units or [False] * len(task.units)
        units = zip(task.units, classes, strict=True)
        probability = batch_objective(
            network, [u.as_kind("probability") if c else u for u, c in units], mixed_precision
        )
        objectives = {"activation": activation, "probability": probability}
        if settings.get("facet_weight", 0.0) > 0:
            objectives = {
                kind: _with_facet_keeping(network, f, task, settings["facet_weight"])
                for kind, f in objectives.items()
            }
        start = _start_images(method, task, settings)
        result = octave_ascent(
            objectives,
            start,
            scaled(SCHEDULES[method], task.size, steps_scale * settings["steps_scale"]),
            task.size,
            task.generators,
            settings["tv_iterations"],
            name,
        )
        return result, start
    if method in ("plain", "hand"):
        hand = method == "hand"
        start = _start_images(method, task, settings)
        result = decay_ascent(
            activation,
            start,
            _steps(settings["steps"], steps_scale),
            settings["step_size"],
            settings["decay"],
            task.generators,
            jitter_pixels=settings["jitter"] if hand else 0,
            blur_every=settings["blur_every"] if hand else 0,
            blur_sigma=settings["blur_sigma"] if hand else 0.0,
            clip_percentile=settings["clip_percentile"] if hand else 0.0,
            name=name,
        )
        return result, start
    objective = activation
    if method == "diversity":
        objective = _with_diversity(network, activation, task, settings["weight"])
    parameterization = _fourier(task, settings)
    with torch.no_grad():
        start = parameterization()
    result = parameterized_ascent(
        objective,
        parameterization,
        _steps(settings["steps"], steps_scale),
        settings["learning_rate"],
        _robustness(task),
        name,
    )
    return result, start
