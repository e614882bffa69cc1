"""Every case of the bad-input table (docs/faults.md), against the real snakemake.

Config mistakes are dry runs: they must stop at parse time, before any job. Data and model
faults are real runs on small data: the job that meets them stops (or, where the config asks,
skips and records). Each test asserts that the message names the key or the file, that no
traceback reaches the user, and that nothing that looks like a finished output is left.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from conftest import (
    REPO,
    dataset_settings,
    make_image_folder,
    model_settings,
    partial_files,
    tests_on_pythonpath,
)
from fault_models import CLASSES, FOLDER_RUN, Payload, build, folder_config
from test_workflow import snakemake, tiny_config

pytestmark = [pytest.mark.workflow, pytest.mark.usefixtures("fault_models_importable")]

IMAGES = sum(CLASSES.values())


def assert_refused(result: subprocess.CompletedProcess, expected: list[str]) -> str:
    """The run failed with a message holding every fragment, and without a traceback."""
    message = result.stdout + result.stderr
    assert result.returncode != 0, message[-3000:]
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in:\n{message[-4000:]}"
    assert "Traceback" not in message, message[-4000:]
    # no library frames either (a failed job's own error is all its log holds)
    assert not re.search(r'File "[^"]*site-packages', message), message[-4000:]
    return message


# --- config mistakes: the real snakemake's dry run stops before any job ----------------------


def _resnet18(config: dict, weights: str) -> None:
    config["model"] = {"kind": "torchvision", "arch": "resnet18", "weights": weights}
    config["dataset"]["channels"] = 3
    config["facets"]["layer"] = "avgpool"
    config["neurons"] = [{"name": "fc-0", "layer": "fc", "unit": 0, "select": "top"}]


def _alexnet(config: dict) -> None:
    config["model"] = {"kind": "torchvision", "arch": "alexnet", "weights": "random"}
    config["facets"]["layer"] = "classifier.5"
    config["neurons"] = [{"name": "fc8-0", "layer": "classifier.6", "unit": 0}]


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _images_without_classes(tmp: Path) -> str:
    flat = make_image_folder(tmp / "flat", {"a": 2})
    for image in (flat / "a").iterdir():
        image.rename(flat / image.name)
    (flat / "a").rmdir()
    return str(flat)


def _classes_without_images(tmp: Path) -> str:
    for name in ("a", "b"):
        (_mkdir(tmp / "bare" / name) / "notes.txt").write_text("no images here")
    return str(tmp / "bare")


# name: (base config, change(config, tmp_path), fragments the message must hold)
Change = Callable[[dict, Path], object]
BAD_CONFIGS: dict[str, tuple[str, Change, list[str]]] = {
    "unknown top-level key": ("tiny", lambda c, _: c.update(sneed=1), ["sneed"]),
    "unknown nested key": ("tiny", lambda c, _: c["facets"].update(kk=3), ["kk", "facets"]),
    "wrong type": (
        "tiny",
        lambda c, _: c["facets"].update(k="ten"),
        ["ten", "'k'", "integer"],
    ),
    "unknown layer": (
        "tiny",
        lambda c, _: c["neurons"][0].update(layer="classifier.9"),
        ["neurons[0] (footwear).layer", "classifier.9"],
    ),
    "unknown facet layer": (
        "tiny",
        lambda c, _: c["facets"].update(layer="fc7"),
        ["facets.layer", "fc7"],
    ),
    "unit out of range": (
        "tiny",
        lambda c, _: c["neurons"][1].update(unit=7),
        ["neurons[1] (trouser-dress).unit", "out of range", "4 units"],
    ),
    "conv unit out of range": (
        "tiny",
        lambda c, _: c["neurons"][2].update(unit=32),
        ["neurons[2] (conv-ch3).unit", "32 units"],
    ),
    "unknown clustering space": (
        "tiny",
        lambda c, _: c["facets"].update(space="umap"),
        ["umap", "space", "tsne"],
    ),
    "k above the image cap": (
        "tiny",
        lambda c, _: c["facets"].update(top_n=2),
        ["facets.top_n", "facets.k = 3"],
    ),
    "unknown class": (
        "tiny",
        lambda c, _: c["neurons"][0].update({"class": "hats"}),
        ["class", "hats"],
    ),
    "class index out of range": (
        "tiny",
        lambda c, _: c["neurons"][0].update({"class": 7}),
        ["neurons[0] (footwear).class: 7 is out of range", "4 classes"],
    ),
    "duplicate neuron name": (
        "tiny",
        lambda c, _: c["neurons"][1].update(name="footwear"),
        ["neurons[1] (footwear).name", "used twice"],
    ),
    "fine class under two classes": (
        "tiny",
        lambda c, _: c["dataset"]["label_map"]["tops"].append("Sandal"),
        ["dataset.label_map", "'Sandal' is listed under two classes"],
    ),
    "missing weights file": (
        "tiny",
        lambda c, _: _resnet18(c, "/nonexistent.pth"),
        ["/nonexistent.pth", "does not exist", "random"],
    ),
    "unknown architecture": (
        "tiny",
        lambda c, _: _resnet18(c, "random") or c["model"].update(arch="resnet19"),
        ["model.arch", "resnet19"],
    ),
    "grayscale dataset into an RGB architecture": (
        "tiny",
        lambda c, _: _alexnet(c),
        ["dataset.channels", "torchvision alexnet", "features.0", "Set dataset.channels: 3"],
    ),
    "28 px into AlexNet": (
        "tiny",
        lambda c, _: _alexnet(c) or c["dataset"].update(channels=3),
        ["dataset.image_size: 28 px", "torchvision alexnet", "at least 63 px"],
    ),
    "16 px ImageFolder into AlexNet": (
        "folder",
        lambda c, _: _alexnet(c) or c["dataset"].update(image_size=16),
        ["dataset.image_size: 16 px (as set)", "at least 63 px"],
    ),
    "Fashion-MNIST root that does not exist": (
        "tiny",
        lambda c, tmp: c["dataset"].update(root=str(tmp / "nowhere")),
        ["dataset.root", "nowhere does not exist", "train-images-idx3-ubyte"],
    ),
    "Fashion-MNIST root without the IDX files": (
        "tiny",
        lambda c, tmp: c["dataset"].update(root=str(_mkdir(tmp / "empty"))),
        ["dataset.root", "empty lacks train-images-idx3-ubyte"],
    ),
    "unknown split": (
        "tiny",
        lambda c, _: c["dataset"].update(split="validation"),
        ["dataset.split", "'validation'", "train, test"],
    ),
    "ImageFolder root that does not exist": (
        "folder",
        lambda c, tmp: c["dataset"].update(root=str(tmp / "missing")),
        ["dataset.root", "missing does not exist"],
    ),
    "ImageFolder root of images without class folders": (
        "folder",
        lambda c, tmp: c["dataset"].update(root=_images_without_classes(tmp)),
        ["dataset.root", "has no class folders"],
    ),
    "ImageFolder class folders without images": (
        "folder",
        lambda c, tmp: c["dataset"].update(root=_classes_without_images(tmp)),
        ["dataset.root: no images in class sub-folders", "bare"],
    ),
    "label_map folder that does not exist": (
        "folder",
        lambda c, _: c["dataset"].update(label_map={"x": ["a", "zzz"], "y": ["b"]}),
        ["dataset.label_map.x", "'zzz' is not a class"],
    ),
    "label_map class whose folders hold no images": (
        "folder",
        lambda c, tmp: (
            _mkdir(Path(c["dataset"]["root"]) / "d")
            and c["dataset"].update(label_map={"a": ["a"], "bc": ["b", "c"], "empty": ["d"]})
        ),
        ["dataset.label_map.empty: class 'empty' has no images", "/d holds no image files"],
    ),
    "selected class folder without images": (
        "folder",
        lambda c, _: (
            _mkdir(Path(c["dataset"]["root"]) / "d") and c["neurons"][0].update({"class": "d"})
        ),
        ["neurons[0] (logit-a).class: class 'd' has no images", "/d holds no image files"],
    ),
    "unknown on_unreadable": (
        "folder",
        lambda c, _: c["dataset"].update(on_unreadable="ignore"),
        ["on_unreadable", "'ignore'"],
    ),
    "normalization of the wrong length": (
        "folder",
        lambda c, _: c["model"].update(mean=[0.5, 0.5]),
        ["model.mean/model.std", "need 1 or 3 values"],
    ),
    "custom factory that cannot be imported": (
        "folder",
        lambda c, _: c["model"].update(factory="no_such_module:build"),
        ["model.factory", "no_such_module"],
    ),
    "custom factory with wrong kwargs": (
        "folder",
        lambda c, _: c["model"].update(kwargs={"colour": 1}),
        ["model.factory", "TypeError", "colour", "model.kwargs"],
    ),
}


def selected_cases(request: pytest.FixtureRequest, test: str) -> list[str]:
    """The cases of parametrized `test` that this session runs (after -k, node ids, ...)."""
    return [
        item.callspec.params["case"]
        for item in request.session.items
        if getattr(item, "originalname", "") == test
    ]


def two_at_a_time(runs: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """Call each of `runs` in a thread, two at once: each starts one snakemake, which is one
    busy process (mostly Python and torch starting up), so two fill a 2-core machine."""
    with ThreadPoolExecutor(2) as pool:
        futures = {case: pool.submit(run) for case, run in runs.items()}
        return {case: future.result() for case, future in futures.items()}


def _dry_run(case: str, workdir: Path, fashion_root: Path) -> subprocess.CompletedProcess:
    base, change, _expected = BAD_CONFIGS[case]
    if base == "tiny":
        config = copy.deepcopy(tiny_config(fashion_root))  # it shares its label map
    else:
        config = folder_config(make_image_folder(workdir / "train", CLASSES))
    change(config, workdir)
    return snakemake(workdir, config, "--dry-run")


@pytest.fixture(scope="module")
def dry_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, real_fashion_mnist
) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """The dry run of every selected case, and its working directory."""
    workdirs = {
        case: tmp_path_factory.mktemp("bad-config")
        for case in selected_cases(request, "test_bad_config_stops_before_any_job")
    }
    with pytest.MonkeyPatch.context() as patch:
        tests_on_pythonpath(patch)
        results = two_at_a_time(
            {
                case: partial(_dry_run, case, workdir, real_fashion_mnist)
                for case, workdir in workdirs.items()
            }
        )
    return {case: (results[case], workdirs[case]) for case in workdirs}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_config_stops_before_any_job(case: str, dry_runs) -> None:
    result, workdir = dry_runs[case]
    assert_refused(result, BAD_CONFIGS[case][2])
    assert not (workdir / "results").exists(), "a job ran despite the bad config"


# --- data and model faults: real runs on small data -----------------------------------------


def run(workdir: Path, config: dict, *targets: str) -> subprocess.CompletedProcess:
    """A real run of `targets` (under results/<run>/), showing failed jobs' logs as the default
    profile does."""
    results = f"results/{config['run']}"
    return snakemake(workdir, config, "--show-failed-logs", *(f"{results}/{t}" for t in targets))


def _corrupt(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[:60])  # a cut-off download: header, no pixels
    return path


@dataclass(frozen=True)
class Inputs:
    """What the faults start from: Fashion-MNIST, and a finished activations stage of the
    small ImageFolder run (its results/ folder and config) for the faults that break it."""

    fashion: Path
    finished: Path
    finished_config: dict


# prepare(workdir, inputs) -> (config, fragments the message must hold); it writes the data
Prepare = Callable[[Path, Inputs], tuple[dict, list[str]]]


@dataclass(frozen=True)
class Fault:
    prepare: Prepare
    targets: tuple[str, ...] = ("activations.h5",)  # run; none may be left looking complete

    def run(self, workdir: Path, inputs: Inputs) -> tuple[subprocess.CompletedProcess, dict, list]:
        config, expected = self.prepare(workdir, inputs)
        return run(workdir, config, *self.targets), config, expected


def _unreadable_image(workdir: Path, _inputs: Inputs) -> tuple[dict, list[str]]:
    root = make_image_folder(workdir / "train", CLASSES)
    bad = _corrupt(root / "b" / "img_002.jpg")
    return folder_config(root), [f"cannot read image {bad}", "dataset.on_unreadable: skip"]


def _every_image_unreadable(workdir: Path, _inputs: Inputs) -> tuple[dict, list[str]]:
    root = make_image_folder(workdir / "train", CLASSES)
    for image in root.rglob("img_*"):
        image.write_bytes(b"")
    config = folder_config(root)
    config["dataset"]["on_unreadable"] = "skip"
    return config, [f"none of the {IMAGES} images could be read", "check dataset.root"]


def _truncated_fashion_mnist(workdir: Path, inputs: Inputs) -> tuple[dict, list[str]]:
    root = _mkdir(workdir / "fashion")
    for source in inputs.fashion.glob("*-ubyte.gz"):
        shutil.copy(source, root)
    images = root / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[: images.stat().st_size // 2])
    return tiny_config(root), [f"{images} cannot be read", "corrupt or partial download"]


def _faulty_model(fault: str, expected: list[str]) -> Prepare:
    def prepare(workdir: Path, _inputs: Inputs) -> tuple[dict, list[str]]:
        return folder_config(make_image_folder(workdir / "train", CLASSES), fault=fault), expected

    return prepare


def _weights_file(weights: Callable[[], object], expected: list[str]) -> Prepare:
    def prepare(workdir: Path, _inputs: Inputs) -> tuple[dict, list[str]]:
        config = folder_config(make_image_folder(workdir / "train", CLASSES))
        config["model"]["weights"] = str(workdir / "weights.pt")
        torch.save(weights(), workdir / "weights.pt")
        return config, [str(workdir / "weights.pt"), *expected]

    return prepare


def _cuda_without_gpu(workdir: Path, _inputs: Inputs) -> tuple[dict, list[str]]:
    config = folder_config(make_image_folder(workdir / "train", CLASSES))
    config["device"] = "cuda"
    return config, ["device: cuda was asked for but no CUDA GPU is visible"]


def _broken_activations(workdir: Path, inputs: Inputs) -> Path:
    shutil.copytree(inputs.finished, workdir / "results")
    return workdir / "results" / FOLDER_RUN / "activations.h5"


def _nan_rows(workdir: Path, inputs: Inputs) -> tuple[dict, list[str]]:
    with h5py.File(_broken_activations(workdir, inputs), "r+") as handle:
        codes = handle["codes"][:]
        codes[[3, 5]] = np.nan
        handle["codes"][...] = codes
    return inputs.finished_config, ["activations.h5: the codes are NaN or infinite in 2 rows: 3, 5"]


def _truncated_activations(workdir: Path, inputs: Inputs) -> tuple[dict, list[str]]:
    activations = _broken_activations(workdir, inputs)
    activations.write_bytes(activations.read_bytes()[:2000])
    message = f"results/{FOLDER_RUN}/activations.h5 is not a readable HDF5 file"
    return inputs.finished_config, [message, "corrupt or truncated"]


FACETS = ("facets/logit-a.json", "facets/logit-a.h5")
DATA_FAULTS: dict[str, Fault] = {
    "unreadable image": Fault(_unreadable_image),
    "every image unreadable, with skip": Fault(_every_image_unreadable),
    "truncated Fashion-MNIST file": Fault(_truncated_fashion_mnist, ("model/model.pt",)),
    "NaN activations": Fault(
        _faulty_model("nan", ["layer 'head' is NaN or infinite for", "a/img_000.jpg"])
    ),
    "codes past float16's range": Fault(
        _faulty_model("overflow", ["codes of facets.layer exceed float16's range (65504)"])
    ),
    "activations.h5 with NaN rows": Fault(_nan_rows, FACETS),
    "truncated activations.h5": Fault(_truncated_activations, FACETS),
    "weights that would run code": Fault(
        _weights_file(lambda: {"state_dict": Payload()}, ["is not a plain weights file"])
    ),
    "weights of another model": Fault(
        _weights_file(lambda: build(classes=5).state_dict(), ["does not fit the configured model"])
    ),
    "device: cuda without a GPU": Fault(_cuda_without_gpu),
}


@pytest.fixture(scope="module")
def fault_runs(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    real_fashion_mnist: Path,
    folder_activations: tuple[Path, dict],
) -> dict[str, tuple[subprocess.CompletedProcess, dict, list[str], Path]]:
    """The run of every selected fault: its result, config, expected fragments and workdir."""
    inputs = Inputs(real_fashion_mnist, *folder_activations)
    cases = selected_cases(request, "test_data_fault_stops_the_job_naming_it")
    if torch.cuda.is_available():  # the test skips it
        cases = [case for case in cases if case != "device: cuda without a GPU"]
    workdirs = {case: tmp_path_factory.mktemp("data-fault") for case in cases}
    with pytest.MonkeyPatch.context() as patch:
        tests_on_pythonpath(patch)
        results = two_at_a_time(
            {case: partial(DATA_FAULTS[case].run, workdirs[case], inputs) for case in cases}
        )
    return {case: (*results[case], workdirs[case]) for case in cases}


@pytest.mark.parametrize("case", list(DATA_FAULTS))
def test_data_fault_stops_the_job_naming_it(case: str, fault_runs) -> None:
    if case == "device: cuda without a GPU" and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    result, config, expected, workdir = fault_runs[case]
    assert_refused(result, expected)
    results = workdir / "results" / config["run"]
    for output in DATA_FAULTS[case].targets:
        assert not (results / output).exists(), f"{output} looks complete after the failure"
    assert not partial_files(results), partial_files(results)
    if DATA_FAULTS[case].targets == FACETS:  # the activations made before are used, not redone
        assert "rule activations:" not in result.stdout + result.stderr


@pytest.fixture(scope="module")
def folder_activations(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A finished activations stage of the small ImageFolder run: results/ and the config."""
    workdir = tmp_path_factory.mktemp("folder-activations")
    config = folder_config(make_image_folder(workdir / "train", CLASSES))
    with pytest.MonkeyPatch.context() as patch:
        tests_on_pythonpath(patch)
        result = run(workdir, config, "activations.h5")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir / "results", config


