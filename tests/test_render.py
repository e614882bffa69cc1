"""The synthesis engine piece by piece: objectives, schedules, transforms, loops and methods."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from facetviz.errors import ConfigError, FacetvizError
from facetviz.models import Network, capture, load_network
from facetviz.synthesis.methods import (
    METHODS,
    Task,
    _with_facet_keeping,
    method_settings,
    run_method,
)
from facetviz.synthesis.objectives import Unit, batch_objective
from facetviz.synthesis.regularizers import facet_distance
from facetviz.synthesis.render import decay_ascent, octave_ascent, parameterized_ascent
from facetviz.synthesis.schedules import CBR, MFV, canvas_size, interpolate, scaled
from facetviz.synthesis.transforms import (
    add_to_crops,
    centre_biased_offsets,
    crop,
    gaussian_blur,
    pad,
    scale_rotate,
)


@pytest.fixture(scope="module")
def network() -> Network:
    torch.manual_seed(0)
    net = load_network({"kind": "embedded"}, (1, 28, 28), 4, None)
    net.module.eval()
    return net


def generators(count: int, seed: int = 0) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed * 1000 + i) for i in range(count)]


# --- objectives ------------------------------------------------------------------------------


def test_probability_objective_is_the_softmax(network: Network) -> None:
    pixels = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    units = [
        Unit("classifier.5", 0, kind="probability"),
        Unit("classifier.5", 3, kind="probability"),
    ]
    values = batch_objective(network, units)(pixels)
    with torch.no_grad():
        expected = network(pixels).softmax(1)[[0, 1], [0, 3]]
    torch.testing.assert_close(values.detach(), expected)
    assert torch.all((values > 0) & (values < 1))


def test_weighted_sum_objective(network: Network) -> None:
    pixels = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    a, b = Unit("classifier.5", 0), Unit("features.6", 2, "mean")
    combined = batch_objective(network, [((2.0, a), (-0.5, b))])(pixels)
    separate = batch_objective(network, [a, b])(pixels.repeat(2, 1, 1, 1))
    torch.testing.assert_close(combined, (2.0 * separate[0] - 0.5 * separate[1]).view(1))


@pytest.mark.parametrize(
    "unit",
    [
        Unit("classifier.5", 1),
        Unit("classifier.5", 1, kind="probability"),
        Unit("features.6", 4, "center"),
        Unit("features.6", 4, "mean"),
        Unit("features.6", 4, "max"),
        Unit("classifier.2", 9),
    ],
    ids=lambda u: f"{u.layer}-{u.spatial}-{u.kind}",
)
def test_gradients_flow_for_every_objective(network: Network, unit: Unit) -> None:
    pixels = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    pixels.requires_grad_(True)
    (gradient,) = torch.autograd.grad(batch_objective(network, [unit])(pixels).sum(), pixels)
    assert torch.isfinite(gradient).all() and gradient.abs().sum() > 0


def test_unit_out_of_range_is_a_clear_error(network: Network) -> None:
    objective = batch_objective(network, [Unit("classifier.5", 0), Unit("classifier.5", 4)])
    with pytest.raises(
        FacetvizError, match=r"unit 4 is out of range for layer 'classifier.5'.*4 units"
    ):
        objective(torch.rand(2, 1, 28, 28))
    conv = batch_objective(network, [Unit("features.6", 64)])
    with pytest.raises(FacetvizError, match="unit 64 .*'features.6'.*64 units"):
        conv(torch.rand(1, 1, 28, 28))


def test_unknown_layer_is_a_clear_error(network: Network) -> None:
    with pytest.raises(Exception, match="features.99"):
        batch_objective(network, [Unit("features.99", 0)])(torch.rand(1, 1, 28, 28))


# --- schedules -------------------------------------------------------------------------------


def test_paper_schedules_as_published() -> None:
    assert sum(o.steps for o in MFV) == 370 and sum(o.steps for o in CBR) == 530
    assert [o.objective for o in CBR[:3]] == ["probability", "probability", "activation"]
    assert MFV[2].margin == 50 and MFV[-1].to_input_size and CBR[-1].to_input_size


def test_schedules_scale_to_the_input_size() -> None:
    small = scaled(MFV, 28, steps_scale=0.1)
    assert [o.steps for o in small] == [19, 15, 2, 1]
    assert small[2].margin == 6  # 50 px of 227 -> 6 px of 28: the central 16 x 16 moves
    assert scaled(MFV, 227)[2].margin == 50
    assert canvas_size(227) == 256 and canvas_size(28) == 32


def test_interpolate_runs_from_start_to_end() -> None:
    assert interpolate((0.4, 0.8), 0, 5) == 0.4
    assert interpolate((0.4, 0.8), 4, 5) == pytest.approx(0.8)
    assert interpolate((2.0, 1.0), 0, 1) == 2.0


# --- transforms ------------------------------------------------------------------------------


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


# --- loops -----------------------------------------------------------------------------------

TARGETS = [Unit("classifier.5", 0), Unit("features.6", 1, "center"), Unit("classifier.2", 3)]


def test_octave_ascent_raises_the_objective_and_keeps_pixels_valid(network: Network) -> None:
    objective = batch_objective(network, TARGETS)
    start = torch.full((3, 1, 28, 28), 0.5)
    octaves = scaled(MFV, 28, steps_scale=0.05)
    result = octave_ascent(
        {"activation": objective}, start, octaves, 28, generators(3), tv_iterations=5
    )
    assert result.images.shape == start.shape and not result.images.requires_grad
    assert result.trace.shape == (sum(o.steps for o in octaves), 3)
    assert result.images.min() >= 0 and result.images.max() <= 1
    with torch.no_grad():
        assert torch.all(objective(result.images) > objective(start))
    assert torch.equal(start, torch.full((3, 1, 28, 28), 0.5))  # the start is not modified


def test_octave_ascent_is_reproducible_per_seed(network: Network) -> None:
    objective = {"activation": batch_objective(network, TARGETS[:2])}
    start = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(5))
    octaves = scaled(MFV, 28, steps_scale=0.03)
    first = octave_ascent(objective, start, octaves, 28, generators(2, 1), 5).images
    again = octave_ascent(objective, start, octaves, 28, generators(2, 1), 5).images
    other = octave_ascent(objective, start, octaves, 28, generators(2, 2), 5).images
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_tv_step_makes_the_octave_ascent_smoother(network: Network) -> None:
    objective = {"activation": batch_objective(network, [Unit("classifier.5", 1)] * 2)}
    noise = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    rough = [replace(o, tv_weight=(1e6, 1e6)) for o in scaled(MFV, 28, 0.03)]
    smooth = [replace(o, tv_weight=(0.01, 0.01)) for o in scaled(MFV, 28, 0.03)]

    def roughness(images: torch.Tensor) -> float:
        return float((images[..., 1:, :] - images[..., :-1, :]).abs().mean())

    a = octave_ascent(objective, noise, rough, 28, generators(2), 10).images
    b = octave_ascent(objective, noise, smooth, 28, generators(2), 10).images
    assert roughness(b) < 0.5 * roughness(a)


def test_margin_freezes_the_border(network: Network) -> None:
    objective = {"activation": batch_objective(network, [Unit("classifier.5", 2)])}
    start = torch.full((1, 1, 28, 28), 0.5)
    octave = scaled(MFV, 28)[2]  # margin 6 px, no scaling
    frozen = replace(octave, steps=5, window=0.0, tv_weight=(1e9, 1e9))
    images = octave_ascent(objective, start, [frozen], 28, generators(1), 1).images
    # canvas 32 px, centred 28 px crop at offset 2: rows 0..7 of the canvas never move
    moved = (images - 0.5).abs()[0, 0]
    assert moved[:6].max() < 0.02 and moved[12:16, 12:16].max() > 0


def test_decay_ascent_priors(network: Network) -> None:
    objective = batch_objective(network, TARGETS)
    start = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(4))
    plain = decay_ascent(objective, start, 15, 0.02, 0.0, generators(3))
    with torch.no_grad():
        assert torch.all(objective(plain.images) > objective(start))
    decayed = decay_ascent(
        lambda x: x.sum((1, 2, 3)) * 0, start, 10, 0.0 + 1e-9, 0.5, generators(3)
    )
    assert (decayed.images - 0.5).abs().max() < 0.01  # decay pulls every pixel to gray
    clipped = decay_ascent(objective, start, 1, 1e-9, 0.0, generators(3), clip_percentile=50)
    share_gray = (clipped.images == 0.5).float().mean()
    assert 0.45 < share_gray < 0.55


def test_parameterized_ascent_raises_the_objective(network: Network) -> None:
    from facetviz.synthesis.param import FourierImage

    objective = batch_objective(network, TARGETS)
    image = FourierImage(3, 1, 28, generator=generators(3))
    with torch.no_grad():
        before = objective(image())
    result = parameterized_ascent(objective, image, 20, 0.05, lambda x: x)
    assert result.trace.shape == (20, 3)
    with torch.no_grad():
        assert torch.all(objective(result.images) > before)


# --- methods ---------------------------------------------------------------------------------


def make_task(count: int = 4, seed: int = 0) -> Task:
    rng = torch.Generator().manual_seed(7)
    return Task(
        units=[Unit("classifier.5", 0)] * 2 + [Unit("features.6", 3, "center")] * (count - 2),
        # smooth starts, as facet mean images are (an average of 15 images)
        mean_images=gaussian_blur(torch.rand(count, 1, 28, 28, generator=rng), 1.5),
        groups=[slice(0, 2), slice(2, count)],
        generators=generators(count, seed),
        facet_layer="classifier.3",
    )


@pytest.mark.parametrize("method", METHODS)
def test_every_method_raises_activation_and_is_reproducible(network: Network, method: str) -> None:
    settings = method_settings(method, None)
    task = make_task()
    result, start = run_method(method, network, task, settings, steps_scale=0.04)
    assert result.images.shape == task.mean_images.shape
    assert result.images.min() >= 0 and result.images.max() <= 1
    objective = batch_objective(network, task.units)
    with torch.no_grad():
        gain = objective(result.images) - objective(start)
    assert (gain > 0).float().mean() >= 0.75, gain  # a few steps: most images improve
    again, _ = run_method(method, network, make_task(), settings, steps_scale=0.04)
    assert torch.equal(result.images, again.images)
    other, _ = run_method(method, network, make_task(seed=1), settings, steps_scale=0.04)
    if method != "mfv":  # mfv from the mean image still differs by its jitter draws
        assert not torch.equal(result.images, other.images)


def test_mfv_starts_from_the_mean_images_and_cbr_from_gray(network: Network) -> None:
    task = make_task()
    _, start = run_method("mfv", network, task, method_settings("mfv", None), 0.01)
    assert torch.equal(start, task.mean_images)
    _, gray = run_method("cbr", network, make_task(), method_settings("cbr", None), 0.01)
    assert abs(float(gray.mean()) - 175 / 255) < 0.01 and 0.02 < float(gray.std()) < 0.05


def test_diversity_term_spreads_a_units_images(network: Network) -> None:
    """The same unit and start for 4 images: with the term their codes end up less alike."""

    def similarity(images: torch.Tensor) -> float:
        with capture(network.module, ["classifier.3"]) as out, torch.no_grad():
            network(images)
        codes = torch.nn.functional.normalize(out["classifier.3"], dim=1)
        sim = codes @ codes.T
        return float((sim.sum() - sim.diagonal().sum()) / 12)

    def task() -> Task:
        return Task([Unit("classifier.5", 1)] * 4, torch.rand(4, 1, 28, 28), [slice(0, 4)],
                    generators(4), "classifier.3")  # fmt: skip

    base = method_settings("fourier", {"steps": 40})
    plain, _ = run_method("fourier", network, task(), base)
    diverse, _ = run_method(
        "diversity", network, task(), method_settings("diversity", {"steps": 40, "weight": 50.0})
    )
    assert similarity(diverse.images) < similarity(plain.images)


def test_cbr_probability_octaves_apply_to_class_units_only(
    network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hidden unit has no class distribution: it keeps its activation in every octave."""
    import facetviz.synthesis.methods as methods

    calls: list[list[Unit]] = []
    real = methods.batch_objective

    def recording(net: Network, targets, mixed_precision: bool = False):
        calls.append(list(targets))
        return real(net, targets, mixed_precision)

    monkeypatch.setattr(methods, "batch_objective", recording)
    task = make_task()
    task.class_units = [True, True, False, False]
    run_method("cbr", network, task, method_settings("cbr", None), 0.01)
    kinds = [unit.kind for unit in calls[1]]  # the objective of the probability octaves
    assert kinds == ["probability", "probability", "activation", "activation"]


