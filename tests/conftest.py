"""Shared fixtures: small datasets in the real on-disk formats, validated configs, networks,
synthesis tasks, a small run made by the real stages, the repository paths, and a real
single-node SLURM (started once per session, for the tests that ask for it)."""

from __future__ import annotations

import copy
import gzip
import importlib.util
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from slurm_cluster import Cluster, Unavailable, start

from facetviz.core.settings import DatasetSettings, FacetSettings, ModelSettings, Neuron
from facetviz.data.datasets import FacetDataset, open_dataset
from facetviz.data.fashion_mnist import DEBIAN_FASHION_MNIST, FASHION_MNIST_CLASSES
from facetviz.model.networks import Network, load_network
from facetviz.synthesis.methods import Task
from facetviz.synthesis.objectives import Unit

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
    config = dataset_settings(root=str(fashion_dir), label_map=COARSE_LABEL_MAP)
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


# --- configs -------------------------------------------------------------------------------

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def validated(config: dict) -> dict:
    """`config` with the schema's defaults filled in, as the workflow hands it to the stages."""
    from snakemake.utils import validate

    config = copy.deepcopy(config)
    validate(config, str(SCHEMA))
    return config


def dataset_config(**values) -> dict:
    """A validated `dataset` section (the schema's defaults plus `values`)."""
    minimal = {"facets": {"layer": "classifier.3"}, "neurons": [NEURON], "dataset": values}
    return validated(minimal)["dataset"]


def dataset_settings(**values) -> DatasetSettings:
    """Typed dataset settings: the schema's defaults plus `values`."""
    return DatasetSettings.from_config(dataset_config(**values))


def model_config(**values) -> dict:
    """A validated `model` section (the schema's defaults plus `values`)."""
    minimal = {"facets": {"layer": "classifier.3"}, "neurons": [NEURON], "model": values}
    return validated(minimal)["model"]


def model_settings(**values) -> ModelSettings:
    """Typed model settings: the schema's defaults plus `values` (the embedded CNN by default)."""
    return ModelSettings.from_config(model_config(**values))


def facet_settings(**values) -> FacetSettings:
    """Typed facets settings: the schema's defaults plus `values`."""
    minimal = {"facets": {"layer": "classifier.3", **values}, "neurons": [NEURON]}
    return FacetSettings.from_config(validated(minimal)["facets"])


NEURON = {"name": "footwear", "layer": "classifier.5", "unit": 0, "select": "label"}

# a generator that trains in a second or two on the small synthetic Fashion-MNIST
SMALL_PRIOR = {"images": None, "epochs": 20, "batch_size": 32, "width": 16, "lr": 0.005}


def prior_settings(**values):
    """Typed priors settings: the schema's defaults, small ones for tests, and `values`."""
    from facetviz.core.settings import PriorSettings

    minimal = {"facets": {"layer": "classifier.3"}, "neurons": [NEURON],
               "priors": {**SMALL_PRIOR, **values}}  # fmt: skip
    return PriorSettings.from_config(validated(minimal)["priors"])


# The embedded CNN as the default config has it (width 16), for the tests' networks.
EMBEDDED = model_settings()


def neuron(name: str, layer: str, unit: int, select: str = "top", **extra) -> Neuron:
    """A resolved neuron as the workflow's parse-time check makes it (`class_index` for label)."""
    return Neuron(
        name=name,
        layer=layer,
        unit=unit,
        spatial=extra.get("spatial", "center"),
        select=select,
        class_index=extra.get("class_index", unit if select == "label" else None),
    )


# --- networks, tasks and a small run made by the real stages --------------------------------


@pytest.fixture(scope="session")
def random_network() -> Network:
    """The embedded CNN with seeded random weights, 4 classes, 28 px grayscale, eval mode."""
    torch.manual_seed(0)
    return load_network(EMBEDDED, (1, 28, 28), 4, None)


def generators(count: int, seed: int = 0) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed * 1000 + i) for i in range(count)]


