"""The learned prior's quality against its budget (docs/results.md §10.2): for each number of
updates, a generator trained on a finished run's model and measured and checked as rule
generator_metrics does (its oracle, the test split, `priors.check`).

    .venv/bin/python analysis/generator_budget.py --run results/default --updates 1 30 228 600
    .venv/bin/python analysis/generator_budget.py --config config/colour.yaml \\
        --run results/colour --updates 5628 11256
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import replace
from pathlib import Path

import torch
import yaml
from snakemake.utils import validate

from facetviz.core.overlay import resolve
from facetviz.core.settings import DatasetSettings, ModelSettings, PriorCheckSettings, PriorSettings
from facetviz.data.checks import input_spec
from facetviz.data.datasets import open_dataset
from facetviz.measure.generator import measure_generator
from facetviz.model.networks import load_network
from facetviz.priors.training import train_generator

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--run", type=Path, required=True, help="a finished run's results folder")
    parser.add_argument("--code-layer", default="features.7")
    parser.add_argument("--updates", type=int, nargs="+", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the generator's job runs
    # an overlay (`base:`, config/colour.yaml) as the workflow resolves it
    config = resolve(yaml.safe_load(Path(args.config).read_text()), REPO)
    validate(config, str(REPO / "workflow/schemas/config.schema.yaml"))
    dataset = DatasetSettings.from_config(config["dataset"])
    shape, names = input_spec(dataset)
    model = ModelSettings.from_config(config["model"])
    network = load_network(model, shape, len(names), args.run / "model/model.pt")
    priors = PriorSettings.from_config(config["priors"])
    check = PriorCheckSettings.from_config(config["priors"]["check"])
    fit_set, test_set = open_dataset(dataset, "train", 0), open_dataset(dataset, "test", 0)
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch)
        for updates in args.updates:
            model_path, fit, metrics = (out / f"{name}{updates}" for name in ("g", "fit", "m"))
            settings = replace(priors, updates=updates)
            train_generator(network, fit_set, args.code_layer, settings, 0, model_path, fit)
            oracle = args.run / "oracle/oracle.pt"
            m = measure_generator(network, test_set, model_path, fit, metrics, oracle, check)
            keys = ("updates", "code_cosine", "reconstruction_accuracy", "real_accuracy")
            print(json.dumps({k: m[k] for k in keys} | {"passed": m["check"]["passed"]}))


if __name__ == "__main__":
    main()