def _codes(network: Network, images: torch.Tensor) -> torch.Tensor:
    with capture(network.module, ["classifier.3"]) as out, torch.no_grad():
        network(images)
    return out["classifier.3"].flatten(1)


def test_facet_distance_is_zero_at_the_centroid_and_ignores_scale() -> None:
    centroids = torch.rand(3, 16, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(facet_distance(centroids, centroids), torch.zeros(3))
    # a unit raised by scaling its code up has not left the facet
    torch.testing.assert_close(facet_distance(2.5 * centroids, centroids), torch.zeros(3))
    other = centroids.roll(1, 0)
    assert torch.all(facet_distance(other, centroids) > 0)
    assert facet_distance(-centroids, centroids) == pytest.approx(torch.full((3,), 2.0))


def test_facet_keeping_term_pulls_the_code_towards_the_centroid(network: Network) -> None:
    """Centroids taken from other images: with the term the codes end nearer them."""

    def task() -> Task:
        task = make_task()
        task.facet_codes = _codes(network, task.mean_images.roll(1, 0))
        task.unit_scales = torch.ones(4)
        return task

    def distance(images: torch.Tensor) -> float:
        return float(facet_distance(_codes(network, images), task().facet_codes).mean())

    paper, _ = run_method("mfv", network, task(), method_settings("mfv", None), 0.05)
    keeping = method_settings("mfv", {"facet_weight": 50.0})
    kept, _ = run_method("mfv", network, task(), keeping, 0.05)
    assert distance(kept.images) < distance(paper.images)
    # the objective is the unit's minus the term: at the centroid's own image the term is zero
    centred = task()
    centred.facet_codes = _codes(network, centred.mean_images)
    unit = batch_objective(network, centred.units)
    with torch.no_grad():
        torch.testing.assert_close(
            _with_facet_keeping(network, unit, centred, 50.0)(centred.mean_images),
            unit(centred.mean_images),
            atol=1e-4,
            rtol=0,
        )


def test_facet_keeping_term_is_in_the_units_scale(network: Network) -> None:
    """Scaling a unit's activation scale and the weight inversely gives the same images."""

    def run(weight: float, scale: float) -> torch.Tensor:
        task = make_task()
        task.facet_codes = _codes(network, task.mean_images.roll(1, 0))
        task.unit_scales = torch.full((4,), scale)
        settings = method_settings("mfv", {"facet_weight": weight})
        return run_method("mfv", network, task, settings, 0.02)[0].images

    torch.testing.assert_close(run(2.0, 5.0), run(5.0, 2.0))
    assert not torch.equal(run(2.0, 5.0), run(2.0, 1.0))


def test_facet_weight_zero_is_the_papers_mfv(network: Network) -> None:
    task = make_task()
    task.facet_codes = _codes(network, task.mean_images.roll(1, 0))
    task.unit_scales = torch.ones(4)
    with_codes, _ = run_method("mfv", network, task, method_settings("mfv", None), 0.02)
    without, _ = run_method("mfv", network, make_task(), method_settings("mfv", None), 0.02)
    assert method_settings("mfv", None)["facet_weight"] == 0.0
    assert torch.equal(with_codes.images, without.images)


def test_facet_keeping_without_centroids_is_a_clear_error(network: Network) -> None:
    settings = method_settings("mfv", {"facet_weight": 1.0})
    with pytest.raises(FacetvizError, match="code_centroids.*rerun the facets stage"):
        run_method("mfv", network, make_task(), settings, 0.01)


def test_unknown_method_or_setting_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="unknown method 'dream'"):
        method_settings("dream", None)
    with pytest.raises(ConfigError, match=r"synthesis.hand: unknown setting\(s\) blur"):
        method_settings("hand", {"blur": 2})


def test_image_results_do_not_depend_on_batch_mates(network: Network) -> None:
    settings = method_settings("cbr", None)
    both, _ = run_method("cbr", network, make_task(), settings, 0.02)
    task = make_task()
    alone_task = Task(
        task.units[:2], task.mean_images[:2], [slice(0, 2)], task.generators[:2], task.facet_layer
    )
    alone, _ = run_method("cbr", network, alone_task, settings, 0.02)
    np.testing.assert_allclose(alone.images.numpy(), both.images[:2].numpy(), atol=1e-4)