def make_task(count: int = 4, seed: int = 0, centroid_codes: torch.Tensor | None = None) -> Task:
    """Two class-unit images and `count - 2` conv-unit images, smooth starts (as facet mean
    images are: an average of 15 images), centroids from other random images by default."""
    from facetviz.synthesis.transforms import gaussian_blur

    rng = torch.Generator().manual_seed(7)
    starts = gaussian_blur(torch.rand(count, 1, 28, 28, generator=rng), 1.5)
    if centroid_codes is None:
        centroid_codes = torch.rand(count, 256, generator=rng)
    return Task(
        units=[Unit("classifier.5", 0)] * 2 + [Unit("features.6", 3, "center")] * (count - 2),
        mean_images=starts,
        groups=[slice(0, 2), slice(2, count)],
        generators=generators(count, seed),
        facet_layer="classifier.3",
        class_units=[True, True] + [False] * (count - 2),
        centroid_codes=centroid_codes,
        unit_scales=torch.ones(count),
        nearest_images=torch.rand(count, 1, 28, 28, generator=rng),
        records=[],
    )


SMALL_RUN_NEURONS = {
    "tops": (neuron("tops", "classifier.5", 1, "label"), 3),
    "ch2": (neuron("ch2", "features.6", 2, "top"), 2),
}


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory, coarse_fashion: FacetDataset) -> Path:
    """A small run: checkpoint, activations and two neurons' facets (tops: a class unit with 3
    facets, ch2: a conv unit with 2) made by the real stages."""
    from threadpoolctl import threadpool_limits

    from facetviz.activations.extract import extract
    from facetviz.facets.discover import discover
    from facetviz.model.networks import build_architecture, save_checkpoint

    folder = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    save_checkpoint(folder / "model.pt", build_architecture(EMBEDDED, 1, 4), {})
    network = load_network(EMBEDDED, (1, 28, 28), 4, folder / "model.pt")
    layers = ["classifier.5", "features.6"]
    extract(network, coarse_fashion, "classifier.3", layers, folder / "activations.h5", 128)
    with threadpool_limits(1):
        for name, (unit, k) in SMALL_RUN_NEURONS.items():
            settings = facet_settings(k=k, m=4, pca_dims=10, max_images=100, top_n=80, min_size=1)
            discover(
                folder / "activations.h5",
                coarse_fashion,
                unit,
                settings,
                0,
                folder / "facets" / f"{name}.h5",
                folder / "facets" / f"{name}.json",
            )
    return folder


@pytest.fixture(scope="session")
def small_run_network(small_run: Path) -> Network:
    return load_network(EMBEDDED, (1, 28, 28), 4, small_run / "model.pt")


def method(name: str, network: Network, steps_scale: float = 0.02, **settings):
    """A synthesis method with its defaults and `settings` (mfv at 0.02: 12 steps)."""
    from facetviz.synthesis import methods

    context = methods.Context(network, steps_scale)
    return methods.method_class(name)(methods.method_settings(name, settings), context)


def synthesize(network: Network, run: Path, out: Path, names=("tops", "ch2"), seed=0, **kw):
    """The small run's facets of `names` synthesized by mfv (or `kw['method']`) into `out`."""
    from facetviz.synthesis.job import synthesize_batch

    name = kw.pop("method", "mfv")
    facets = [run / "facets" / f"{n}.h5" for n in names]
    return synthesize_batch(method(name, network, **kw), facets, "classifier.3", seed, out)


@pytest.fixture(scope="session")
def small_synthesis(small_run: Path, small_run_network: Network) -> dict:
    """The small run's two neurons synthesized by mfv into `small_run/synthesis/`."""
    return synthesize(small_run_network, small_run, small_run / "synthesis")


@pytest.fixture(params=[1, 2], ids=lambda n: f"{n}-threads")
def threads(request: pytest.FixtureRequest):
    """Runs a reproducibility test at 1 and at 2 threads: a float result that depends on the
    kernel path (which the thread count changes) then shows on any machine, not only on some."""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


