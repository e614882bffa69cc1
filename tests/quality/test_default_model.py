"""Claims about the default run on the real Fashion-MNIST: the model the default config trains
(the real data and the full training, about a minute and a half on 2 cores, so not a unit test)."""

from __future__ import annotations

import torch
import yaml
from conftest import REPO
from snakemake.utils import validate

from facetviz.core.settings import DatasetSettings, ModelSettings
from facetviz.model.train import train_embedded

CPU = torch.device("cpu")


def test_default_config_model_reaches_95_percent_coarse_accuracy(real_fashion_mnist, tmp_path):
    """The issue's bar for the default run: >= 95% coarse test accuracy on Fashion-MNIST."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))  # fills defaults
    metrics = train_embedded(
        DatasetSettings.from_config(config["dataset"]),
        ModelSettings.from_config(config["model"]),
        config["seed"],
        CPU,
        tmp_path / "m.pt",
        tmp_path / "m.json",
    )
    assert metrics["test_images"] == 10_000
    assert metrics["test_accuracy"] >= 0.95, metrics
