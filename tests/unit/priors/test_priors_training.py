"""Training the learned priors and loading them: safely, and only where they fit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import prior_settings

from facetviz.core.errors import FacetvizError
from facetviz.measure.generator import measure_generator
from facetviz.model.networks import Network
from facetviz.priors.networks import Generator, build
from facetviz.priors.training import (
    encode,
    encode_shaped,
    fit_dae,
    fit_generator,
    load_prior,
    save_prior,
    train_generator,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_generator_learns_to_draw_its_training_images(
    small_run_network: Network, coarse_fashion
) -> None:
    images = coarse_fashion.pixels(np.arange(200))
    untrained = Generator(256, (1, 28, 28), 16)
    G = fit_generator(small_run_network, images, "classifier.3", prior_settings(), seed=0)
    codes = encode(small_run_network, images, "classifier.3")
    with torch.no_grad():
        trained_error = torch.nn.functional.l1_loss(G(codes), images)
        untrained_error = torch.nn.functional.l1_loss(untrained(codes), images)
    assert trained_error < 0.7 * untrained_error
    # the bounds are DGN-AM's act_range over the training codes
    torch.testing.assert_close(G.upper, codes.mean(0) + 3 * codes.std(0))
    assert torch.all(G.lower <= 0) and G.scale > 0
    again = fit_generator(small_run_network, images, "classifier.3", prior_settings(), seed=0)
    pairs = zip(G.state_dict().values(), again.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


def test_every_loss_term_trains(small_run_network: Network, coarse_fashion) -> None:
    """Feature, code and adversarial terms (DeePSiM) each change what G learns."""
    images = coarse_fashion.pixels(np.arange(64))
    plain = fit_generator(small_run_network, images, "classifier.3", prior_settings(), 0)
    for extra in (
        {"feature_layer": "features.4", "feature_weight": 1.0},
        {"code_weight": 1.0},
        {"adversarial_weight": 0.1},
    ):
        G = fit_generator(small_run_network, images, "classifier.3", prior_settings(**extra), 0)
        assert not torch.equal(G.body.entry[0].weight, plain.body.entry[0].weight), extra


def test_train_generator_writes_checkpoint_and_metrics(
    small_run_network: Network, coarse_fashion, small_oracle, tmp_path: Path
) -> None:
    fit = train_generator(
        small_run_network, coarse_fashion, "classifier.3", prior_settings(), 0,
        tmp_path / "g.pt", tmp_path / "fit.json",
    )  # fmt: skip
    metrics = measure_generator(
        small_run_network, coarse_fashion, tmp_path / "g.pt", tmp_path / "fit.json",
        tmp_path / "g.json", small_oracle[0] / "o.pt",
    )  # fmt: skip
    assert json.loads((tmp_path / "g.json").read_text()) == metrics
    assert {"pixel_mse", "code_cosine", "reconstruction_accuracy", "real_accuracy"} <= set(metrics)
    # how it was trained (the time included) reaches the metrics; the checkpoint stays free of
    # the time, so that it is byte-identical run to run
    assert fit["code_layer"] == "classifier.3" and fit["train_images"] > 0 and "seconds" in fit
    assert {key: metrics[key] for key in fit} == fit
    assert "seconds" not in torch.load(tmp_path / "g.pt", weights_only=True)["meta"]
    assert 0 <= metrics["reconstruction_accuracy"] <= 1 and metrics["code_cosine"] > 0.5
    G = load_prior(tmp_path / "g.pt", "generator", small_run_network, (1, 28, 28))
    assert G.code_layer == "classifier.3" and not any(p.requires_grad for p in G.parameters())


def test_a_prior_that_does_not_fit_is_refused_before_any_step(
    small_run_network: Network, tmp_path: Path
) -> None:
    G = Generator(256, (1, 28, 28), 8)
    save_prior(tmp_path / "g.pt", G, {"code_layer": "classifier.3"})
    with pytest.raises(FacetvizError, match=r"draws \(1, 28, 28\) images but the model takes"):
        load_prior(tmp_path / "g.pt", "generator", small_run_network, (1, 32, 32))
    save_prior(tmp_path / "other.pt", G, {"code_layer": "classifier.2"})  # 256 units too: fits
    load_prior(tmp_path / "other.pt", "generator", small_run_network, (1, 28, 28))
    save_prior(tmp_path / "conv.pt", G, {"code_layer": "features.6"})
    with pytest.raises(FacetvizError, match=r"inverts 256 units of layer 'features.6'.*3136"):
        load_prior(tmp_path / "conv.pt", "generator", small_run_network, (1, 28, 28))
    with pytest.raises(FacetvizError, match="holds a generator, not a dae"):
        load_prior(tmp_path / "g.pt", "dae", small_run_network, (1, 28, 28))
    with pytest.raises(FacetvizError, match="run the 'generator' stage first"):
        load_prior(tmp_path / "none.pt", "generator", small_run_network, (1, 28, 28))


def test_a_checkpoint_that_would_run_code_is_refused(
    small_run_network: Network, tmp_path: Path
) -> None:
    """Loaded with weights_only=True: a pickle of an object is not a checkpoint."""
    torch.save({"meta": {"kind": "generator"}, "state_dict": Generator(256, (1, 28, 28), 8)},
               tmp_path / "pickled.pt")  # fmt: skip
    with pytest.raises(FacetvizError, match=r"not a generator checkpoint.*Weights only load"):
        load_prior(tmp_path / "pickled.pt", "generator", small_run_network, (1, 28, 28))


def test_dae_learns_to_undo_noise(small_run_network: Network, coarse_fashion) -> None:
    codes = encode(small_run_network, coarse_fashion.pixels(np.arange(300)), "classifier.3")
    dae = fit_dae(codes, prior_settings(dae_epochs=60, dae_sigma=0.5), seed=0)
    noise = 0.5 * dae.std * torch.randn(codes.shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = (codes + noise - codes).norm(dim=1).mean()
        after = (dae(codes + noise) - codes).norm(dim=1).mean()
    assert after < before  # R(h + noise) is nearer h: R(h) - h points towards the data


def test_the_generator_follows_the_input_size() -> None:
    small = Generator(16, (1, 28, 28), 8)
    assert small(torch.rand(2, 16)).shape == (2, 1, 28, 28)
    assert Generator(16, (3, 30, 30), 8)(torch.rand(1, 16)).shape == (1, 3, 30, 30)
    big = Generator(32, (3, 227, 227), 4)  # the released upconv layout, cropped from 256 px
    assert type(big.body).__name__ == "UpconvGenerator"
    assert big(torch.rand(1, 32)).shape == (1, 3, 227, 227)
    assert len([m for m in big.body.fc if isinstance(m, torch.nn.Linear)]) == 3


def test_a_conv_layers_code_keeps_its_map(small_run_network: Network) -> None:
    """conv3's C×7×7 code enters the small generator through a conv, not a 3136 × 3136 fc;
    the shape travels in the checkpoint's meta, so a loaded G is built the same way."""
    codes, shape = encode_shaped(small_run_network, torch.rand(2, 1, 28, 28), "features.7")
    assert shape[1:] == (7, 7) and codes.shape == (2, shape[0] * 49)
    G = Generator(codes.shape[1], (1, 28, 28), 8, shape)
    assert isinstance(G.body.entry[0], torch.nn.Conv2d) and G(codes).shape == (2, 1, 28, 28)
    assert isinstance(Generator(codes.shape[1], (1, 28, 28), 8).body.entry[0], torch.nn.Linear)
    rebuilt = build(G.meta())
    rebuilt.load_state_dict(G.state_dict())
    torch.testing.assert_close(rebuilt(codes), G(codes))


def test_encode_reads_the_code_layer(small_run_network: Network) -> None:
    images = torch.rand(3, 1, 28, 28)
    codes = encode(small_run_network, images, "classifier.3", batch_size=2)
    assert codes.shape == (3, 256) and torch.all(codes >= 0)  # after the ReLU
