"""Robustness transforms: jitter, centre-biased crops, scale/rotate, blur; one draw per image."""

from __future__ import annotations

import pytest
import torch
from conftest import generators

from facetviz.synthesis.transforms import (
    add_to_crops,
    centre_biased_offsets,
    crop,
    gaussian_blur,
    jitter,
    pad,
    scale_rotate,
)


def shift_of(original: torch.Tensor, moved: torch.Tensor, max_shift: int) -> tuple[int, int]:
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            if torch.equal(torch.roll(original, (dy, dx), dims=(-2, -1)), moved):
                return dy, dx
    raise AssertionError("not a wrapped shift within max_shift")


def test_jitter_zero_is_identity() -> None:
    images = torch.rand(3, 1, 8, 8)
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    assert torch.equal(jitter(images, 0, generator), images)
    assert torch.equal(generator.get_state(), state)  # draws nothing


def test_jitter_shifts_each_image_on_its_own() -> None:
    image = torch.rand(1, 9, 9, generator=torch.Generator().manual_seed(3))
    batch = image.expand(16, 1, 9, 9).contiguous()
    moved = jitter(batch, 2, torch.Generator().manual_seed(0))
    assert moved.shape == batch.shape
    shifts = {shift_of(image, m, 2) for m in moved}
    assert len(shifts) > 3  # images of one batch get different offsets
    assert all(abs(dy) <= 2 and abs(dx) <= 2 for dy, dx in shifts)


def test_jitter_is_reproducible() -> None:
    images = torch.rand(6, 1, 9, 9, generator=torch.Generator().manual_seed(4))
    first = jitter(images, 3, torch.Generator().manual_seed(7))
    again = jitter(images, 3, torch.Generator().manual_seed(7))
    assert torch.equal(first, again)
    generator = torch.Generator().manual_seed(7)
    jitter(images, 3, generator)
    assert not torch.equal(jitter(images, 3, generator), first)  # the generator advances


def test_jitter_passes_gradients() -> None:
    images = torch.rand(2, 1, 6, 6, requires_grad=True)
    weights = torch.rand(2, 1, 6, 6)
    (grad,) = torch.autograd.grad(
        (jitter(images, 1, torch.Generator().manual_seed(0)) * weights).sum(), images
    )
    assert torch.allclose(grad.sum((1, 2, 3)), weights.sum((1, 2, 3)))


def test_crop_and_add_back_are_inverse() -> None:
    canvas = torch.rand(3, 2, 10, 10, generator=torch.Generator().manual_seed(0))
    offsets = torch.tensor([[0, 0], [2, 3], [4, 4]])
    crops = crop(canvas, offsets, 6)
    assert crops.shape == (3, 2, 6, 6)
    torch.testing.assert_close(crops[1], canvas[1, :, 2:8, 3:9])
    before = canvas.clone()
    add_to_crops(canvas, offsets, torch.ones(3, 2, 6, 6))
    diff = canvas - before
    torch.testing.assert_close(diff[1, :, 2:8, 3:9], torch.ones(2, 6, 6))
    assert float(diff.sum()) == pytest.approx(3 * 2 * 36, rel=1e-5)


def test_centre_biased_offsets_favour_the_centre() -> None:
    offsets = centre_biased_offsets(40, 28, 0.3, torch.Generator().manual_seed(0), 4000)
    assert offsets.min() >= 0 and offsets.max() <= 12
    mean = offsets.float().mean(0)
    assert torch.allclose(mean, torch.full((2,), 6.0), atol=0.2)
    # std = window x excess = 3.6 px, a little less after clipping to the canvas
    assert 2.8 < offsets.float().std(0).mean() < 3.8
    assert centre_biased_offsets(28, 28, 0.3, torch.Generator(), 5).eq(0).all()


def test_scale_rotate_identity_and_gradients() -> None:
    images = torch.rand(2, 3, 16, 16, requires_grad=True)
    same = scale_rotate(images, [1.0], [0.0], torch.Generator())
    torch.testing.assert_close(same, images, atol=1e-5, rtol=0)
    turned = scale_rotate(images, [1.1], [10.0], generators(2))
    (gradient,) = torch.autograd.grad(turned.sum(), images)
    assert gradient.abs().sum() > 0 and not torch.allclose(turned, images)


def test_gaussian_blur_smooths_and_keeps_the_mean() -> None:
    noise = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    blurred = gaussian_blur(noise, 1.0)
    assert blurred.shape == noise.shape
    assert blurred.std() < 0.5 * noise.std()
    assert abs(blurred.mean() - noise.mean()) < 0.01
    assert torch.equal(gaussian_blur(noise, 0.0), noise)
    assert pad(noise, 2).shape == (2, 1, 32, 32)
