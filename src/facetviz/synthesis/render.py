"""The optimization loops. Each optimizes a whole batch at once, every image its own objective.

- `octave_ascent`: the paper's loop (mfv and cbr): normalized gradient steps on centre-biased
  crops of an upscaled canvas, clipping, and a proximal TV denoising step each step.
- `decay_ascent`: normalized gradient steps with L2 decay and, optionally, the hand-designed
  priors of Yosinski et al. 2015 (periodic Gaussian blur, clipping of small-norm pixels).
- `parameterized_ascent`: Adam on an image parameterization seen through random transforms
  (Olah et al. 2017), optionally through several augmented copies of each image, with a
  cosine learning-rate schedule and a penalty (Ghiasi et al. 2022's recipe: the `vit` method).
- `code_ascent`: normalized steps on a generator's codes, the learned prior (DGN-AM), with the
  prior and noise terms of PPGN's MALA-approx sampler.

Each takes a `Forward` (the network, run once per step under a capture of the objective's
layers) and the objective to maximize. All return `Result`: the images at the model's input
size, pixels in [0, 1], and the trace of what was maximized at each step (per image). The trace
stays on the device until the loop ends: nothing waits for the GPU inside a loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from facetviz.core.progress import Progress
from facetviz.synthesis.objectives import Forward, Objective, Outputs
from facetviz.synthesis.param import Canvas, GeneratorImage, Pixels
from facetviz.synthesis.regularizers import bregman_strength, tv_denoise
from facetviz.synthesis.schedules import PAPER_SIZE, Octave, canvas_size, interpolate
from facetviz.synthesis.transforms import (
    Generators,
    add_to_crops,
    centre_biased_offsets,
    crop,
    gaussian_blur,
    jitter,
    pad,
    resize,
)

PIXEL_SCALE = 255.0  # the paper's step sizes and TV weights are for 0-255 pixels


@dataclass
class Result:
    images: torch.Tensor  # [B, C, H, W] at the model's input size
    trace: torch.Tensor  # [steps, B] on the CPU
    # [S, B, C, H, W] on the CPU: a sampler's chain, S images per image (none for the others)
    samples: torch.Tensor | None = None

    def first_nonfinite(self) -> tuple[int, int] | None:
        """(image, step) of the earliest non-finite value of what was maximized, or of a final
        image with non-finite pixels (step = len(trace)); None when all is finite."""
        bad = ~torch.isfinite(self.trace)
        if bad.any():
            step, image = (int(i) for i in torch.nonzero(bad)[0])
            return image, step
        pixels = ~torch.isfinite(self.images.detach().flatten(1)).all(1)
        if pixels.any():
            return int(torch.nonzero(pixels)[0, 0]), len(self.trace)
        return None


def per_image_mean_abs(tensor: torch.Tensor) -> torch.Tensor:
    """Mean |value| of each image, shaped to broadcast over it (never zero)."""
    return tensor.abs().flatten(1).mean(1).clamp_min(1e-12).view(-1, *([1] * (tensor.ndim - 1)))


def tv_strength(bregman_weight: float, size: int) -> float:
    """The TV step's strength on [0, 1] pixels for the paper's weight, at `size` px.

    The TV proximal step flattens a feature w px wide by about strength / w per step; features
    at `size` px are size/227 as wide as at the paper's 227 px, so the strength shrinks in
    proportion to smooth them as much.
    """
    return bregman_strength(bregman_weight, PIXEL_SCALE) * size / PAPER_SIZE


def _gradient(
    forward: Forward, objective: Objective, pixels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = pixels.detach().requires_grad_(True)
    values = forward(objective, pixels)
    (gradient,) = torch.autograd.grad(values.sum(), pixels)
    return values.detach(), gradient


def octave_ascent(
    forward: Forward,
    objectives: Mapping[str, Objective],
    start: Canvas,
    octaves: list[Octave],
    size: int,
    generators: Generators,
    tv_iterations: int = 20,
    name: str = "synthesis",
) -> Result:
    """The paper's schedule from `start` (any size; resized to the starting canvas).

    `objectives` maps an octave's objective kind ("activation", "probability") to the
    objective to maximize in that octave.
    """
    canvas = resize(start.start.detach().clamp(0, 1), canvas_size(size)).contiguous()
    total = sum(octave.steps for octave in octaves)
    trace = torch.empty(total, len(canvas), device=canvas.device)
    progress = Progress(name, total, "steps")
    done = 0
    for octave in octaves:
        if octave.to_input_size:
            canvas = resize(canvas, size).contiguous()
        elif octave.scale != 1.0:
            canvas = resize(canvas, round(canvas.shape[-1] * octave.scale)).contiguous()
        objective = objectives[octave.objective]
        for step in range(octave.steps):
            offsets = centre_biased_offsets(
                canvas.shape[-1], size, octave.window, generators, len(canvas)
            )
            values, gradient = _gradient(forward, objective, crop(canvas, offsets, size))
            if octave.margin > 0:  # only the crop's centre moves
                keep = torch.zeros_like(gradient)
                m = octave.margin
                keep[..., m : size - m, m : size - m] = 1
                gradient = gradient * keep
            step_size = interpolate(octave.step_size, step, octave.steps) / PIXEL_SCALE
            with torch.no_grad():
                add_to_crops(canvas, offsets, step_size * gradient / per_image_mean_abs(gradient))
                canvas.clamp_(0, 1)
                weight = interpolate(octave.tv_weight, step, octave.steps)
                canvas = tv_denoise(canvas, tv_strength(weight, size), tv_iterations)
            trace[done] = values.float()
            done += 1
            progress.update(1)
    return Result(resize(canvas, size).detach(), trace.cpu())


def decay_ascent(
    forward: Forward,
    objective: Objective,
    start: Pixels,
    steps: int,
    step_size: float,
    decay: float,
    generators: Generators,
    jitter_pixels: int = 0,
    blur_every: int = 0,
    blur_sigma: float = 0.0,
    clip_percentile: float = 0.0,
    name: str = "synthesis",
) -> Result:
    """Normalized gradient ascent with L2 decay towards gray, and optional hand-made priors.

    `step_size` is the mean pixel change per step ([0, 1] pixels); `decay` shrinks the image
    towards 0.5 by that share per step; every `blur_every` steps a Gaussian blur of
    `blur_sigma` px; pixels whose norm (over channels, from gray) is below the
    `clip_percentile` of the image are reset to gray.
    """
    images = start.start.detach().clone().clamp(0, 1)
    trace = torch.empty(steps, len(images), device=images.device)
    progress = Progress(name, steps, "steps")
    for step in range(steps):
        values, gradient = _gradient(forward, objective, jitter(images, jitter_pixels, generators))
        with torch.no_grad():
            images = images + step_size * gradient / per_image_mean_abs(gradient)
            images = 0.5 + (1 - decay) * (images - 0.5)
            if blur_every and (step + 1) % blur_every == 0:
                images = gaussian_blur(images, blur_sigma)
            if clip_percentile > 0:
                norm = (images - 0.5).norm(dim=1, keepdim=True)  # [B, 1, H, W]
                cut = torch.quantile(norm.flatten(1), clip_percentile / 100, dim=1)
                images = torch.where(norm < cut.view(-1, 1, 1, 1), 0.5, images)
            images = images.clamp(0, 1)
        trace[step] = values.float()
        progress.update(1)
    return Result(images.detach(), trace.cpu())


def copy_mean(objective: Objective, copies: int) -> Objective:
    """The objective of a batch seen as `copies` copies, copy-major (`transforms.augment`):
    each image's mean over its copies, every copy evaluated as a batch of its own."""
    if copies == 1:
        return objective

    def value(outputs: Outputs) -> torch.Tensor:
        split = {layer: output.unflatten(0, (copies, -1)) for layer, output in outputs.items()}
        per_copy = [objective({k: v[c] for k, v in split.items()}) for c in range(copies)]
        return torch.stack(per_copy).mean(0)

    return Objective(objective.layers, value)