def test_unreadable_images_are_skipped_and_recorded_across_shards(tmp_path: Path):
    root = make_image_folder(tmp_path / "train", CLASSES)
    # one in each shard's range (shard 0: a/ and half of b/; shard 1: the rest)
    bad = [_corrupt(root / "a" / "img_001.png"), root / "c" / "x.jpg"]
    bad[1].write_text("not an image at all")
    config = folder_config(root)
    config["dataset"]["on_unreadable"] = "skip"
    config["activations"]["shards"] = 2
    result = run(tmp_path, config, "facets/logit-a.json", "facets/code-3.json")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = tmp_path / "results" / FOLDER_RUN
    with h5py.File(results / "activations.h5", "r") as handle:
        assert json.loads(handle.attrs["skipped_images"]) == [str(path) for path in bad]
        assert handle.attrs["skipped_count"] == 2
        assert len(handle["labels"]) == IMAGES + 1 - 2  # x.jpg was one more
    for neuron in ("logit-a", "code-3"):
        summary = json.loads((results / "facets" / f"{neuron}.json").read_text())
        assert summary["skipped_images"] == 2
    logs = [(results / "logs" / "activations" / f"shard-{i}-of-2.log").read_text() for i in (0, 1)]
    for path, log in zip(bad, logs, strict=True):  # every skip is in its shard's log
        assert f"skipped (dataset.on_unreadable: skip): {path}" in log
        assert "left out 1 of " in log


