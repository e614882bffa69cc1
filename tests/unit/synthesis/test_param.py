"""Image parameterizations: Fourier with decorrelated colour, and plain pixels."""

from __future__ import annotations

import pytest
import torch

from facetviz.synthesis.param import FourierImage, spectrum_scale


def generators(*seeds: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed) for seed in seeds]


@pytest.mark.parametrize(
    ("channels", "size", "shape"),
    [(1, 28, (28, 28)), (3, 227, (227, 227)), (3, (30, 41), (30, 41)), (1, (17, 16), (17, 16))],
)
def test_shapes_and_range(channels: int, size: int | tuple[int, int], shape: tuple) -> None:
    image = FourierImage(2, channels, size, generator=torch.Generator().manual_seed(0))
    out = image()
    assert out.shape == (2, channels, *shape)
    assert out.dtype == torch.float32
    assert out.min() > 0 and out.max() < 1
    # a large spectrum still maps into the valid range (the sigmoid saturates, never leaves it)
    with torch.no_grad():
        image.spectrum.mul_(1e4)
    out = image()
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("channels", [1, 3])
def test_gradients_reach_the_spectrum(channels: int) -> None:
    image = FourierImage(3, channels, 24, generator=torch.Generator().manual_seed(1))
    target = torch.rand(3, channels, 24, 24, generator=torch.Generator().manual_seed(2))
    loss = (image() - target).square().mean()
    loss.backward()
    assert [name for name, _ in image.named_parameters()] == ["spectrum"]
    grad = image.spectrum.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    # and a few steps of Adam on it fit the target better
    optimizer = torch.optim.Adam(image.parameters(), lr=0.05)
    for _ in range(20):
        optimizer.zero_grad()
        step_loss = (image() - target).square().mean()
        step_loss.backward()
        optimizer.step()
    assert (image() - target).square().mean() < loss


def test_same_seeds_give_the_same_init() -> None:
    first = FourierImage(2, 3, 32, generator=torch.Generator().manual_seed(7))
    second = FourierImage(2, 3, 32, generator=torch.Generator().manual_seed(7))
    other = FourierImage(2, 3, 32, generator=torch.Generator().manual_seed(8))
    assert torch.equal(first(), second())
    assert not torch.allclose(first(), other())
    listed = FourierImage(2, 3, 32, generator=generators(3, 4))
    assert torch.equal(listed(), FourierImage(2, 3, 32, generator=generators(3, 4))())
    # the two images of a batch start differently
    assert not torch.allclose(listed()[0], listed()[1])


@pytest.mark.parametrize("channels", [1, 3])
def test_per_image_generators_are_independent_of_batch_mates(channels: int) -> None:
    batch = FourierImage(3, channels, (20, 22), generator=generators(10, 11, 12))()
    for index, seed in enumerate((10, 11, 12)):
        alone = FourierImage(1, channels, (20, 22), generator=generators(seed))()
        torch.testing.assert_close(batch[index : index + 1], alone, rtol=0, atol=1e-6)
    moved = FourierImage(2, channels, (20, 22), generator=generators(99, 11))()
    torch.testing.assert_close(moved[1], batch[1], rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="generators"):
        FourierImage(2, channels, 20, generator=generators(1, 2, 3))


def radial_power(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean spectral power of images [.., H, W] below and above a quarter of the Nyquist rate."""
    height, width = images.shape[-2:]
    power = torch.fft.rfft2(images - images.mean(dim=(-2, -1), keepdim=True)).abs().square()
    fy = torch.fft.fftfreq(height).unsqueeze(1)
    fx = torch.fft.rfftfreq(width).unsqueeze(0)
    frequency = torch.sqrt(fx.square() + fy.square())
    low = (frequency > 0) & (frequency < 0.125)
    high = frequency > 0.375
    return power[..., low].mean(), power[..., high].mean()


@pytest.mark.parametrize("channels", [1, 3])
def test_low_frequencies_dominate_at_init(channels: int) -> None:
    out = FourierImage(4, channels, 64, generator=torch.Generator().manual_seed(5))()
    logits = torch.logit(out.double())  # undo the sigmoid: colour mixing keeps spatial spectra
    low, high = radial_power(logits)
    assert low > 20 * high, (low, high)
    # the learnable coefficients themselves are white: the scaling does it
    white = FourierImage(
        4, channels, 64, decay_power=0.0, generator=torch.Generator().manual_seed(5)
    )
    low, high = radial_power(torch.logit(white().double()))
    assert 0.5 < low / high < 2


def test_spectrum_scale_falls_off_as_one_over_frequency() -> None:
    scale = spectrum_scale(32, 32, decay_power=1.0)
    assert scale.shape == (32, 17)
    assert scale[0, 0] == 32  # zero frequency floored at 1/32 cycles per pixel
    assert scale[0, 1] == pytest.approx(32) and scale[0, 2] == pytest.approx(16)
    assert scale[0, 16] == pytest.approx(2)  # Nyquist, 0.5 cycles per pixel
    assert torch.equal(spectrum_scale(8, 12, decay_power=0.0), torch.ones(8, 7))


def test_rgb_channels_are_colour_correlated_grayscale_is_not_mixed() -> None:
    rgb = torch.logit(FourierImage(8, 3, 48, generator=torch.Generator().manual_seed(6))().double())
    channels = rgb.transpose(0, 1).flatten(1)  # [3, pixels]
    correlation = torch.corrcoef(channels)
    # the ImageNet matrix's first (luminance) column dominates: R, G and B move together
    assert (correlation[torch.triu_indices(3, 3, 1).unbind()] > 0.7).all(), correlation
    gray = FourierImage(1, 1, 16, generator=torch.Generator().manual_seed(6))
    expected = torch.fft.irfft2(
        torch.view_as_complex(gray.spectrum) * gray.scale, s=(16, 16), norm="ortho"
    )
    torch.testing.assert_close(gray(), torch.sigmoid(expected))


def test_module_moves_to_a_device_dtype() -> None:
    image = FourierImage(2, 3, 16, generator=torch.Generator().manual_seed(0)).double()
    assert image().dtype == torch.float64
    assert {name for name, _ in image.named_buffers()} == {"scale", "color"}