def parameterized_ascent(
    forward: Forward,
    objective: Objective,
    parameterization: torch.nn.Module,
    steps: int,
    learning_rate: float,
    transform: Callable[[torch.Tensor], torch.Tensor],
    name: str = "synthesis",
    *,
    copies: int = 1,
    betas: tuple[float, float] = (0.9, 0.999),
    cosine: bool = False,
    penalty: Callable[[torch.Tensor], torch.Tensor] | None = None,
    project: Callable[[], None] | None = None,
) -> Result:
    """Adam on the parameters of `parameterization`, whose forward() gives the images.

    `transform` gives `copies` transformed copies of the batch (copy-major), whose objective
    is averaged per image (`copy_mean`); `cosine` anneals the learning rate to 0 over the
    steps; `penalty` ([B], of the untransformed images) is subtracted from the objective;
    `project` runs after each step (e.g. clipping pixels to [0, 1]). The trace is the
    objective, without the penalty.
    """
    optimizer = torch.optim.Adam(parameterization.parameters(), lr=learning_rate, betas=betas)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps) if cosine else None
    objective = copy_mean(objective, copies)
    trace: torch.Tensor | None = None
    progress = Progress(name, steps, "steps")
    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        images = parameterization()
        values = forward(objective, transform(images))
        maximized = values if penalty is None else values - penalty(images)
        (-maximized.sum()).backward()
        optimizer.step()
        if schedule is not None:
            schedule.step()
        if project is not None:
            project()
        if trace is None:
            trace = torch.empty(steps, len(values), device=values.device)
        trace[step] = values.detach().float()
        progress.update(1)
    with torch.no_grad():
        images = parameterization().detach()
    return Result(images, trace.cpu() if trace is not None else torch.empty(0, len(images)))


