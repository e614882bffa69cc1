"""The optimization loops: the paper's octave ascent, decay ascent, Adam on a parameterization."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from conftest import generators

from facetviz.model.networks import Network
from facetviz.synthesis.objectives import Forward, Unit, units
from facetviz.synthesis.param import Canvas, FourierImage, Pixels
from facetviz.synthesis.render import (
    Result,
    decay_ascent,
    octave_ascent,
    parameterized_ascent,
)
from facetviz.synthesis.schedules import MFV, scaled

TARGETS = [Unit("classifier.5", 0), Unit("features.6", 1, "center"), Unit("classifier.2", 3)]


@pytest.fixture(scope="module")
def forward(random_network: Network) -> Forward:
    return Forward(random_network)


def test_octave_ascent_raises_the_objective_and_keeps_pixels_valid(forward: Forward) -> None:
    objective = units(TARGETS)
    start = torch.full((3, 1, 28, 28), 0.5)
    octaves = scaled(MFV, 28, steps_scale=0.05)
    result = octave_ascent(
        forward, {"activation": objective}, Canvas(start), octaves, 28, generators(3), 5
    )
    assert result.images.shape == start.shape and not result.images.requires_grad
    assert result.trace.shape == (sum(o.steps for o in octaves), 3)
    assert result.trace.device.type == "cpu"  # copied from the device once, at the end
    assert result.images.min() >= 0 and result.images.max() <= 1
    with torch.no_grad():
        assert torch.all(forward(objective, result.images) > forward(objective, start))
    assert torch.equal(start, torch.full((3, 1, 28, 28), 0.5))  # the start is not modified


def test_octave_ascent_is_reproducible_per_seed(forward: Forward) -> None:
    objective = {"activation": units(TARGETS[:2])}
    start = Canvas(torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(5)))
    octaves = scaled(MFV, 28, steps_scale=0.03)
    first = octave_ascent(forward, objective, start, octaves, 28, generators(2, 1), 5).images
    again = octave_ascent(forward, objective, start, octaves, 28, generators(2, 1), 5).images
    other = octave_ascent(forward, objective, start, octaves, 28, generators(2, 2), 5).images
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_tv_step_makes_the_octave_ascent_smoother(forward: Forward) -> None:
    objective = {"activation": units([Unit("classifier.5", 1)] * 2)}
    noise = Canvas(torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(3)))
    rough = [replace(o, tv_weight=(1e6, 1e6)) for o in scaled(MFV, 28, 0.03)]
    smooth = [replace(o, tv_weight=(0.01, 0.01)) for o in scaled(MFV, 28, 0.03)]

    def roughness(images: torch.Tensor) -> float:
        return float((images[..., 1:, :] - images[..., :-1, :]).abs().mean())

    a = octave_ascent(forward, objective, noise, rough, 28, generators(2), 10).images
    b = octave_ascent(forward, objective, noise, smooth, 28, generators(2), 10).images
    assert roughness(b) < 0.5 * roughness(a)


def test_margin_freezes_the_border(forward: Forward) -> None:
    objective = {"activation": units([Unit("classifier.5", 2)])}
    start = Canvas(torch.full((1, 1, 28, 28), 0.5))
    octave = scaled(MFV, 28)[2]  # margin 6 px, no scaling
    frozen = replace(octave, steps=5, window=0.0, tv_weight=(1e9, 1e9))
    images = octave_ascent(forward, objective, start, [frozen], 28, generators(1), 1).images
    # canvas 32 px, centred 28 px crop at offset 2: rows 0..7 of the canvas never move
    moved = (images - 0.5).abs()[0, 0]
    assert moved[:6].max() < 0.02 and moved[12:16, 12:16].max() > 0


def test_decay_ascent_priors(forward: Forward) -> None:
    objective = units(TARGETS)
    start = Pixels(torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(4)))
    plain = decay_ascent(forward, objective, start, 15, 0.02, 0.0, generators(3))
    with torch.no_grad():
        assert torch.all(forward(objective, plain.images) > forward(objective, start.start))
    decayed = decay_ascent(forward, objective * 0.0, start, 10, 1e-9, 0.5, generators(3))
    assert (decayed.images - 0.5).abs().max() < 0.01  # decay pulls every pixel to gray
    clipped = decay_ascent(
        forward, objective, start, 1, 1e-9, 0.0, generators(3), clip_percentile=50
    )
    share_gray = (clipped.images == 0.5).float().mean()
    assert 0.45 < share_gray < 0.55


def test_parameterized_ascent_raises_the_objective(forward: Forward) -> None:
    objective = units(TARGETS)
    image = FourierImage(3, 1, 28, generator=generators(3))
    with torch.no_grad():
        before = forward(objective, image.start)
    result = parameterized_ascent(forward, objective, image, 20, 0.05, lambda x: x)
    assert result.trace.shape == (20, 3)
    with torch.no_grad():
        assert torch.all(forward(objective, result.images) > before)


def test_a_result_names_its_first_non_finite_value() -> None:
    images = torch.rand(3, 1, 4, 4)
    trace = torch.ones(5, 3)
    assert Result(images, trace).first_nonfinite() is None
    trace[3, 2], trace[4, 1] = float("nan"), float("inf")
    assert Result(images, trace).first_nonfinite() == (2, 3)
    bad_images = images.clone()
    bad_images[1, 0, 2, 2] = float("nan")
    assert Result(bad_images, torch.ones(5, 3)).first_nonfinite() == (1, 5)
