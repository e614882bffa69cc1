"""Batched total-variation denoising: the proximal operator, and its match with scikit-image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facetviz.synthesis.regularizers import bregman_strength, tv_denoise

SKIMAGE_MISSING = "scikit-image is not installed (requirements.txt pins it for this comparison)"


def total_variation(images: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Isotropic total variation per image [B] (forward differences), the quantity measured."""
    dy = images[..., 1:, :-1] - images[..., :-1, :-1]
    dx = images[..., :-1, 1:] - images[..., :-1, :-1]
    return torch.sqrt(dx.square() + dy.square() + eps).flatten(1).sum(1)


def noisy_images(batch: int, channels: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Images in [0, 1] with edges, a smooth ramp and noise, like a synthesis step's canvas."""
    generator = torch.Generator().manual_seed(seed)
    rows = torch.linspace(0, 1, height).view(-1, 1)
    cols = torch.linspace(0, 1, width).view(1, -1)
    base = 0.3 + 0.3 * rows * cols + 0.3 * ((rows - 0.5).square() + (cols - 0.4).square() < 0.08)
    levels = torch.rand(batch, channels, 1, 1, generator=generator) * 0.4 + 0.8
    noise = 0.1 * torch.randn(batch, channels, height, width, generator=generator)
    return (base * levels + noise).clamp(0, 1).to(torch.float64)


@pytest.mark.parametrize("channels", [1, 3])
def test_zero_strength_returns_the_input(channels: int) -> None:
    images = noisy_images(2, channels, 28, 31)
    assert torch.equal(tv_denoise(images, 0.0), images)
    assert torch.equal(tv_denoise(images, torch.zeros(2)), images)


@pytest.mark.parametrize("channels", [1, 3])
def test_larger_strength_gives_lower_tv_monotonically(channels: int) -> None:
    images = noisy_images(2, channels, 32, 32)
    strengths = [0.0, 0.005, 0.02, 0.05, 0.1, 0.3]
    outputs = [tv_denoise(images, s, iterations=100) for s in strengths]
    tv = torch.stack([total_variation(out, eps=0.0) for out in outputs])  # [strengths, B]
    distance = torch.stack([(out - images).abs().flatten(1).mean(1) for out in outputs])
    assert (tv[1:] < tv[:-1]).all(), tv
    assert (distance[1:] > distance[:-1]).all(), distance
    # a strong smoothing removes most of the variation while keeping the mean (the prox of TV
    # never moves an image's mean, since TV ignores constants)
    assert (tv[-1] < 0.2 * tv[0]).all()
    torch.testing.assert_close(outputs[-1].mean(dim=(2, 3)), images.mean(dim=(2, 3)))


def test_a_constant_image_is_a_fixed_point() -> None:
    images = torch.tensor([0.0, 0.3, 1.0]).view(3, 1, 1, 1).expand(3, 3, 20, 24).contiguous()
    for strength in (0.01, 1.0, torch.tensor([0.5, 0.0, 5.0])):
        torch.testing.assert_close(tv_denoise(images, strength), images, rtol=0, atol=1e-7)


@pytest.mark.parametrize("channels", [1, 3])
def test_a_batch_with_per_image_strengths_equals_per_image_calls(channels: int) -> None:
    images = noisy_images(4, channels, 28, 28, seed=3).float()
    strengths = torch.tensor([0.0, 0.01, 0.05, 0.2])
    for tolerance in (None, 1e-4):
        batched = tv_denoise(images, strengths, iterations=60, tolerance=tolerance)
        single = torch.cat(
            [
                tv_denoise(images[i : i + 1], float(strengths[i]), 60, tolerance)
                for i in range(len(images))
            ]
        )
        torch.testing.assert_close(batched, single, rtol=0, atol=1e-6)


def test_tolerance_stops_early_close_to_the_converged_result() -> None:
    images = noisy_images(3, 3, 40, 40, seed=1)
    strengths = torch.tensor([0.002, 0.02, 0.1])
    converged = tv_denoise(images, strengths, iterations=500)
    early = tv_denoise(images, strengths, iterations=500, tolerance=1e-5)
    assert (early - converged).abs().max() < 2e-3
    assert not torch.equal(early, converged)  # it did stop before the 500 steps


def test_shape_dtype_no_grad_and_determinism() -> None:
    for channels, dtype in ((1, torch.float32), (3, torch.float64), (3, torch.float16)):
        images = noisy_images(2, channels, 24, 30).to(dtype).requires_grad_(dtype.is_floating_point)
        out = tv_denoise(images, torch.tensor([0.02, 0.1]), iterations=20)
        assert out.shape == images.shape and out.dtype == dtype
        assert not out.requires_grad
        assert torch.equal(out, tv_denoise(images, torch.tensor([0.02, 0.1]), iterations=20))


def test_rejects_bad_arguments() -> None:
    images = noisy_images(2, 1, 8, 8)
    with pytest.raises(ValueError, match="strength"):
        tv_denoise(images, -0.1)
    with pytest.raises(ValueError, match="one value per image"):
        tv_denoise(images, torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="B, C, H, W"):
        tv_denoise(images[0], 0.1)
    with pytest.raises(ValueError, match="positive"):
        bregman_strength(0.0)


def test_matches_an_exact_rof_solver() -> None:
    """skimage's denoise_tv_chambolle solves the same problem (per channel, same boundary)."""
    restoration = pytest.importorskip("skimage.restoration", reason=SKIMAGE_MISSING)
    images = noisy_images(2, 3, 40, 48, seed=2)
    strengths = torch.tensor([0.03, 0.15])
    ours = tv_denoise(images, strengths, iterations=400)
    for image, strength, result in zip(images, strengths, ours, strict=True):
        reference = restoration.denoise_tv_chambolle(
            image.permute(1, 2, 0).numpy(),
            weight=float(strength),
            eps=1e-12,
            max_num_iter=3000,
            channel_axis=-1,
        )
        # both converge slowest on flat regions, so a few pixels differ by up to ~1e-3
        difference = np.abs(result.permute(1, 2, 0).numpy() - reference)
        assert difference.max() < 5e-3 and difference.mean() < 1e-4, difference.mean()


def skimage_bregman(images: torch.Tensor, weight: float) -> np.ndarray:
    """The paper's call, per image on 0-255 pixels (HWC, or 2-D for grayscale), back to [0, 1]."""
    from skimage.restoration import denoise_tv_bregman

    out = []
    for image in images.numpy():
        pixels = 255 * (image[0] if len(image) == 1 else image.transpose(1, 2, 0))
        result = denoise_tv_bregman(pixels, weight=weight, max_num_iter=100, eps=1e-3) / 255
        out.append(np.atleast_3d(result).transpose(2, 0, 1))
    return np.stack(out)


@pytest.mark.parametrize("channels", [1, 3])
def test_bregman_weight_maps_to_strength(channels: int) -> None:
    """The paper's call on 0-255 pixels, converted, agrees with ours on [0, 1] pixels.

    Away from the border (skimage holds a frame of input pixels fixed around the image, we use a
    Neumann boundary) the results agree to a small fraction of a grey level at the paper's
    weights of 0.4 and up, and the mapping beats a factor of 2 either way.
    """
    pytest.importorskip("skimage.restoration", reason=SKIMAGE_MISSING)
    size = 28 if channels == 1 else 64
    images = noisy_images(2, channels, size, size, seed=4)
    for weight in (0.4, 0.8, 2.0):
        reference = skimage_bregman(images, weight)
        interior, whole = {}, {}
        for factor in (0.5, 1.0, 2.0):
            ours = tv_denoise(images, factor * bregman_strength(weight), iterations=100).numpy()
            difference = np.abs(ours - reference)
            interior[factor] = difference[..., 2:-2, 2:-2].mean()
            whole[factor] = difference.mean()
        assert interior[1.0] < 1e-3, (weight, interior)  # a quarter of a grey level
        assert whole[1.0] < 6e-3, (weight, whole)  # the border's 1.5 grey levels
        for errors in (interior, whole):
            assert errors[1.0] < min(errors[0.5], errors[2.0]), (weight, errors)


def test_skimage_bregman_smooths_less_than_mapped_at_small_weights() -> None:
    """Where the mapping stops holding (see `bregman_strength`): weight 0.01 leaves far more TV."""
    pytest.importorskip("skimage.restoration", reason=SKIMAGE_MISSING)
    image = noisy_images(1, 1, 48, 48, seed=5)
    ours = tv_denoise(image, bregman_strength(0.01), iterations=300)
    theirs = torch.from_numpy(skimage_bregman(image, 0.01))
    assert total_variation(theirs, eps=0.0) > 1.5 * total_variation(ours, eps=0.0)