@dataclass(frozen=True)
class CodeSteps:
    """The schedule of `code_ascent` (DGN-AM's act_max.py; PPGN's sampler.py)."""

    steps: int
    learning_rate: tuple[float, float]  # start -> end, linear; in units of the codes' mean |h|
    decay: float = 0.0  # L2 decay of h per step (released: 0.01)
    jitter_pixels: int = 0  # random translation of G(h) before the network sees it
    prior_weight: float = 0.0  # eps1: weight of the prior term
    noise: float = 0.0  # eps3: std of the noise added to the step's direction
    save_every: int = 0  # keep G(h) every this many steps (a chain's samples)


def code_ascent(
    forward: Forward,
    objective: Objective,
    image: GeneratorImage,
    schedule: CodeSteps,
    generators: Generators,
    project: Callable[[torch.Tensor], torch.Tensor] | None = None,
    prior: Callable[[torch.Tensor, Mapping[str, torch.Tensor]], torch.Tensor] | None = None,
    prior_layers: tuple[str, ...] = (),
    name: str = "synthesis",
) -> Result:
    """Normalized ascent on the generator's codes: d = eps2 ∂objective/∂h + eps1 prior(h) +
    N(0, eps3²); h += lr · mean|h_train| / mean|d| · d, then decay, clipping to the code bounds
    and `project` (the facet constraint). With eps1 = eps3 = 0 this is DGN-AM, else PPGN's
    MALA-approx (`prior` gets h and the captured `prior_layers`, e.g. E(G(h)))."""
    G, codes = image.generator, image.codes.clone()
    trace = torch.empty(schedule.steps, len(codes), device=codes.device)
    samples, progress = [], Progress(name, schedule.steps, "steps")
    size = image.start.shape[-1]
    for step in range(schedule.steps):
        codes = codes.detach().requires_grad_(True)
        pixels = _translated(G(codes), schedule.jitter_pixels, generators, size)
        values, outputs = forward.with_outputs(objective, pixels, prior_layers)
        (direction,) = torch.autograd.grad(values.sum(), codes)
        with torch.no_grad():
            if prior is not None and schedule.prior_weight > 0:
                direction = direction + schedule.prior_weight * prior(codes, outputs)
            if schedule.noise > 0:
                direction = direction + schedule.noise * _draw_normal(generators, codes)
            rate = interpolate(schedule.learning_rate, step, schedule.steps) * G.scale
            codes = codes + rate * direction / per_image_mean_abs(direction)
            codes = G.clip(codes * (1 - schedule.decay))
            if project is not None:
                codes = G.clip(project(codes))
            if schedule.save_every and (step + 1) % schedule.save_every == 0:
                samples.append(G(codes))
        trace[step] = values.detach().float()
        progress.update(1)
    with torch.no_grad():
        images = G(codes)
    image.codes = codes.detach()  # where the codes ended, as a parameterization's parameters do
    stacked = torch.stack(samples).cpu() if samples else torch.empty(0, *images.shape)
    return Result(images, trace.cpu(), stacked)


def _translated(images: torch.Tensor, pixels: int, generators: Generators, size: int):
    """Each image shifted by its own random offset, the border filled with black."""
    if pixels <= 0:
        return images
    moved = jitter(pad(images, pixels, value=0.0), pixels, generators)
    return moved[..., pixels : pixels + size, pixels : pixels + size]


def _draw_normal(generators: Generators, like: torch.Tensor) -> torch.Tensor:
    shape = like.shape[1:]
    draws = [torch.randn(shape, generator=g) for g in generators]
    return torch.stack(draws).to(like.device)