def facet_record(assignment, fine_labels, unit_values, fine_names, image_shape=(1, 4, 4)):
    """A hand-made facet record: `assignment` (-1: dropped), the images' fine labels and unit
    values; the rest placeholders shaped as the facets stage writes them."""
    from facetviz.facets.record import FacetRecord

    assignment = np.asarray(assignment)
    n, k = len(assignment), int(assignment.max()) + 1
    sizes = np.bincount(assignment[assignment >= 0], minlength=k)
    return FacetRecord(
        neuron=neuron("unit", "classifier.5", 0, "label"),
        fine_names=list(fine_names),
        has_fine_labels=True,
        space="tsne",
        rows=np.arange(n),
        dataset_indices=np.arange(n),
        unit_values=np.asarray(unit_values, dtype=np.float32),
        fine_labels=np.asarray(fine_labels),
        embedding=np.zeros((n, 2), np.float32),
        clusters=np.where(assignment >= 0, assignment, k),
        assignment=assignment,
        cluster_ids=np.arange(k),
        centroids=np.zeros((k, 2), np.float32),
        code_centroids=np.zeros((k, 8), np.float32),
        embedding_centroids=np.zeros((k, 2), np.float32),
        nearest=np.full((k, 1), -1),
        nearest_dataset_indices=np.full((k, 1), -1),
        sizes=sizes,
        mean_activation=np.zeros(k, np.float32),
        mean_images=np.zeros((k, *image_shape), np.float32),
        nearest_images=np.zeros((k, *image_shape), np.float32),
    )


@pytest.fixture(scope="session")
def small_oracle(fashion_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """An oracle trained briefly on the small synthetic Fashion-MNIST (400 train, 100 test):
    (its folder, its metrics)."""
    from facetviz.core.settings import OracleSettings
    from facetviz.measure.oracle import train_oracle

    folder = tmp_path_factory.mktemp("oracle")
    dataset = dataset_settings(kind="fashion_mnist", root=str(fashion_dir),
                               label_map=COARSE_LABEL_MAP, max_images=40)  # fmt: skip
    # 6 epochs of 4 batches: enough steps for BatchNorm's running statistics to settle
    settings = OracleSettings(epochs=6, seed_offset=1000, min_accuracy=0.0, max_images=None)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: one thread is faster, far faster on a busy machine
    try:
        metrics = train_oracle(
            dataset, settings, 0, torch.device("cpu"), folder / "o.pt", folder / "o.json"
        )
    finally:
        torch.set_num_threads(threads)
    return folder, metrics


def tests_on_pythonpath(monkeypatch: pytest.MonkeyPatch) -> None:
    """tests/ on PYTHONPATH, so that `factory: fault_models:build` imports at parse time and in
    the jobs (they inherit the environment)."""
    paths = [str(REPO / "tests"), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))


@pytest.fixture
def fault_models_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    tests_on_pythonpath(monkeypatch)


def partial_files(folder: Path) -> list[Path]:
    """Leftovers of interrupted atomic writes (io.atomic_path's temporary files,
    `.<name>.<host>.<pid>.<random>.partial`)."""
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


@pytest.fixture
def one_thread():
    """Small models and batches: one thread is faster than two, and on a busy 2-core machine
    (another job on the other core) dozens of times faster, as OpenMP's threads wait on it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def small_generator(small_run: Path, small_run_network: Network, coarse_fashion) -> Path:
    """A generator of the small run's codes (classifier.3), trained briefly: its checkpoint."""
    from facetviz.priors.training import fit_generator, save_prior

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        images = coarse_fashion.pixels(np.arange(len(coarse_fashion)))
        G = fit_generator(small_run_network, images, "classifier.3", prior_settings(), seed=0)
    finally:
        torch.set_num_threads(threads)
    save_prior(small_run / "priors" / "generator.pt", G, {"code_layer": "classifier.3"})
    return small_run / "priors" / "generator.pt"


def learned_prior_task(small_run: Path, seed: int = 0) -> Task:
    """The small run's two neurons as one synthesis task (the learned priors' tests)."""
    from facetviz.facets.record import FacetRecord
    from facetviz.synthesis.job import build_task

    records = [FacetRecord.read(small_run / "facets" / f"{n}.h5") for n in ("tops", "ch2")]
    return build_task(records, seed, "classifier.3", "cpu")


def prior_method(name: str, network: Network, generator: Path, dataset, **settings):
    """A learned-prior method (dgn, ppgn, g_centroid) with its generator and dataset."""
    from facetviz.synthesis import methods

    context = methods.Context(network, 1.0, False, {"generator": generator},
                              dataset=lambda: dataset)  # fmt: skip
    return methods.method_class(name)(methods.method_settings(name, settings), context)
