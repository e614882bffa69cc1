"""Neurons that are not units (model/readout.py): their value, selection and synthesis."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import facet_settings, learned_prior_task, make_task, prior_method
from test_methods import PIXEL_METHODS, run

from facetviz.activations.extract import Activations
from facetviz.core.errors import FacetvizError
from facetviz.core.settings import Neuron
from facetviz.facets.discover import discover, select_rows
from facetviz.facets.record import FacetRecord
from facetviz.model.networks import Network, capture, unit_values
from facetviz.model.readout import Readout, group_weights, unit_direction
from facetviz.synthesis.job import build_task
from facetviz.synthesis.methods import Task
from facetviz.synthesis.objectives import Forward, Projection, Unit, units

CHANNELS = 64  # features.6 of the embedded CNN at its default width


def direction(seed: int = 0, size: int = CHANNELS) -> np.ndarray:
    return unit_direction(np.random.default_rng(seed).normal(size=size))


def captured(network: Network, images: torch.Tensor, layer: str) -> torch.Tensor:
    with capture(network.module, [layer]) as out, torch.no_grad():
        network(images)
    return out[layer]


def test_a_group_is_the_weighted_sum_of_its_units(random_network: Network) -> None:
    images = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    pairs = [(3, 1.0), (7, -0.5), (20, 2.0)]
    group = Readout(group_weights(pairs, CHANNELS))
    forward = Forward(random_network)
    projected = forward(units([Projection("features.6", group, "max")] * 5), images)
    summed = forward(units([[(w, Unit("features.6", u, "max")) for u, w in pairs]] * 5), images)
    torch.testing.assert_close(projected, summed)
    read = unit_values(captured(random_network, images, "features.6"), "max")
    by_hand = sum(w * read[:, u] for u, w in pairs)
    torch.testing.assert_close(projected, by_hand)


def test_cosine_power_is_lucids_form_at_the_read_position(random_network: Network) -> None:
    """At `center` (one position) the value is Lucid's dot(x, v) * max(0.1, cos(x, v))^p."""
    images = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    v = direction(3)
    output = captured(random_network, images, "features.6")
    x = output[:, :, 3, 3]  # the centre of the 7x7 map
    vt = torch.from_numpy(v)
    dots = x @ vt
    cosine = dots / (x.norm(dim=1) * vt.norm())
    expected = dots * cosine.clamp(min=0.1) ** 2
    value = Forward(random_network)(units([Projection("features.6", Readout(v, 0.0, 2.0))] * 4),
                                    images)  # fmt: skip
    torch.testing.assert_close(value, expected)
    torch.testing.assert_close(Readout(v)(x), dots)  # p = 0: the projection


def test_units_and_projections_mix_in_one_batch(random_network: Network) -> None:
    images = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(4))
    a, b = Readout(direction(5), bias=1.5), Readout(direction(6))
    targets = [Unit("classifier.5", 1), Projection("features.6", a), Unit("features.6", 9),
               Projection("features.6", b, "mean")]  # fmt: skip
    together = Forward(random_network)(units(targets), images)
    alone = [Forward(random_network)(units([t]), images[i : i + 1])[0] for i, t in
             enumerate(targets)]  # fmt: skip
    torch.testing.assert_close(together, torch.stack(alone))
    with pytest.raises(FacetvizError, match="needs a unit"):
        targets[1].as_kind("probability")


def projection_task(count: int = 4) -> Task:
    """make_task's images, each maximizing a random direction of features.6 (2 per neuron)."""
    task = make_task(count)
    readouts = [Readout(direction(10 + i // 2)) for i in range(count)]
    targets = [Projection("features.6", r, "center") for r in readouts]
    return replace(task, units=targets, class_units=[False] * count)


@pytest.mark.parametrize("method", PIXEL_METHODS)
def test_every_pixel_method_raises_the_projection(random_network: Network, method: str) -> None:
    task = projection_task()
    # a direction's value is smaller than a unit's on this random network: more steps than
    # the units' test, so that diversity's term does not outweigh it in the first few
    result, start = run(method, random_network, task, 0.1)
    forward, objective = Forward(random_network), units(task.units)
    with torch.no_grad():
        gain = forward(objective, result.images) - forward(objective, start)
    assert (gain > 0).float().mean() >= 0.75, gain


def with_readout(record: FacetRecord, readout: Readout) -> FacetRecord:
    return replace(record, readout_weights=readout.weights, readout=readout.describe())


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("method", ["dgn", "dgn_released", "ppgn"])
def test_the_learned_priors_raise_the_projection(
    method, small_run, small_run_network, small_generator, coarse_fashion
) -> None:
    records = [FacetRecord.read(small_run / "facets" / f"{n}.h5") for n in ("tops", "ch2")]
    readout = Readout(direction(7), label="a test direction")
    records[1] = with_readout(records[1], readout)
    task = build_task(records, 0, "classifier.3", "cpu")
    assert isinstance(task.units[-1], Projection) and isinstance(task.units[0], Unit)
    instance = prior_method(method, small_run_network, small_generator, coarse_fashion)
    result, start = instance.run(task)
    forward, objective = Forward(small_run_network), units(task.units)
    with torch.no_grad():
        gain = (forward(objective, result.images) - forward(objective, start)).numpy()
    projected = slice(records[0].facet_count, None)
    assert (gain[projected] > 0).mean() >= 0.5, gain
    assert learned_prior_task(small_run).units[-1] == Unit("features.6", 2, "center")


def test_select_top_for_a_direction_takes_the_largest_projections(
    small_run: Path, coarse_fashion, tmp_path: Path
) -> None:
    v = direction(8)
    neuron = Neuron("d", "features.6", None, "mean", "top", units=CHANNELS, direction="d.npy")
    settings = facet_settings(k=2, m=4, pca_dims=10, max_images=None, top_n=50, min_size=1)
    with Activations(small_run / "activations.h5") as activations:
        read = activations.layer_values("features.6", "mean")
        rows = select_rows(activations, neuron, settings, 0, Readout(v))
    projection = read @ v
    assert len(rows) == 50
    assert projection[rows].min() >= np.sort(projection)[-50]  # the 50 largest, no other
    path = tmp_path / "d.npy"
    with open(path, "wb") as handle:
        np.save(handle, v * 3.0)  # a file's scale does not matter: it is a direction
    discover(small_run / "activations.h5", coarse_fashion, neuron, settings, 0,
             tmp_path / "d.h5", tmp_path / "d.json", readout_file=path)  # fmt: skip
    record = FacetRecord.read(tmp_path / "d.h5")
    np.testing.assert_array_equal(record.rows, rows)
    np.testing.assert_allclose(record.unit_values, projection[rows], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(record.readout_of().weights, v, rtol=1e-6)
    unit_record = FacetRecord.read(small_run / "facets" / "ch2.h5")
    assert unit_record.readout_of() is None  # a unit's file has no readout fields
