"""Training the embedded CNN: it learns, reports its held-out split, and is reproducible."""

from __future__ import annotations

import json

import torch
from conftest import dataset_settings, model_settings

from facetviz.core.settings import ModelSettings
from facetviz.data.datasets import FASHION_MNIST_CLASSES
from facetviz.model.networks import load_network
from facetviz.model.train import train_embedded

CPU = torch.device("cpu")


def model(epochs: int = 1, width: int = 4) -> ModelSettings:
    """A small embedded CNN that trains briefly."""
    return model_settings(width=width, train={"epochs": epochs, "batch_size": 32, "lr": 0.003})


def test_learns_fashion_format_data_and_writes_metrics(fashion_dir, tmp_path):
    dataset = dataset_settings(
        kind="fashion_mnist",
        root=str(fashion_dir),
        label_map={
            "even": ["T-shirt/top", "Pullover", "Coat", "Sneaker", "Bag"],
            "odd": ["Trouser", "Dress", "Sandal", "Shirt", "Ankle boot"],
        },
    )
    network_settings = model(epochs=4, width=8)
    metrics = train_embedded(
        dataset, network_settings, 0, CPU, tmp_path / "m.pt", tmp_path / "m.json"
    )
    assert metrics == json.loads((tmp_path / "m.json").read_text())
    # the synthetic classes differ by a vertical bar: far above the 0.5 of guessing
    assert metrics["test_accuracy"] > 0.9
    assert metrics["test_split"] == "test" and metrics["test_images"] == 100
    assert set(metrics["per_fine_class_accuracy"]) == set(FASHION_MNIST_CLASSES)
    network = load_network(network_settings, (1, 28, 28), 2, tmp_path / "m.pt")
    assert network(torch.zeros(1, 1, 28, 28)).shape == (1, 2)


def test_image_folder_trains_on_fit_and_reports_holdout(image_folder, tmp_path):
    dataset = dataset_settings(
        kind="image_folder", root=str(image_folder), image_size=16, holdout=0.2
    )
    metrics = train_embedded(dataset, model(), 0, CPU, tmp_path / "m.pt", tmp_path / "m.json")
    assert metrics["test_split"] == "holdout"
    assert metrics["test_images"] == 3 and metrics["train_images"] == 12  # 15 images, 20% held out
    assert metrics["classes"] == ["n01", "n02", "n03"]


def test_same_seed_same_weights(fashion_dir, tmp_path):
    dataset = dataset_settings(kind="fashion_mnist", root=str(fashion_dir), max_images=120)
    states = []
    for run, seed in (("a", 3), ("b", 3), ("c", 4)):
        train_embedded(
            dataset, model(), seed, CPU, tmp_path / f"{run}.pt", tmp_path / f"{run}.json"
        )
        states.append(torch.load(tmp_path / f"{run}.pt", weights_only=True)["state_dict"])
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not all(torch.equal(states[0][k], states[2][k]) for k in states[0])
