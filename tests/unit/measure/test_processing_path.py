"""Processing path: per layer, are images processed like their facet's real images?"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import EMBEDDED, synthetic_fashion_images

from facetviz.measure.oracle import OracleNet
from facetviz.measure.processing_path import PathResult, path_layers, processing_path
from facetviz.measure.similarity import cosine_matrix, leave_one_out, spread
from facetviz.model.networks import Network, capture, load_network

EMBEDDED_PATH = ["features.0", "features.3", "features.6", "classifier.2", "classifier.5"]


@pytest.fixture(scope="module")
def network() -> Network:
    """A random EmbeddedCNN (no training needed: the path is about how images are processed)."""
    torch.manual_seed(0)
    return load_network(EMBEDDED, (1, 28, 28), 4, None)


def images_of(label: int, n: int, seed: int) -> torch.Tensor:
    pixels = synthetic_fashion_images(np.full(n, label), seed)
    return torch.tensor(pixels, dtype=torch.float32)[:, None] / 255


def test_path_layers_are_conv_and_linear_in_the_order_they_run(network):
    assert path_layers(network.module) == EMBEDDED_PATH
    order = []
    modules = dict(network.module.named_modules())
    handles = [
        modules[name].register_forward_hook(lambda *_, name=name: order.append(name))
        for name in EMBEDDED_PATH
    ]
    network(torch.rand(1, 1, 28, 28))
    for handle in handles:
        handle.remove()
    assert order == EMBEDDED_PATH
    oracle_path = path_layers(OracleNet(1, 10))
    assert oracle_path[0] == "stem.0" and oracle_path[-1] == "head.2"
    assert "blocks.0.shortcut.0" in oracle_path  # projection shortcuts are on the path too


@pytest.mark.parametrize(
    "batch_size, tolerance",
    # one batch: exact up to float64 rounding; across batches the float32 forward pass itself
    # differs in the last bits with the batch's size
    [(256, 1e-12), (4, 1e-7)],
)
def test_scores_are_mean_cosine_similarities_and_leave_one_out(network, batch_size, tolerance):
    """The streamed sums give what the pairwise matrix gives."""
    images, real = torch.rand(3, 1, 28, 28), images_of(0, 9, 0)
    result = processing_path(network, images, real, batch_size=batch_size)
    with capture(network.module, EMBEDDED_PATH) as outputs, torch.no_grad():
        network(images)
        image_outputs = dict(outputs)
        network(real)
        real_outputs = dict(outputs)
    for j, name in enumerate(EMBEDDED_PATH):
        expected = cosine_matrix(image_outputs[name], real_outputs[name]).mean(1)
        assert np.allclose(result.scores[:, j], expected, rtol=0, atol=tolerance)
        loo = leave_one_out(real_outputs[name], None)
        assert np.allclose(result.real_scores[:, j], loo, rtol=0, atol=tolerance)
        assert result.real[j].as_dict() == pytest.approx(spread(loo).as_dict(), abs=tolerance)


def test_held_out_real_images_stay_on_the_path_noise_leaves_it(network):
    real, held_out = images_of(0, 40, 0), images_of(0, 8, 1)
    noise = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    result = processing_path(network, torch.cat([held_out, noise]), real)
    assert result.layers == tuple(EMBEDDED_PATH) and result.scores.shape == (16, 5)
    low = np.array([layer.low for layer in result.real])
    high = np.array([layer.high for layer in result.real])
    held_median = np.median(result.scores[:8], axis=0)
    assert ((low <= held_median) & (held_median <= high)).all()
    assert not result.leaves_path[:8].any()
    assert result.leaves_path[8:].all()
    assert (result.scores[8:] < low).any(axis=1).all()


def test_flags_and_first_layer_below():
    real = [spread(scores) for scores in np.random.default_rng(0).normal(0.9, 0.01, (3, 50))]
    thresholds = [layer.threshold for layer in real]
    scores = np.array(
        [
            [0.9, 0.9, 0.9],  # on the path
            [0.9, thresholds[1] - 0.01, 0.0],  # leaves it at the second layer
            [thresholds[0], 0.9, 0.9],  # at the threshold is not below it
        ]
    )
    result = PathResult(("a", "b", "c"), scores, np.zeros((50, 3)), tuple(real))
    assert result.below.tolist() == [
        [False, False, False],
        [False, True, True],
        [False, False, False],
    ]
    assert result.leaves_path.tolist() == [False, True, False]
    assert result.first_below() == [None, "b", None]
    record = json.loads(json.dumps(result.as_dict()))
    assert record["leaves_path"] == [False, True, False]
    assert record["real"][1]["threshold"] == pytest.approx(thresholds[1])


def test_chosen_layers_eval_mode_and_enough_real_images(network):
    real = images_of(0, 5, 0)
    result = processing_path(network, real[:2], real, layers=["classifier.2"])
    assert result.layers == ("classifier.2",) and result.scores.shape == (2, 1)
    with pytest.raises(ValueError, match="at least 2 real images"):
        processing_path(network, real, real[:1])
    network.module.train()
    try:
        with pytest.raises(ValueError, match="eval mode"):
            processing_path(network, real, real)
    finally:
        network.module.eval()


def test_a_vits_path_has_only_layers_that_are_called() -> None:
    """nn.MultiheadAttention uses its out_proj's weights without calling it: a hook there would
    never fire, so the path leaves it out, and every layer on the path gives an output."""
    from facetviz.model.embedded import EmbeddedViT

    model = EmbeddedViT().eval()
    layers = path_layers(model)
    assert not any("self_attention" in name for name in layers)
    assert "encoder.layers.encoder_layer_0.mlp.0" in layers and "heads.head" in layers
    with capture(model, layers) as outputs, torch.no_grad():
        model(torch.rand(2, 1, 28, 28))
    assert set(outputs) == set(layers)
    network = Network(model, (0.5,), (0.5,))
    result = processing_path(network, torch.rand(2, 1, 28, 28), torch.rand(6, 1, 28, 28), layers)
    assert result.scores.shape == (2, len(layers))
