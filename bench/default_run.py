"""The default run's config (config/config.yaml) with the schema's defaults filled in, as the
workflow hands it to the stages: benchmarks build the typed settings of what they time from it,
so that they measure what a run does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def default_config() -> dict[str, Any]:
    import yaml
    from snakemake.utils import validate

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return config


def default_settings():
    """(DatasetSettings, ModelSettings) of the default run."""
    from facetviz.core.settings import DatasetSettings, ModelSettings

    config = default_config()
    dataset = DatasetSettings.from_config(config["dataset"])
    return dataset, ModelSettings.from_config(config["model"])


def default_network(config: dict[str, Any]):
    """The default run's trained model (`make run` makes it)."""
    from facetviz.core.settings import DatasetSettings, ModelSettings
    from facetviz.data.checks import input_spec
    from facetviz.model.networks import load_network

    shape, classes = input_spec(DatasetSettings.from_config(config["dataset"]))
    weights = REPO / "results" / "default" / "model" / "model.pt"
    return load_network(ModelSettings.from_config(config["model"]), shape, len(classes), weights)


def default_run_parts(threads: int):
    """(config, trained network, DatasetSettings) of the default run, torch on `threads`."""
    import torch

    from facetviz.core.settings import DatasetSettings

    torch.set_num_threads(threads)
    config = default_config()
    return config, default_network(config), DatasetSettings.from_config(config["dataset"])
