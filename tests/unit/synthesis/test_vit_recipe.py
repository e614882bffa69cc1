"""Ghiasi et al. 2022's recipe: its transforms (roll, colour affine, copies), the L2 TV penalty,
the `vit` method, and the recipe's transforms in `fourier` (off by default; `preset: vit`)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from conftest import generators, make_task

from facetviz.core.errors import ConfigError
from facetviz.model.networks import Network
from facetviz.synthesis import methods
from facetviz.synthesis.methods import Context, Task, fourier, vit
from facetviz.synthesis.objectives import Forward, Objective, units
from facetviz.synthesis.param import FourierImage
from facetviz.synthesis.regularizers import total_variation
from facetviz.synthesis.render import copy_mean, parameterized_ascent
from facetviz.synthesis.schedules import scaled_pixels
from facetviz.synthesis.transforms import augment, colour_affine, jitter, pad, roll, scale_rotate


def run(method: str, network: Network, task: Task, steps_scale: float, **settings):
    cls = methods.method_class(method)
    instance = cls(methods.method_settings(method, settings), Context(network, steps_scale))
    return instance.run(task)


def gain(network: Network, task: Task, images: torch.Tensor, start: torch.Tensor):
    objective, forward = units(task.units), Forward(network)
    with torch.no_grad():
        return forward(objective, images) - forward(objective, start)


# --- transforms ----------------------------------------------------------------------------


def wrapped_shift(original: torch.Tensor, moved: torch.Tensor, bound: int) -> tuple[int, int]:
    for dy in range(-bound, bound + 1):
        for dx in range(-bound, bound + 1):
            if torch.equal(torch.roll(original, (dy, dx), dims=(-2, -1)), moved):
                return dy, dx
    raise AssertionError(f"not a wrapped shift within {bound} px")


def test_roll_wraps_each_image_within_its_share_of_the_side() -> None:
    image = torch.rand(1, 28, 28, generator=torch.Generator().manual_seed(3))
    batch = image.expand(32, 1, 28, 28).contiguous()
    moved = roll(batch, 1 / 7, torch.Generator().manual_seed(0))  # 4 px at 28 px
    assert moved.shape == batch.shape
    shifts = {wrapped_shift(image, m, 4) for m in moved}
    assert len(shifts) > 8  # each image its own draw
    assert max(max(abs(dy), abs(dx)) for dy, dx in shifts) == 4  # the bound is reached


def test_roll_of_nothing_is_identity_and_draws_nothing() -> None:
    images, generator = torch.rand(3, 1, 8, 8), torch.Generator().manual_seed(0)
    state = generator.get_state()
    assert torch.equal(roll(images, 0.0, generator), images)
    assert torch.equal(roll(images, 0.05, generator), images)  # round(0.4) = 0 px
    assert torch.equal(generator.get_state(), state)


def test_colour_affine_stays_within_its_bounds_per_image_and_channel() -> None:
    images = 0.4 * torch.rand(64, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    shifted = colour_affine(images, 0.25, 0.0, torch.Generator().manual_seed(0))
    shift = (shifted - images).flatten(2)
    assert torch.allclose(shift, shift[..., :1].expand_as(shift), atol=1e-6)  # per channel
    assert shift.abs().max() <= 0.25 and shift.abs().max() > 0.2
    assert shift[:, :, 0].std(0).min() > 0.05  # channels and images draw on their own
    scaled = colour_affine(images, 0.0, 1.0, torch.Generator().manual_seed(0))
    factor = ((scaled - 0.5) / (images - 0.5)).flatten(2)
    assert torch.allclose(factor, factor[..., :1].expand_as(factor), rtol=1e-4)
    assert factor.min() >= math.exp(-1) - 1e-5 and factor.max() <= math.e + 1e-5
    assert factor.min() < 0.45 and factor.max() > 2.2


def test_colour_affine_of_nothing_is_identity_and_draws_nothing() -> None:
    images, generator = torch.rand(3, 1, 8, 8), torch.Generator().manual_seed(0)
    state = generator.get_state()
    assert colour_affine(images, 0.0, 0.0, generator) is images
    assert torch.equal(generator.get_state(), state)


def test_augment_gives_copy_major_copies_reproducibly_and_per_image() -> None:
    images = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    copies = augment(images, 4, 0.25, 1.0, 1 / 7, generators(3))
    assert copies.shape == (12, 1, 28, 28)
    assert torch.equal(copies, augment(images, 4, 0.25, 1.0, 1 / 7, generators(3)))
    assert not torch.equal(copies, augment(images, 4, 0.25, 1.0, 1 / 7, generators(3, seed=1)))
    assert not torch.equal(copies[:3], copies[3:6])  # every copy its own draws
    # an image's copies do not depend on its batch-mates (per-image generators)
    alone = augment(images[1:2], 4, 0.25, 1.0, 1 / 7, generators(3)[1:2])
    torch.testing.assert_close(alone, copies.unflatten(0, (4, 3))[:, 1], rtol=0, atol=0)
    # rolled only: copy c of image i is image i, shifted
    rolled = augment(images, 2, 0.0, 0.0, 1 / 7, generators(3))
    for c in range(2):
        for i in range(3):
            wrapped_shift(images[i], rolled[3 * c + i], 4)
    plain = augment(images, 3, 0.0, 0.0, 0.0, generators(3))
    assert torch.equal(plain, images.repeat(3, 1, 1, 1))
    assert augment(images, 1, 0.0, 0.0, 0.0, generators(3)) is images


def test_copy_mean_averages_each_images_copies() -> None:
    values = Objective(["x"], lambda out: out["x"].flatten(1).sum(1))
    outputs = {"x": torch.arange(6.0).view(6, 1)}  # copies 0 and 1 of 3 images
    assert torch.equal(copy_mean(values, 2)(outputs), torch.tensor([1.5, 2.5, 3.5]))
    assert copy_mean(values, 1) is values


# --- total variation -----------------------------------------------------------------------


def test_total_variation_is_zero_on_constant_images_and_counts_the_diagonals() -> None:
    constant = torch.full((2, 3, 5, 5), 0.3, requires_grad=True)
    assert torch.equal(total_variation(constant), torch.zeros(2))
    total_variation(constant).sum().backward()
    assert torch.equal(constant.grad, torch.zeros_like(constant))  # no NaN at zero
    dot = torch.zeros(1, 2, 3, 3)
    dot[0, 0, 1, 1] = 1.0  # channel 1 stays flat: the channels are averaged
    # each of the four directions has two differences of 1: 4·√2, halved by the flat channel
    torch.testing.assert_close(total_variation(dot), torch.tensor([2 * math.sqrt(2)]))
    noise = torch.rand(4, 1, 8, 8)
    assert (total_variation(noise) > 0).all()
    assert total_variation(noise).shape == (4,)


def test_total_variation_of_a_smooth_image_hardly_depends_on_its_size() -> None:
    def ramp(side: int) -> torch.Tensor:
        x = torch.linspace(0, 1, side)
        return (x[None, :] * x[:, None]).view(1, 1, side, side)

    small, large = total_variation(ramp(28)), total_variation(ramp(224))
    assert abs(float(small / large) - 1) < 0.1
    noise = torch.rand(1, 1, 224, 224, generator=torch.Generator().manual_seed(0))
    assert total_variation(noise) > 6 * total_variation(noise[..., :28, :28])


# --- the vit method ------------------------------------------------------------------------


def test_vit_settings_are_the_recipes() -> None:
    settings = methods.method_settings("vit", {})
    assert (settings.steps, settings.learning_rate) == (400, 0.1)
    assert (settings.beta1, settings.beta2, settings.copies) == (0.5, 0.99, 8)
    assert round(settings.roll * 224) == 32
    assert "Ghiasi et al. 2022" in methods.method_class("vit").summary


def scaled_task(scale: float = 0.1, seed: int = 0) -> Task:
    """make_task with its units' scale (the random network's activations are ~0.1)."""
    return replace(make_task(seed=seed), unit_scales=torch.full((4,), scale))


def test_vit_raises_the_objective_from_the_mean_images(random_network: Network) -> None:
    task = scaled_task()
    result, start = run("vit", random_network, task, 0.04)  # 16 steps
    assert torch.equal(start, task.mean_images)
    assert result.trace.shape == (16, 4) and torch.isfinite(result.trace).all()
    assert result.images.shape == task.mean_images.shape
    assert result.images.min() >= 0 and result.images.max() <= 1
    assert (gain(random_network, task, result.images, start) > 0).all()
    again, _ = run("vit", random_network, scaled_task(), 0.04)
    assert torch.equal(result.images, again.images)
    other, _ = run("vit", random_network, scaled_task(seed=1), 0.04)
    assert not torch.equal(result.images, other.images)


def test_vit_tv_penalty_smooths_in_the_units_scale(random_network: Network) -> None:
    def images(weight: float, scale: float) -> torch.Tensor:
        task = scaled_task(scale)
        return run("vit", random_network, task, 0.02, tv_weight=weight, copies=2)[0].images

    rough, smooth = images(0.0, 1.0), images(0.01, 1.0)
    assert (total_variation(smooth) < total_variation(rough)).all()
    torch.testing.assert_close(images(0.01, 4.0), images(0.04, 1.0))


# --- the recipe in fourier -----------------------------------------------------------------


def lucid_only(task: Task, steps: int, network: Network):
    """`fourier` as it was before the recipe's settings: Lucid's transforms, nothing more."""
    size, gens = task.size, task.generators
    scales, angles = [1 + (i - 5) / 50 for i in range(11)], list(range(-10, 11))

    def transform(images: torch.Tensor) -> torch.Tensor:
        images = jitter(pad(images, scaled_pixels(12, size)), scaled_pixels(8, size), gens)
        images = scale_rotate(images, scales, angles, gens)
        images = jitter(images, scaled_pixels(4, size), gens)
        margin = (images.shape[-1] - size) // 2
        return images[..., margin : margin + size, margin : margin + size]

    seeds = [g.initial_seed() ^ 0x5EED for g in gens]
    image = FourierImage(
        len(task.units), 1, size, generator=[torch.Generator().manual_seed(s) for s in seeds]
    )
    return parameterized_ascent(
        Forward(network), units(task.units), image, steps, 0.05, transform
    ).images


def test_fourier_by_default_is_unchanged(random_network: Network) -> None:
    default, _ = run("fourier", random_network, make_task(), 0.04)  # 21 steps
    explicit, _ = run(
        "fourier", random_network, make_task(), 0.04,
        copies=1, colour_shift=0, colour_scale=0, roll=0, preset="none",
    )  # fmt: skip
    before = lucid_only(make_task(), 21, random_network)
    assert torch.equal(default.images, before)
    assert torch.equal(explicit.images, before)


def test_fourier_preset_vit_sets_the_recipes_transforms() -> None:
    settings = methods.method_settings("fourier", {"preset": "vit"})
    recipe = methods.method_settings("vit", {})
    for key in fourier.RECIPE:
        assert getattr(settings, key) == getattr(recipe, key)
    assert settings.steps == 512  # the rest stays fourier's
    mine = methods.method_settings("fourier", {"preset": "vit", "copies": 2})
    assert (mine.copies, mine.roll) == (2, recipe.roll)  # keys set beside it win
    assert methods.method_settings("diversity", {"preset": "vit"}).copies == 8
    with pytest.raises(ConfigError, match="preset"):
        methods.method_settings("fourier", {"preset": "lucid"})


def test_fourier_with_the_recipes_copies_runs(random_network: Network) -> None:
    task = make_task()
    default, _ = run("fourier", random_network, task, 0.04)
    result, start = run("fourier", random_network, make_task(), 0.04, preset="vit", copies=3)
    assert result.images.shape == task.mean_images.shape and torch.isfinite(result.trace).all()
    assert not torch.equal(result.images, default.images)
    assert (gain(random_network, task, result.images, start) > 0).float().mean() >= 0.75
    diverse, _ = run("diversity", random_network, make_task(), 0.02, copies=2, roll=0.1)
    assert torch.isfinite(diverse.trace).all()


def test_vit_is_registered_with_a_valid_schema() -> None:
    assert methods.method_class("vit") is vit.ViT
    schema = methods.settings_schema(vit.Settings)
    assert set(schema["properties"]) == set(methods.defaults(vit.Settings))
