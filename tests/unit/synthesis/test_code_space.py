"""Facets in a generator's code space, and the constraints that hold a code in its facet."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import learned_prior_task

from facetviz.model.networks import Network
from facetviz.priors.training import encode
from facetviz.synthesis.code_space import cone, facet_codes, facet_mode, trust_region

pytestmark = pytest.mark.usefixtures("one_thread")


def test_facet_codes_are_the_members_mean_and_spread(
    small_run, small_run_network: Network, coarse_fashion
) -> None:
    task = learned_prior_task(small_run)
    codes = facet_codes(task.records, coarse_fashion, small_run_network, "classifier.3", 0.3)
    assert codes.centroid.shape == (5, 256)  # 3 facets of tops, 2 of ch2
    record = task.records[0]
    members = coarse_fashion.pixels(coarse_fashion.positions_of(record.members(1)))
    member_codes = encode(small_run_network, members, "classifier.3")
    torch.testing.assert_close(codes.centroid[1], member_codes.mean(0))
    distances = (member_codes - member_codes.mean(0)).norm(dim=1)
    torch.testing.assert_close(codes.radius[1], distances.median())
    nearest = encode(
        small_run_network, torch.from_numpy(record.nearest_images[1:2]), "classifier.3"
    )
    torch.testing.assert_close(codes.nearest[1], nearest[0])
    # the facets stage's code centroids are the same means (of float16 codes)
    np.testing.assert_allclose(
        codes.centroid[:3].numpy(), record.code_centroids, rtol=2e-2, atol=2e-2
    )


def test_the_mode_of_a_facet_of_two_kinds_is_in_the_larger_kind() -> None:
    generator = torch.Generator().manual_seed(0)
    kinds = torch.eye(4)[:2] * 5  # two directions at right angles: the centroid is between them
    noise = 0.3 * torch.randn(100, 4, generator=generator)
    members = (torch.cat([kinds[0].expand(60, 4), kinds[1].expand(40, 4)]) + noise).abs()
    mode = facet_mode(members, 0.3)
    cosine = torch.nn.functional.cosine_similarity(mode[None], kinds)
    assert float(cosine[0]) > 0.98 > 0.3 > float(cosine[1])
    centroid = torch.nn.functional.cosine_similarity(members.mean(0)[None], kinds)
    assert float(centroid[1]) > 0.5  # the centroid is a blend of both
    # a wide kernel is the centroid itself
    torch.testing.assert_close(facet_mode(members, 100.0), members.mean(0), rtol=1e-3, atol=1e-3)


def test_the_trust_region_holds_codes_within_their_radius() -> None:
    centre = torch.zeros(3, 4)
    codes = torch.tensor([[3.0, 4, 0, 0], [0.1, 0, 0, 0], [0, 0, 0, 10]])
    projected = trust_region(codes, centre, torch.tensor([1.0, 1.0, 2.0]))
    torch.testing.assert_close(projected.norm(dim=1), torch.tensor([1.0, 0.1, 2.0]))
    torch.testing.assert_close(projected[0], torch.tensor([0.6, 0.8, 0, 0]))  # same direction


def test_the_cone_holds_codes_within_their_angle() -> None:
    centre = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    codes = torch.tensor([[1.0, 1.0], [2.0, 0.1]])  # 45 degrees, and nearly on the axis
    projected = cone(codes, centre, torch.tensor([math.pi / 8, math.pi / 8]))
    angle = torch.atan2(projected[:, 1], projected[:, 0])
    assert float(angle[0]) == pytest.approx(math.pi / 8, abs=1e-5)
    torch.testing.assert_close(projected[1], codes[1])  # inside: untouched
