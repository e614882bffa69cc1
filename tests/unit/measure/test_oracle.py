"""The oracle: another architecture and seed, fine labels whatever the run's label_map, a bar."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import (
    COARSE_LABEL_MAP,
    EMBEDDED,
    NEURON,
    dataset_config,
    dataset_settings,
    validated,
)
from torch import nn

from facetviz.cli import main
from facetviz.core.errors import FacetvizError
from facetviz.core.settings import DatasetSettings, OracleSettings
from facetviz.data.datasets import FASHION_MNIST_CLASSES, open_dataset
from facetviz.measure.oracle import OracleNet, classify, load_oracle, train_oracle
from facetviz.model.networks import build_architecture

CPU = torch.device("cpu")


def fashion(root, **extra) -> dict:
    """A run's dataset section: coarse classes and a small image cap the oracle must ignore."""
    return dataset_config(
        kind="fashion_mnist", root=str(root), label_map=COARSE_LABEL_MAP, max_images=40, **extra
    )


def fashion_settings(root) -> DatasetSettings:
    return DatasetSettings.from_config(fashion(root))


def oracle(**values) -> OracleSettings:
    """The oracle's settings: the schema's defaults and `values`."""
    config = validated({"facets": {"layer": "classifier.3"}, "neurons": [NEURON], "oracle": values})
    return OracleSettings.from_config(config["oracle"])


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny batches: one thread is faster than several, and far faster on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(small_oracle):
    return small_oracle


def test_architecture_differs_from_the_embedded_cnn():
    oracle = OracleNet(1, 10)
    embedded = build_architecture(EMBEDDED, 1, 10)
    assert any(isinstance(m, nn.BatchNorm2d) for m in oracle.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in embedded.modules())
    assert {n for n, _ in oracle.named_parameters()}.isdisjoint(
        n for n, _ in embedded.named_parameters()
    )
    assert oracle(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_trains_on_all_fine_classes_and_all_images(trained, fashion_dir):
    folder, metrics = trained
    assert metrics == json.loads((folder / "o.json").read_text())
    # the run's label_map and max_images do not apply to the oracle
    assert metrics["classes"] == list(FASHION_MNIST_CLASSES)
    assert metrics["train_images"] == 400 and metrics["test_images"] == 100
    assert metrics["test_split"] == "test"
    assert set(metrics["per_fine_class_accuracy"]) == set(FASHION_MNIST_CLASSES)
    assert metrics["seed"] == 1000 and metrics["epochs"] == 6 and metrics["seconds"] >= 0
    # the synthetic classes differ by a bar's position: far above the 0.1 of guessing
    assert metrics["test_accuracy"] > 0.5, metrics


def test_load_and_classify_as_in_training(trained, fashion_dir):
    folder, metrics = trained
    module, classes = load_oracle(folder / "o.pt")
    assert classes == list(FASHION_MNIST_CLASSES)
    assert not module.training
    test = open_dataset(dataset_settings(root=str(fashion_dir)), "test")
    probabilities = classify(module, test.pixels(range(len(test))))
    assert probabilities.shape == (100, 10)
    assert torch.allclose(probabilities.sum(1), torch.ones(100), atol=1e-5)
    assert (probabilities >= 0).all()
    # the same normalization as in training: the same accuracy as the metrics say
    accuracy = float((probabilities.argmax(1).numpy() == test.fine_labels).mean())
    assert accuracy == pytest.approx(metrics["test_accuracy"])
    # other image sizes are resized to the oracle's input; other channel counts refused
    assert classify(module, torch.rand(3, 1, 32, 32)).shape == (3, 10)
    with pytest.raises(FacetvizError, match="channels"):
        classify(module, torch.rand(3, 3, 28, 28))


def test_weak_oracle_fails_clearly_and_writes_nothing(fashion_dir, tmp_path):
    with pytest.raises(FacetvizError, match=r"below oracle\.min_accuracy = 0\.9"):
        train_oracle(
            fashion_settings(fashion_dir), oracle(epochs=1, max_images=20), 0, CPU,
            tmp_path / "o.pt", tmp_path / "o.json",
        )  # fmt: skip
    assert not (tmp_path / "o.pt").exists() and not (tmp_path / "o.json").exists()


def test_same_seed_same_weights_and_independent_of_the_run_seed(fashion_dir, tmp_path):
    states = []
    for run, seed, offset in (("a", 3, 1000), ("b", 3, 1000), ("c", 3, 7)):
        settings = oracle(epochs=1, seed_offset=offset, max_images=60, min_accuracy=0)
        train_oracle(
            fashion_settings(fashion_dir), settings, seed, CPU, tmp_path / f"{run}.pt",
            tmp_path / f"{run}.json",
        )  # fmt: skip
        states.append(torch.load(tmp_path / f"{run}.pt", weights_only=True)["state_dict"])
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not all(torch.equal(states[0][k], states[2][k]) for k in states[0])
    assert json.loads((tmp_path / "a.json").read_text())["seed"] == 1003


def test_image_folder_oracle_takes_the_folders(image_folder, tmp_path):
    dataset = dataset_settings(
        kind="image_folder", root=str(image_folder), image_size=16, holdout=0.2
    )
    settings = oracle(epochs=1, min_accuracy=0)
    metrics = train_oracle(dataset, settings, 0, CPU, tmp_path / "o.pt", tmp_path / "o.json")
    assert metrics["classes"] == ["n01", "n02", "n03"] and metrics["test_split"] == "holdout"
    module, classes = load_oracle(tmp_path / "o.pt")
    assert classify(module, torch.rand(2, 3, 16, 16)).shape == (2, 3)


def test_cli_passes_the_oracle_section_and_fails_on_a_weak_oracle(fashion_dir, tmp_path):
    # as rule oracle passes it: without what the oracle replaces
    ignored = ("label_map", "split", "max_images")
    dataset = {key: value for key, value in fashion(fashion_dir).items() if key not in ignored}
    settings = {
        "dataset": dataset,
        "seed": 0,
        "device": "cpu",
        "oracle": {"epochs": 1, "seed_offset": 5, "max_images": 30, "min_accuracy": 0.0},
    }
    out = ["--checkpoint", str(tmp_path / "o.pt"), "--metrics", str(tmp_path / "o.json")]
    assert main(["oracle", "--settings", json.dumps(settings), *out]) == 0
    metrics = json.loads((tmp_path / "o.json").read_text())
    assert metrics["seed"] == 5 and metrics["train_images"] == 30 and metrics["epochs"] == 1
    settings["oracle"]["min_accuracy"] = 0.99
    assert main(["oracle", "--settings", json.dumps(settings), *out]) == 1


def test_missing_or_foreign_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FacetvizError, match="run the 'oracle' stage"):
        load_oracle(tmp_path / "none.pt")
    torch.save({"state_dict": {"w": torch.zeros(1)}, "meta": {}}, tmp_path / "other.pt")
    with pytest.raises(FacetvizError, match="not an oracle checkpoint"):
        load_oracle(tmp_path / "other.pt")
    np.save(tmp_path / "junk.npy", np.zeros(3))
    with pytest.raises(FacetvizError, match="cannot be read"):
        load_oracle(tmp_path / "junk.npy")


def test_schema_fills_the_oracle_defaults():
    """The schema holds the defaults (4 epochs reached 91.3-91.5 % on Fashion-MNIST, above the
    0.9 bar; README): the typed settings are built from what it fills in."""
    assert oracle() == OracleSettings(epochs=4, seed_offset=1000, min_accuracy=0.9, max_images=None)
