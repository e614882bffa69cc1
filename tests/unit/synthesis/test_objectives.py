"""Objectives: unit terms read from one forward pass, and expressions that compose."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facetviz.core.errors import FacetvizError
from facetviz.model.networks import Network, capture
from facetviz.synthesis.objectives import Forward, Unit, facet_distance, similarity, units

TARGETS = [
    Unit("classifier.5", 1),
    Unit("features.6", 3, "center"),
    Unit("features.6", 2, "max"),
    Unit("features.6", 5, "mean"),
    Unit("classifier.2", 7),
]


def pixels(count: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(count, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def test_units_match_a_direct_forward(random_network: Network) -> None:
    images = pixels(len(TARGETS))
    values = Forward(random_network)(units(TARGETS), images)
    assert values.shape == (len(TARGETS),)
    layers = ["classifier.5", "features.6", "classifier.2"]
    with capture(random_network.module, layers) as out, torch.no_grad():
        random_network(images)
    conv = out["features.6"]
    expected = [
        out["classifier.5"][0, 1],
        conv[1, 3, 3, 3],
        conv[2, 2].max(),
        conv[3, 5].mean(),
        out["classifier.2"][4, 7],
    ]
    np.testing.assert_allclose(
        values.detach().numpy(), torch.stack(expected).numpy(), rtol=1e-5, atol=1e-6
    )


def test_probability_is_the_softmax(random_network: Network) -> None:
    targets = [
        Unit("classifier.5", 0, kind="probability"),
        Unit("classifier.5", 3, kind="probability"),
    ]
    values = Forward(random_network)(units(targets), pixels(2))
    with torch.no_grad():
        expected = random_network(pixels(2)).softmax(1)[[0, 1], [0, 3]]
    torch.testing.assert_close(values.detach(), expected)
    assert torch.all((values > 0) & (values < 1))


def test_weighted_sum_of_units(random_network: Network) -> None:
    forward = Forward(random_network)
    a, b = Unit("classifier.5", 0), Unit("features.6", 2, "mean")
    combined = forward(units([((2.0, a), (-0.5, b))]), pixels(1, 1))
    separate = forward(units([a, b]), pixels(1, 1).repeat(2, 1, 1, 1))
    torch.testing.assert_close(combined, (2.0 * separate[0] - 0.5 * separate[1]).view(1))


def test_expressions_compose_per_image_in_one_forward_pass(random_network: Network) -> None:
    forward, images = Forward(random_network), pixels(3, 2)
    a = units([Unit("classifier.5", i) for i in range(3)])
    b = units([Unit("features.6", i, "mean") for i in range(3)])
    weights = torch.tensor([1.0, 2.0, -1.0])
    with torch.no_grad():
        va, vb = forward(a, images), forward(b, images)
        calls = []
        hook = random_network.module.register_forward_hook(lambda *_: calls.append(1))
        try:
            value = forward(a - 0.5 * b * weights + b, images)
        finally:
            hook.remove()
    assert len(calls) == 1  # both terms' layers captured in one pass
    torch.testing.assert_close(value, va - 0.5 * vb * weights + vb)
    assert set((a + b).layers) == {"classifier.5", "features.6"}
    torch.testing.assert_close(forward(-a, images).detach(), -va)
    with pytest.raises(TypeError, match="number or a"):
        a * b


def test_a_pass_leaves_no_hooks(random_network: Network) -> None:
    Forward(random_network)(units(TARGETS) - facet_distance("classifier.3", torch.rand(5, 256)),
                            pixels(len(TARGETS)))  # fmt: skip
    assert all(not m._forward_hooks for m in random_network.module.modules())


def test_units_check_the_batch(random_network: Network) -> None:
    with pytest.raises(ValueError, match="3 images for 5 objectives"):
        Forward(random_network)(units(TARGETS), pixels(3))


def test_gradients_reach_each_image_from_its_own_objective(random_network: Network) -> None:
    images = pixels(len(TARGETS), 1).requires_grad_(True)
    values = Forward(random_network)(units(TARGETS), images)
    for i, target in enumerate(TARGETS):
        (grad,) = torch.autograd.grad(values[i], images, retain_graph=True)
        per_image = grad.abs().flatten(1).sum(1)
        assert per_image[i] > 0, f"no gradient for {target}"
        assert torch.count_nonzero(per_image[torch.arange(len(TARGETS)) != i]) == 0


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
def test_gradients_flow_for_every_kind_of_unit(random_network: Network, unit: Unit) -> None:
    images = pixels(1, 2).requires_grad_(True)
    (gradient,) = torch.autograd.grad(Forward(random_network)(units([unit]), images).sum(), images)
    assert torch.isfinite(gradient).all() and gradient.abs().sum() > 0


def test_unit_out_of_range_is_a_clear_error(random_network: Network) -> None:
    forward = Forward(random_network)
    with pytest.raises(
        FacetvizError, match=r"unit 4 is out of range for layer 'classifier.5'.*4 units"
    ):
        forward(units([Unit("classifier.5", 0), Unit("classifier.5", 4)]), pixels(2))
    with pytest.raises(FacetvizError, match="unit 64 .*'features.6'.*64 units"):
        forward(units([Unit("features.6", 64)]), pixels(1))


def test_unknown_layer_or_kind_is_a_clear_error(random_network: Network) -> None:
    with pytest.raises(Exception, match="features.99"):
        Forward(random_network)(units([Unit("features.99", 0)]), pixels(1))
    with pytest.raises(FacetvizError, match="kind must be one of"):
        units([Unit("classifier.5", 0, kind="logit")])


def test_facet_distance_is_zero_at_the_centroid_and_ignores_scale() -> None:
    centroids = torch.rand(3, 16, generator=torch.Generator().manual_seed(0))

    def distance(codes: torch.Tensor) -> torch.Tensor:
        return facet_distance("layer", centroids)({"layer": codes})

    torch.testing.assert_close(distance(centroids), torch.zeros(3))
    # a unit raised by scaling its code up has not left the facet
    torch.testing.assert_close(distance(2.5 * centroids), torch.zeros(3))
    assert torch.all(distance(centroids.roll(1, 0)) > 0)
    assert distance(-centroids) == pytest.approx(torch.full((3,), 2.0))


def test_similarity_compares_a_groups_images_only() -> None:
    same, other = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    codes = torch.stack([same, same, other, same])
    values = similarity("layer", [slice(0, 2), slice(2, 4)])({"layer": codes})
    torch.testing.assert_close(values, torch.tensor([1.0, 1.0, 0.0, 0.0]))
    alone = similarity("layer", [slice(0, 1)])({"layer": codes[:1]})
    torch.testing.assert_close(alone, torch.zeros(1))  # one image has no one to resemble
