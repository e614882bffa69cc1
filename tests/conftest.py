"""Shared fixtures: small datasets in the real on-disk formats, the repository paths, and a
real single-node SLURM (started once per session, for the tests that ask for it)."""

from __future__ import annotations

import gzip
import importlib.util
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from slurm_cluster import Cluster, Unavailable, start

from facetviz.data import DEBIAN_FASHION_MNIST, FASHION_MNIST_CLASSES, FacetDataset, open_dataset

REPO = Path(__file__).resolve().parents[1]
SLURM_PROFILE = REPO / "workflow" / "profiles" / "slurm"


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write `array` (uint8) as an IDX file, gzipped when the name ends in .gz."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as handle:
        handle.write(data)


def synthetic_fashion_images(labels: np.ndarray, seed: int) -> np.ndarray:
    """28x28 images whose class is visible: a bright bar whose position and angle encode it."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 40, size=(len(labels), 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
        row = 3 + 2 * int(label)
        images[i, row : row + 3, 4:24] = 220
        if label % 2:
            images[i, 4:24, 3 + 2 * int(label) : 5 + 2 * int(label)] = 180
    return images


@pytest.fixture(scope="session")
def fashion_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small Fashion-MNIST in the real IDX format (gzipped): 400 train, 100 test images."""
    folder = tmp_path_factory.mktemp("fashion-mnist")
    for split, n, seed in (("train", 400, 0), ("t10k", 100, 1)):
        labels = (np.arange(n) % len(FASHION_MNIST_CLASSES)).astype(np.uint8)
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", synthetic_fashion_images(labels, seed))
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", labels)
    return folder


# The default run's coarse classes: every Fashion-MNIST image belongs to one of the four.
COARSE_LABEL_MAP = {
    "footwear": ["Sandal", "Sneaker", "Ankle boot"],
    "tops": ["T-shirt/top", "Pullover", "Coat", "Shirt"],
    "trouser-dress": ["Trouser", "Dress"],
    "bag": ["Bag"],
}


@pytest.fixture(scope="session")
def coarse_fashion(fashion_dir: Path) -> FacetDataset:
    """The small Fashion-MNIST's train split with the coarse label map."""
    config = {"kind": "fashion_mnist", "root": str(fashion_dir), "label_map": COARSE_LABEL_MAP}
    return open_dataset(config, "train", seed=0)


@pytest.fixture(scope="session")
def real_fashion_mnist() -> Path:
    """Debian's Fashion-MNIST; `make test` installs it. Its absence is a failure, not a skip."""
    if not (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").exists():
        pytest.fail(
            f"Fashion-MNIST is not in {DEBIAN_FASHION_MNIST}: run the tests with `make test`, "
            "which installs Debian's dataset-fashion-mnist (as root)"
        )
    return DEBIAN_FASHION_MNIST


def make_image_folder(
    root: Path, classes: dict[str, int], size: tuple[int, int] = (40, 32)
) -> Path:
    """An ImageNet-layout tree root/<class>/<image>: RGB and grayscale files of a given size."""
    rng = np.random.default_rng(0)
    for class_index, (name, count) in enumerate(classes.items()):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(count):
            array = rng.integers(0, 60, size=(size[1], size[0], 3)).astype(np.uint8)
            array[:, :, class_index % 3] += 150  # a colour per class
            image = Image.fromarray(array, "RGB")
            if i % 3 == 2:
                image = image.convert("L")
            image.save(folder / f"img_{i:03d}.{'png' if i % 2 else 'jpg'}")
    return root


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return make_image_folder(tmp_path / "images", {"n01": 6, "n02": 5, "n03": 4})


def tests_on_pythonpath(monkeypatch: pytest.MonkeyPatch) -> None:
    """tests/ on PYTHONPATH, so that `factory: fault_models:build` imports at parse time and in
    the jobs (they inherit the environment)."""
    paths = [str(REPO / "tests"), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))


@pytest.fixture
def fault_models_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    tests_on_pythonpath(monkeypatch)


def partial_files(folder: Path) -> list[Path]:
    """Leftovers of interrupted atomic writes (io.atomic_path's `.<name>.partial`)."""
    return sorted(folder.rglob(".*.partial")) if folder.exists() else []


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A running cluster, its SLURM_CONF and PATH in os.environ (which snakemake() passes on).

    One per session: tests/test_slurm.py and tests/test_faults.py share it (starting one takes
    seconds; an idle one costs nothing).
    """
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip(
            "snakemake-executor-plugin-slurm is not installed: "
            "pip install -r requirements.txt (`make test` does)"
        )
    profile = yaml.safe_load((SLURM_PROFILE / "config.yaml").read_text())
    largest_request = max(rule["mem_mb"] for rule in profile["set-resources"].values())
    try:
        cluster = start(tmp_path_factory.mktemp("slurm"), min_memory_mb=largest_request)
    except Unavailable as err:
        pytest.skip(f"no SLURM cluster here: {err}")
    saved = {name: os.environ.get(name) for name in cluster.env}
    os.environ.update(cluster.env)
    try:
        yield cluster
    finally:
        cluster.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def slurm_snakemake_args(cluster: Cluster, jobs: int = 4) -> list[str]:
    """Snakemake arguments that run the project's SLURM profile on the test cluster."""
    return [
        "--workflow-profile",
        str(SLURM_PROFILE),
        # Test-only settings: no slurmdbd here, so no sacct (the default status command);
        # rules with threads: 4 must fit on this machine's node.
        "--slurm-status-command",
        "squeue",
        # The executor polls this long after a poll that saw a job end, then 10 s longer each
        # time it sees none (init, 2*init + 10, 3*init + 30, ... after a submission). A job here
        # takes 11-20 s (two snakemake start-ups and the rule's), so 6 s (22 s) rarely waits
        # for a third poll; 1 s would always wait for the third one (33 s per step).
        "--slurm-init-seconds-before-status-checks",
        "6",
        "--jobs",
        str(jobs),
        "--max-threads",
        str(cluster.cpus),
    ]