def test_the_faults_table_names_every_case() -> None:
    """docs/faults.md's bad-input table names each case of this file, so the two stay in step."""
    table = (REPO / "docs" / "faults.md").read_text()
    cases = [f"[{case}]" for case in (*BAD_CONFIGS, *DATA_FAULTS)]
    cases += [name for name in globals() if name.startswith("test_") and "faults_table" not in name]
    missing = [case for case in cases if case not in table]
    assert not missing, f"docs/faults.md's bad-input table lacks {missing}"


# --- the checks themselves, in process (fast) -----------------------------------------------


def test_minimum_input_size_is_found_on_the_meta_device() -> None:
    from facetviz.model.networks import input_refused, meta_architecture, minimum_input_size

    alexnet = meta_architecture(model_settings(kind="torchvision", arch="alexnet"), 3, 1000)
    assert input_refused(alexnet, (3, 62, 62)) is not None
    assert input_refused(alexnet, (3, 63, 63)) is None
    assert minimum_input_size(alexnet, 3, refused=16) == 63
    assert minimum_input_size(alexnet, 3, refused=62) == 63


def test_skipped_images_join_across_shards_as_in_one_pass(tmp_path: Path) -> None:
    from facetviz.activations.extract import extract
    from facetviz.activations.shards import join_shards
    from facetviz.data.datasets import open_dataset
    from facetviz.model.networks import load_network

    root = make_image_folder(tmp_path / "train", CLASSES)
    bad = [_corrupt(root / "a" / "img_001.png"), _corrupt(root / "c" / "img_004.jpg")]
    dataset = open_dataset(
        dataset_settings(kind="image_folder", root=str(root), on_unreadable="skip")
    )
    network = load_network(
        model_settings(kind="custom", factory="fault_models:build"), (3, 224, 224), 3, None
    )
    layers = ("code.3", ["code.3", "head"])
    extract(network, dataset, *layers, tmp_path / "one.h5", batch_size=4)
    shards = [tmp_path / f"shard-{i}.h5" for i in range(3)]
    for i, path in enumerate(shards):
        extract(network, dataset, *layers, path, batch_size=4, shard=(i, 3))
    join_shards(shards, tmp_path / "joined.h5")
    with (
        h5py.File(tmp_path / "one.h5", "r") as one,
        h5py.File(tmp_path / "joined.h5", "r") as joined,
    ):
        assert json.loads(one.attrs["skipped_images"]) == [str(path) for path in bad]
        assert dict(one.attrs) == dict(joined.attrs)
        for key in ("indices", "labels", "codes", "layers/head/value"):
            assert one[key].shape[0] == IMAGES - 2
            np.testing.assert_allclose(one[key][:], joined[key][:], rtol=1e-3, atol=1e-5)
