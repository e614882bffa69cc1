"""config/directions.yaml in the real workflow: a probe's direction, a group of units and SAE
latents as neurons, end to end on small data; and each bad readout stopping the dry run before
any job (docs/faults.md, the bad-input table)."""

from __future__ import annotations

import copy
import json
from functools import partial
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import REPO, tests_on_pythonpath
from test_bad_inputs import assert_refused, two_at_a_time
from test_reruns import planned_jobs
from test_workflow import snakemake

pytestmark = pytest.mark.workflow

NEURONS = ["footwear", "sneaker-probe", "fc-pair"] + [f"fc-sae-{rank}" for rank in range(4)]


def small_directions(fashion_root: Path) -> dict:
    """config/directions.yaml (its base's settings and its own neurons), on 400 images."""
    return {
        "base": "config/directions.yaml",
        "run": "directions",
        "dataset": {"root": str(fashion_root), "max_images": 400},
        "model": {"width": 8, "train": {"epochs": 1}},
        "facets": {"k": 3, "m": 5, "pca_dims": 10, "perplexity": 5, "top_n": 60,
                   "max_images": 150},
        "synthesis": {"steps_scale": 0.02},
        "oracle": {"epochs": 1, "max_images": 2000, "min_accuracy": 0.0},
        "sae": {"fc": {"layer": "classifier.2", "width": 64, "k": 4, "steps": 100}},
        "figures": {"examples": 2},
    }  # fmt: skip


@pytest.fixture(scope="module")
def directions_run(tmp_path_factory: pytest.TempPathFactory, real_fashion_mnist: Path):
    workdir = tmp_path_factory.mktemp("directions")
    config = small_directions(real_fashion_mnist)
    result = snakemake(workdir, config)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return workdir / "results" / "directions", workdir, config


def test_probe_group_and_sae_latents_run_end_to_end(directions_run) -> None:
    results = directions_run[0]
    direction = np.load(results / "probes" / "sneaker.npy")
    assert direction.shape == (32,) and np.isclose(np.linalg.norm(direction), 1.0, atol=1e-5)
    probe = json.loads((results / "probes" / "sneaker.json").read_text())
    assert probe["class"] == "Sneaker" and probe["labels"] == "fine" and probe["test_auc"] > 0.5
    sae = json.loads((results / "sae" / "fc.json").read_text())
    ranked = [entry["latent"] for entry in sae["by_firing"]]
    for name in NEURONS:
        summary = json.loads((results / "facets" / f"{name}.json").read_text())
        assert summary["facets"], name
        for ext in ("png", "pdf"):
            assert (results / "figures" / "facets" / f"{name}.{ext}").stat().st_size > 1000
        batch = "batch-000" if NEURONS.index(name) < 4 else "batch-001"
        assert (results / "synthesis" / "mfv" / batch / name / "facet_00.png").exists()
        with h5py.File(results / "synthesis" / "fourier" / batch / name / "images.h5") as images:
            # fourier maximizes the neuron alone (mfv, in these few steps, also keeps the facet)
            final, start = images["activation_final"][:], images["activation_init"][:]
            assert final.mean() > start.mean(), name
    labels = {n: json.loads((results / "facets" / f"{n}.json").read_text()).get("readout", {})
              for n in NEURONS}  # fmt: skip
    assert labels["footwear"] == {}  # a unit has no readout
    assert labels["fc-pair"]["label"] == "classifier.2[1×0 - 0.5×1]"
    assert labels["sneaker-probe"]["label"] == "features.7 · probe sneaker"
    for rank in range(4):  # latents by firing rank, as the SAE's metrics list them
        assert labels[f"fc-sae-{rank}"]["label"] == f"classifier.2 · sae fc latent {ranked[rank]}"
    page = (results / "index.html").read_text()
    assert all(name in page for name in NEURONS)
    evaluation = json.loads((results / "evaluation" / "directions.json").read_text())
    scores = evaluation["probes"]["sneaker-probe"]
    assert set(scores["methods"]) >= {"mfv", "fourier", "mean_image", "nearest_real"}
    assert 0 <= scores["top_precision"]["mean"] <= 1
    purity = evaluation["sae"]["fc"]
    assert 0 < purity["latents_mean_purity"]["mean"] <= 1
    assert 0 < purity["units_mean_purity"]["mean"] <= 1


