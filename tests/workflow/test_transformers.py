"""Vision transformers in the real workflow: config/vit.yaml (the embedded ViT, token rules,
facets from tokens, the generator on the patch grid) on small data, and the torchvision
configs config/vit-b-16.yaml and config/resnet50.yaml as shipped, with random weights on a
generated ImageFolder (only what needs ImageNet, weights or a GPU overridden)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import pytest
import yaml
from conftest import REPO, make_image_folder
from test_workflow import snakemake

pytestmark = pytest.mark.workflow

MLP = "encoder.layers.encoder_layer_2.mlp.1"


def small_vit(fashion_root: Path) -> dict:
    """config/vit.yaml on 400 images, few steps; its neurons, one pixel method and one learned
    prior (every method runs on the ViT in config/vit-evaluation.yaml, docs/results.md §9)."""
    return {
        "base": "config/vit.yaml",
        "run": "vit",
        "dataset": {"root": str(fashion_root), "max_images": 400},
        "model": {"train": {"epochs": 1}},
        "facets": {"k": 3, "m": 5, "pca_dims": 10, "perplexity": 5, "top_n": 60,
                   "max_images": 150},
        "synthesis": {"methods": ["mfv", "dgn"], "steps_scale": 0.02, "neurons_per_job": 8},
        "priors": {"images": 400, "epochs": 1},
        "oracle": {"epochs": 1, "max_images": 2000, "min_accuracy": 0.0},
        "figures": {"examples": 2},
    }  # fmt: skip


def test_vit_config_runs_end_to_end(tmp_path: Path, real_fashion_mnist: Path) -> None:
    config = small_vit(real_fashion_mnist)
    result = snakemake(tmp_path, config)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    results = tmp_path / "results" / "vit"
    with h5py.File(results / "activations.h5", "r") as handle:
        assert handle["codes"].shape == (400, 50 * 64)  # every token of the last block
        for rule in ("mean", "cls", "center"):
            assert handle[f"layers/{MLP}@{rule}/value"].shape == (400, 128)
        assert handle["layers/heads.head/value"].shape == (400, 4)
    generator = json.loads((results / "priors" / "generator.json").read_text())
    assert generator["code_layer"] == "encoder.layers.encoder_layer_2@grid"
    shipped = yaml.safe_load((REPO / "config" / "vit.yaml").read_text())
    for neuron in shipped["neurons"]:
        summary = json.loads((results / "facets" / f"{neuron['name']}.json").read_text())
        assert summary["facets"], neuron["name"]
        for method in ("mfv", "dgn"):
            folder = results / "synthesis" / method / "batch-000" / neuron["name"]
            with h5py.File(folder / "images.h5", "r") as handle:
                assert handle["images"].shape[1:] == (1, 28, 28)
    metrics = json.loads((results / "synthesis" / "metrics.json").read_text())
    assert "mean_image" in json.dumps(metrics) and "dgn" in json.dumps(metrics)
    page = (results / "index.html").read_text()
    assert all(neuron["name"] in page for neuron in shipped["neurons"])


def imagenet_like(tmp_path: Path, config: dict) -> dict:
    """`config` (a shipped ImageNet config) on a tiny ImageFolder with its classes' wnid
    folders, random weights, on the CPU, at sizes for a test."""
    wnids = [n["class"] for n in config["neurons"][:1]] + ["n01440764"]
    root = make_image_folder(tmp_path / "train", dict.fromkeys(wnids, 4), size=(80, 60))
    config["device"] = "cpu"
    config["dataset"].update(root=str(root), workers=0)
    config["model"]["weights"] = "random"
    config["activations"].update(batch_size=8, shards=1)
    config["facets"].update(k=2, m=2, pca_dims=4, perplexity=2, min_size=1, top_n=8)
    config["synthesis"]["steps_scale"] = 0.01
    config["priors"].update(images=8, epochs=1, batch_size=4)
    return config


@pytest.mark.parametrize("name", ["vit-b-16", "resnet50"])
def test_torchvision_config_runs_end_to_end_with_random_weights(tmp_path: Path, name: str) -> None:
    shipped = yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text())
    config = imagenet_like(tmp_path, yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text()))
    # one class unit and the hidden units of each kind (ViT-B/16 at 224 px is slow on a CPU)
    kept = [shipped["neurons"][0]] + [n for n in shipped["neurons"] if n.get("select") != "label"]
    config["neurons"] = kept[:3]
    config["synthesis"].update(steps_scale=0.004, neurons_per_job=3)
    for method in ("vit", "fourier"):  # one copy per step, not the recipe's 8
        config["synthesis"][method] = {**config["synthesis"].get(method, {}), "copies": 1}
    result = snakemake(tmp_path, config)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    results = tmp_path / "results" / shipped["run"]
    with h5py.File(results / "activations.h5", "r") as handle:
        layers = set(handle["layers"])
    for neuron in config["neurons"]:
        assert json.loads((results / "facets" / f"{neuron['name']}.json").read_text())["facets"]
        for method in shipped["synthesis"]["methods"]:
            batch = results / "synthesis" / method / "batch-000" / neuron["name"]
            with h5py.File(batch / "images.h5", "r") as handle:
                assert handle["images"].shape[1:] == (3, 224, 224)
    if name == "vit-b-16":
        assert "encoder.layers.encoder_layer_6.mlp.1@cls" in layers
        assert "encoder.layers.encoder_layer_6.mlp.1@mean" in layers
        with h5py.File(results / "activations.h5", "r") as handle:
            assert handle["codes"].shape[1] == 768  # the class token
    else:
        assert "layer4" in layers  # a conv map, read by its spatial rule
    assert (results / "index.html").exists()
