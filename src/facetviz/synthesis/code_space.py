"""Each facet in a generator's code space: where the learned-prior methods start, and the region
they must stay in ("keeping the facet in code space").

From the codes of a facet's member images at the code layer: the centroid (MFV's mean-image
initialization carried into code space), its mode (the local mean of its densest part), the code
of its nearest real image, and the facet's own spread: the median distance of its members to the
centroid (the trust region's radius) and their median angle to it (the cone's half-angle).

A facet that mixes two kinds of image (on the default run about a third have a majority fine
class under 60%) has its centroid between them, a blend that neither kind looks like, the same
blur MFV's mean images show; mean shift from the centroid climbs to the larger kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from facetviz.data.datasets import FacetDataset
from facetviz.facets.record import FacetRecord
from facetviz.model.networks import Network
from facetviz.priors.training import encode


@dataclass(frozen=True)
class FacetCodes:
    """Per image of a task (one per facet, neurons in order): its facet in code space."""

    centroid: torch.Tensor  # [B, D] mean code of the facet's members
    mode: torch.Tensor  # [B, D] the members' mean weighted around the densest direction
    nearest: torch.Tensor  # [B, D] code of the real image nearest the centroid
    radius: torch.Tensor  # [B] median distance of the members to the centroid
    angle: torch.Tensor  # [B] median angle of the members to the centroid (radians)

    def to(self, device: torch.device | str) -> FacetCodes:
        return FacetCodes(*(value.to(device) for value in self.__dict__.values()))


def facet_codes(
    records: Sequence[FacetRecord],
    dataset: FacetDataset,
    network: Network,
    layer: str,
    mode_bandwidth: float,
) -> FacetCodes:
    """Encode every facet's member images and nearest real image at `layer`; `mode_bandwidth`:
    the mode's kernel width, in units of the members' median angle to their centroid."""
    rows: dict[str, list[torch.Tensor]] = {key: [] for key in FacetCodes.__dataclass_fields__}
    for record in records:
        nearest = encode(network, torch.from_numpy(record.nearest_images), layer)
        for facet in range(record.facet_count):
            pixels = dataset.pixels(dataset.positions_of(record.members(facet)))
            members = encode(network, pixels, layer)
            centroid = members.mean(0)
            cosine = torch.nn.functional.cosine_similarity(members, centroid[None], dim=1)
            rows["centroid"].append(centroid)
            rows["mode"].append(facet_mode(members, mode_bandwidth))
            rows["nearest"].append(nearest[facet])
            rows["radius"].append((members - centroid).norm(dim=1).median())
            rows["angle"].append(torch.arccos(cosine.clamp(-1, 1)).median())
    return FacetCodes(**{key: torch.stack(values) for key, values in rows.items()})


def facet_mode(members: torch.Tensor, bandwidth: float, steps: int = 30) -> torch.Tensor:
    """Mean shift over the members' directions, from their centroid, with a Gaussian kernel in
    the angle whose width is `bandwidth` × their median angle to the centroid: the weighted mean
    of the members around the densest direction (a code G can draw, as the centroid is)."""
    directions = torch.nn.functional.normalize(members, dim=1)

    def angles(centre: torch.Tensor) -> torch.Tensor:
        cosine = directions @ torch.nn.functional.normalize(centre, dim=0)
        return torch.arccos(cosine.clamp(-1, 1))

    centre = members.mean(0)
    width = bandwidth * angles(centre).median().clamp_min(1e-6)
    for _ in range(steps):
        weights = torch.exp(-0.5 * (angles(centre) / width) ** 2)
        centre = (weights[:, None] * members).sum(0) / weights.sum().clamp_min(1e-30)
    return centre


def trust_region(codes: torch.Tensor, centre: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Each code projected back into the ball of its radius around its centre."""
    offset = codes - centre
    norm = offset.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return centre + offset * torch.clamp(radius[:, None] / norm, max=1.0)


def cone(codes: torch.Tensor, centre: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Each code projected onto the cone of half-angle `angle` around its centre's direction:
    the unit may grow the code, not turn it away from its facet."""
    axis = torch.nn.functional.normalize(centre, dim=1)
    along = (codes * axis).sum(1, keepdim=True)
    across = codes - along * axis
    across_norm = across.norm(dim=1, keepdim=True).clamp_min(1e-12)
    phi = torch.atan2(across_norm, along)
    theta = angle[:, None]
    length = codes.norm(dim=1, keepdim=True) * torch.cos((phi - theta).clamp(max=np.pi / 2))
    projected = length * (torch.cos(theta) * axis + torch.sin(theta) * across / across_norm)
    return torch.where(phi > theta, projected, codes)