def test_a_new_sae_reruns_its_latents_only(directions_run) -> None:
    """A changed SAE retrains it and redoes its neurons' facets onward; not the model, the
    activations, the probe or the other neurons' facets."""
    _results, workdir, config = directions_run
    changed = copy.deepcopy(config)
    changed["sae"]["fc"]["steps"] = 120
    result = snakemake(workdir, changed, "--dry-run")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    jobs = planned_jobs(result.stdout + result.stderr)
    assert jobs["sae"] == 1 and jobs["sae_purity"] == 1 and jobs["facets"] == 4, jobs
    assert not {"train", "activations", "oracle", "probe"} & set(jobs), jobs


def _save(path: Path, vector: np.ndarray) -> str:
    with open(path, "wb") as handle:
        np.save(handle, vector)
    return str(path)


def _neuron(config: dict, neuron: dict) -> None:
    footwear = {"name": "footwear", "layer": "classifier.5", "unit": 0, "select": "label"}
    config["neurons"] = [footwear, {"name": "bad", **neuron}]


# name: (change(config, tmp_path), fragments the message must hold)
BAD_READOUTS = {
    "direction of the wrong length": (
        lambda c, tmp: _neuron(c, {"layer": "features.7", "spatial": "mean",
                                   "direction": _save(tmp / "v.npy", np.ones(33))}),
        ["neurons[1] (bad).direction", "33 numbers but the layer has 32 units"],
    ),
    "direction not finite": (
        lambda c, tmp: _neuron(c, {"layer": "features.7",
                                   "direction": _save(tmp / "v.npy", np.full(32, np.inf))}),
        ["neurons[1] (bad).direction", "NaN or infinite"],
    ),
    "direction not a .npy": (
        lambda c, tmp: _neuron(c, {"layer": "features.7", "direction": str(tmp / "v.csv")}),
        ["neurons[1] (bad).direction", "is not a .npy file"],
    ),
    "group unit out of range": (
        lambda c, _: _neuron(c, {"layer": "classifier.2",
                                 "units": [{"unit": 1, "weight": 1}, {"unit": 300, "weight": 1}]}),
        ["neurons[1] (bad).units[1].unit: 300 is out of range", "256 units"],
    ),
    "sae latent out of range": (
        lambda c, _: _neuron(c, {"sae": "fc", "latent": 64}),
        ["neurons[1] (bad).latent: 64 is out of range", "64 latents"],
    ),
    "probe for a class the dataset has not": (
        lambda c, _: c["probes"].update(boot={"layer": "features.7", "class": "Boot"}),
        ["probes.boot.class: 'Boot' is not a class", "Sneaker"],
    ),
}  # fmt: skip


def _dry_run(case: str, workdir: Path, fashion_root: Path):
    config = small_directions(fashion_root)
    # at width 8, features.7 has 32 channels; classifier.2 has 256 units at any width
    config["probes"] = {"sneaker": {"layer": "features.7", "class": "Sneaker"}}
    BAD_READOUTS[case][0](config, workdir)
    return snakemake(workdir, config, "--dry-run")


@pytest.fixture(scope="module")
def dry_runs(tmp_path_factory: pytest.TempPathFactory, real_fashion_mnist: Path):
    workdirs = {case: tmp_path_factory.mktemp("bad-readout") for case in BAD_READOUTS}
    with pytest.MonkeyPatch.context() as patch:
        tests_on_pythonpath(patch)
        results = two_at_a_time(
            {case: partial(_dry_run, case, w, real_fashion_mnist) for case, w in workdirs.items()}
        )
    return {case: (results[case], workdirs[case]) for case in workdirs}


@pytest.mark.parametrize("case", list(BAD_READOUTS))
def test_a_bad_readout_stops_before_any_job(case: str, dry_runs) -> None:
    result, workdir = dry_runs[case]
    assert_refused(result, BAD_READOUTS[case][1])
    assert not (workdir / "results").exists(), "a job ran despite the bad config"


def test_the_faults_table_names_every_readout_case() -> None:
    table = (REPO / "docs" / "faults.md").read_text()
    missing = [f"[{case}]" for case in BAD_READOUTS if f"[{case}]" not in table]
    assert not missing, f"docs/faults.md's bad-input table lacks {missing}"
