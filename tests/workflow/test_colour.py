"""The colour scenes in the real workflow: config/colour.yaml (dataset.kind fashion_scenes, the
embedded CNN at 40 px RGB, its own oracle, a learned prior) end to end on small data and few
steps; config/colour-evaluation.yaml plans; a bad scene key stops the run before any job."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from conftest import REPO, dataset_settings
from test_workflow import snakemake

from facetviz.data.datasets import open_dataset
from facetviz.data.fashion_mnist import FASHION_MNIST_CLASSES
from facetviz.facets.record import FacetRecord

pytestmark = pytest.mark.workflow

SHIPPED = yaml.safe_load((REPO / "config" / "colour.yaml").read_text())


def small_colour(fashion_root: Path) -> dict:
    """config/colour.yaml on 400 scenes, few steps; its neurons, one pixel method and one
    learned prior."""
    return {
        "base": "config/colour.yaml",
        "dataset": {"root": str(fashion_root), "max_images": 400},
        "model": {"train": {"epochs": 1}},
        "facets": {"k": 3, "m": 5, "pca_dims": 10, "perplexity": 5, "top_n": 60,
                   "max_images": 150},
        "synthesis": {"methods": ["mfv", "dgn"], "steps_scale": 0.02},
        "priors": {"images": 400, "epochs": 1},
        "oracle": {"epochs": 1, "max_images": 1000, "min_accuracy": 0.0},
        "figures": {"examples": 2},
        # one class unit and the hidden unit: each neuron costs 4 jobs of a few seconds
        "neurons": [SHIPPED["neurons"][0], SHIPPED["neurons"][-1]],
    }  # fmt: skip


def test_colour_config_runs_end_to_end(tmp_path: Path, real_fashion_mnist: Path) -> None:
    config = small_colour(real_fashion_mnist)
    result = snakemake(tmp_path, config)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    results = tmp_path / "results" / SHIPPED["run"]
    model = json.loads((results / "model" / "metrics.json").read_text())
    assert model["classes"] == ["footwear", "tops", "trouser-dress", "bag"]  # the default's
    oracle = json.loads((results / "oracle" / "metrics.json").read_text())
    assert oracle["classes"] == list(FASHION_MNIST_CLASSES)  # the garment is the fine label
    with h5py.File(results / "activations.h5", "r") as handle:
        assert handle["codes"].shape == (400, 64 * 10 * 10)  # conv3 at 40 px
        assert handle["layers/classifier.5/value"].shape == (400, 4)
    # the pipeline saw the very scenes the dataset draws for those indices, in any subset
    every_scene = open_dataset(
        dataset_settings(kind="fashion_scenes", root=str(real_fashion_mnist)), seed=5
    )
    for neuron in config["neurons"]:
        name = neuron["name"]
        summary = json.loads((results / "facets" / f"{name}.json").read_text())
        assert summary["facets"] and summary["pool"] == "max", name  # the config's pooled codes
        record = FacetRecord.read(results / "facets" / f"{name}.h5")
        nearest = every_scene.positions_of(record.nearest_dataset_indices[:, 0])
        assert record.nearest_images.shape[1:] == (3, 40, 40)
        np.testing.assert_allclose(
            record.nearest_images, every_scene.pixels(nearest).numpy(), atol=1e-3
        )
        for method in ("mfv", "dgn"):
            folder = results / "synthesis" / method / "batch-000" / name
            with h5py.File(folder / "images.h5", "r") as handle:
                assert handle["images"].shape[1:] == (3, 40, 40)
                if method == "mfv":  # mfv.start: nearest, the config's
                    np.testing.assert_allclose(handle["init"][:], record.nearest_images, atol=1e-6)
    generator = json.loads((results / "priors" / "generator.json").read_text())
    assert generator["code_layer"] == "features.7"
    metrics = json.dumps(json.loads((results / "synthesis" / "metrics.json").read_text()))
    assert "mean_image" in metrics and "dgn" in metrics
    assert "footwear" in metrics and "conv3-ch0" not in metrics  # the oracle scores class units
    page = (results / "index.html").read_text()
    assert all(neuron["name"] in page for neuron in config["neurons"])


def test_colour_evaluation_plans_its_seeds(tmp_path: Path, real_fashion_mnist: Path) -> None:
    """config/colour-evaluation.yaml as shipped: 3 trainings of the scenes' CNN, each with its
    oracle and generator, 3 synthesis seeds on each; the class units only."""
    result = snakemake(tmp_path, REPO / "config" / "colour-evaluation.yaml", "--dry-run")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    jobs = dict(
        line.split()[:2]
        for line in result.stdout.splitlines()
        if len(line.split()) == 2 and line.split()[1].isdigit()
    )
    assert jobs.get("train") == "3" and jobs.get("oracle") == "3" and jobs.get("generator") == "3"
    assert "results/colour-evaluation/train-seed-2/seed-2/synthesis" in result.stdout


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        ({"garment_scale": [0.8, 0.45]}, "dataset.garment_scale: [0.8, 0.45]"),
        ({"kind": "fashion_mnist", "scene_seed": 1}, "dataset.scene_seed: only dataset.kind"),
    ],
)
def test_a_bad_scene_key_stops_the_run_naming_it(
    tmp_path: Path, real_fashion_mnist: Path, dataset: dict, message: str
) -> None:
    config = {"base": "config/colour.yaml", "dataset": dataset}
    result = snakemake(tmp_path, config, "--dry-run")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert message in output and "Traceback" not in output, output[-3000:]
