"""The default run's config (config/config.yaml) with the schema's defaults filled in, as the
workflow hands it to the stages: benchmarks build the typed settings of what they time from it,
so that they measure what a run does. `run_parts` takes another config (its overlays resolved)
and its finished run's folder, for the benchmarks that measure a run of another data set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def default_config(path: Path = REPO / "config" / "config.yaml") -> dict[str, Any]:
    import yaml
    from snakemake.utils import validate

    from facetviz.core.overlay import resolve

    config = resolve(yaml.safe_load(Path(path).read_text()), REPO)
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return config


def default_settings():
    """(DatasetSettings, ModelSettings) of the default run."""
    from facetviz.core.settings import DatasetSettings, ModelSettings

    config = default_config()
    dataset = DatasetSettings.from_config(config["dataset"])
    return dataset, ModelSettings.from_config(config["model"])


def default_network(config: dict[str, Any], results: Path = REPO / "results" / "default"):
    """The trained model of the run in `results` (`make run` makes the default run's)."""
    from facetviz.core.settings import DatasetSettings, ModelSettings
    from facetviz.data.checks import input_spec
    from facetviz.model.networks import load_network

    shape, classes = input_spec(DatasetSettings.from_config(config["dataset"]))
    weights = results / "model" / "model.pt"
    return load_network(ModelSettings.from_config(config["model"]), shape, len(classes), weights)


def default_run_parts(threads: int):
    """(config, trained network, DatasetSettings) of the default run, torch on `threads`."""
    return run_parts(threads, REPO / "config" / "config.yaml", REPO / "results" / "default")


def run_parts(threads: int, config_path: Path, results: Path):
    """(config, trained network, DatasetSettings) of the run of `config_path` in `results`."""
    import torch

    from facetviz.core.settings import DatasetSettings

    torch.set_num_threads(threads)
    config = default_config(config_path)
    network = default_network(config, results)
    return config, network, DatasetSettings.from_config(config["dataset"])
