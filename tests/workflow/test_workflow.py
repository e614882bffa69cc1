"""The real snakemake on the real workflow: a tiny end-to-end run and the default DAG (bad
configs: tests/test_bad_inputs.py)."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from conftest import REPO, make_image_folder
from PIL import Image

from facetviz.synthesis.methods import references_for

pytestmark = pytest.mark.workflow

COARSE = {
    "footwear": ["Sandal", "Sneaker", "Ankle boot"],
    "tops": ["T-shirt/top", "Pullover", "Coat", "Shirt"],
    "trouser-dress": ["Trouser", "Dress"],
    "bag": ["Bag"],
}
K = 3


def tiny_config(fashion_root: Path) -> dict:
    """The default run in miniature: real Fashion-MNIST, 400 images, few steps."""
    return {
        "run": "tiny",
        "seed": 0,
        "device": "cpu",
        "dataset": {
            "kind": "fashion_mnist",
            "root": str(fashion_root),
            "max_images": 400,
            "label_map": COARSE,
        },
        "model": {"kind": "embedded", "width": 8, "train": {"epochs": 1}},
        "activations": {"batch_size": 128},
        "facets": {
            "layer": "classifier.3",
            "k": K,
            "m": 5,
            "pca_dims": 10,
            "perplexity": 5,
            "top_n": 60,
            "max_images": 150,
        },
        "neurons": [
            {"name": "footwear", "layer": "classifier.5", "unit": 0, "select": "label"},
            {"name": "trouser-dress", "layer": "classifier.5", "unit": 2, "select": "label"},
            {"name": "conv-ch3", "layer": "features.6", "unit": 3, "spatial": "center"},
        ],
        # two methods keep it short; every method runs in tests/test_render.py
        "synthesis": {"methods": ["mfv", "fourier"], "steps_scale": 0.02, "neurons_per_job": 2},
        "oracle": {"epochs": 1, "max_images": 2000, "min_accuracy": 0.0},
        "figures": {"examples": 2},
    }


def snakemake_command(workdir: Path, config: Path, *args: str) -> tuple[list[str], dict]:
    """The real snakemake on this repository's Snakefile in `workdir`, and its environment."""
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(config),
        "--cores",
        "2",
        *args,
    ]
    # jobs run `python -m facetviz`: the python on PATH must be this one, as `make` arranges
    path = os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", "")))
    return command, {**os.environ, "PATH": path}


def snakemake(
    workdir: Path, config: dict | Path, *args: str, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run the real snakemake on this repository's Snakefile, in `workdir` (`env`: variables
    to add to its environment)."""
    if isinstance(config, dict):
        workdir.mkdir(parents=True, exist_ok=True)
        path = workdir / "config.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        config = path
    command, environment = snakemake_command(workdir, config, *args)
    environment.update(env or {})
    return subprocess.run(command, capture_output=True, text=True, timeout=900, env=environment)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, real_fashion_mnist: Path):
    workdir = tmp_path_factory.mktemp("tiny-run")
    config = tiny_config(real_fashion_mnist)
    result = snakemake(workdir, config)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return workdir / "results" / "tiny", workdir, config


def test_tiny_run_writes_every_stage(tiny_run):
    results, _workdir, config = tiny_run
    names = [n["name"] for n in config["neurons"]]

    metrics = json.loads((results / "model" / "metrics.json").read_text())
    assert metrics["classes"] == list(COARSE)  # class order is the label map's order
    assert 0.4 < metrics["test_accuracy"] <= 1.0  # 4 classes: chance is ~0.25

    with h5py.File(results / "activations.h5", "r") as handle:
        assert handle["codes"].dtype == np.float16
        assert handle["codes"].shape == (400, 256)
        assert handle["codes"].compression == "gzip"
        assert handle["layers/classifier.5/value"].shape == (400, 4)
        assert handle["layers/features.6/center"].shape == (400, 32)
        assert set(np.unique(handle["labels"][:])) <= {0, 1, 2, 3}
        assert handle.attrs["facet_layer"] == "classifier.3"

    for name in names:
        summary = json.loads((results / "facets" / f"{name}.json").read_text())
        sizes = [facet["size"] for facet in summary["facets"]]
        assert len(sizes) == K and sizes == sorted(sizes, reverse=True)
        assert sum(sizes) == summary["images"]
        assert [scores["space"] for scores in summary["ground_truth"]] == ["tsne", "pca"]
        assert Image.open(results / "figures" / "embedding" / f"{name}.png").width > 300
        batch = "batch-000" if name != "conv-ch3" else "batch-001"  # 2 neurons per job
        pngs = sorted((results / "synthesis" / "mfv" / batch / name).glob("facet_*.png"))
        assert len(pngs) == K
        assert Image.open(pngs[0]).size == (28, 28)
        assert (results / "synthesis" / "fourier" / batch / name / "facet_00.png").exists()
        with h5py.File(results / "synthesis" / "mfv" / batch / name / "images.h5", "r") as handle:
            assert handle["images"].shape == (K, 1, 28, 28)
            # activation maximization must raise the unit above its mean-image start
            assert np.mean(handle["activation_final"][:]) > np.mean(handle["activation_init"][:])
        figure = Image.open(results / "figures" / "facets" / f"{name}.png")
        assert figure.width > 300 and figure.height > 300
        assert (results / "logs" / "facets" / f"{name}.log").stat().st_size > 0
    figures = [f"facets/{name}" for name in names] + [f"embedding/{name}" for name in names]
    figures += ["overview", "methods", "metrics", "hidden_units"]
    for figure in figures:
        assert (results / "figures" / f"{figure}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (results / "figures" / f"{figure}.pdf").read_bytes()[:5] == b"%PDF-"
    with Image.open(results / "figures" / "methods.png") as methods:
        assert methods.height > 100
    assert (results / "index.html").stat().st_size > 10_000
    table = (results / "facets" / "table.csv").read_text().splitlines()
    assert len(table) == 1 + 2 * len(names)  # header, then each neuron in both spaces
    assert "purity" in (results / "logs" / "facets" / "table.log").read_text()
    assert not list(results.rglob("*.partial*")), "a stage left a partial output behind"


def chromium() -> str:
    """Debian's Chromium; `make test` installs it (as root). Its absence is a failure."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.fail(
        "no Chromium to load index.html in: run the tests with `make test`, which installs "
        "Debian's chromium (as root), or deselect this test with -m 'not browser'"
    )


def headless(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Chromium without a screen, a sandbox or any network traffic of its own (this machine's
    network is closed: its background connections would only be refused)."""
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ]
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.browser
def test_index_page_renders_every_neuron_in_chromium(tiny_run, tmp_path: Path):
    results, _workdir, config = tiny_run
    browser, page = chromium(), (results / "index.html").as_uri()
    # the page's own script counts each neuron's decoded images once it has loaded
    result = headless(
        browser, tmp_path / "profile", "--virtual-time-budget=10000", "--dump-dom", page
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'data-checked="true"' in result.stdout, "the page's script did not run"
    sections = dict(
        (name, (int(images), int(decoded)))
        for name, images, decoded in re.findall(
            r'<section class="neuron"[^>]*data-neuron="([^"]+)"'
            r'[^>]*data-images="(\d+)"[^>]*data-decoded="(\d+)"',
            result.stdout,
        )
    )
    names = [neuron["name"] for neuron in config["neurons"]]
    assert list(sections) == names
    source = (results / "index.html").read_text()
    for name, section in zip(names, source.split('<section class="neuron"')[1:], strict=True):
        images, decoded = sections[name]
        # every facet: one image per method and up to `examples` real ones, all decoded
        assert images == section.count("<img ") >= K * len(config["synthesis"]["methods"])
        assert decoded == images, f"{name}: {images - decoded} images did not render"
    artifacts = Path(os.environ.get("FACETVIZ_TEST_ARTIFACTS", REPO / "test-artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    screenshot = artifacts / "index.png"
    screenshot.unlink(missing_ok=True)
    shot = headless(
        browser, tmp_path / "profile", "--window-size=1280,2400", f"--screenshot={screenshot}", page
    )
    assert shot.returncode == 0, shot.stderr[-3000:]
    with Image.open(screenshot) as picture:
        assert picture.size == (1280, 2400)
        assert len(picture.convert("L").getcolors(256)) > 50  # images, not a blank page


def test_snakemake_report_has_every_figure_with_its_caption(tiny_run):
    results, workdir, config = tiny_run
    report = workdir / "report.html"
    result = snakemake(workdir, workdir / "config.yaml", "--report", str(report))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    text = report.read_text()
    for name in ("methods.png", "metrics.png", "overview.png", "hidden_units.png", "index.html"):
        assert name in text
    for neuron in config["neurons"]:
        assert f"{neuron['name']}.png" in text
    # captions rendered from workflow/report/*.rst with this run's config
    assert "facetviz run <strong>tiny</strong>" in text
    assert "The facets of <strong>footwear</strong>" in text
    assert "Every method draws the image" in text


def test_footwear_facets_contain_only_footwear(tiny_run):
    results, _workdir, _config = tiny_run
    summary = json.loads((results / "facets" / "footwear.json").read_text())
    for facet in summary["facets"]:
        assert facet["majority_fine_class"] in COARSE["footwear"]


def test_sharded_forward_pass_joins_into_the_same_file(tiny_run, tmp_path: Path):
    results, _workdir, config = tiny_run
    config = {**config, "activations": {**config["activations"], "shards": 3}}
    model = tmp_path / "results" / "tiny" / "model"
    model.mkdir(parents=True)
    for name in ("model.pt", "metrics.json"):  # the same trained model, not trained again
        (model / name).write_bytes((results / "model" / name).read_bytes())
    result = snakemake(tmp_path, config, "results/tiny/activations.h5")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    log = result.stdout + result.stderr
    assert log.count("rule activations_shard:") == 3
    assert log.count("rule activations_join:") == 1
    assert "rule train:" not in log
    joined = tmp_path / "results" / "tiny" / "activations.h5"
    assert not list(joined.parent.joinpath("activations").glob("*.h5")), "shards are temp()"
    with h5py.File(joined, "r") as a, h5py.File(results / "activations.h5", "r") as b:
        for key in ("labels", "fine_labels", "indices"):
            np.testing.assert_array_equal(a[key][:], b[key][:])
        for key in ("codes", "layers/classifier.5/value", "layers/features.6/center"):
            np.testing.assert_allclose(a[key][:], b[key][:], rtol=2e-3, atol=1e-4)
        assert dict(a.attrs) == dict(b.attrs)


def copy_run(workdir: Path, to: Path) -> None:
    """A finished run's results and Snakemake's records of them (mtimes kept), elsewhere."""
    for name in ("results", ".snakemake"):
        shutil.copytree(
            workdir / name, to / name, symlinks=True, ignore=shutil.ignore_patterns("locks")
        )


def test_a_plugin_method_runs_in_the_real_workflow(tiny_run, tmp_path: Path):
    """A lab's method in a module outside the package, named in synthesis.plugins: the real
    synthesize rule runs it, its settings validated like a built-in's, no project file edited."""
    from plugin_method import PLUGIN

    _results, workdir, config = tiny_run
    plugins = tmp_path / "lab"
    plugins.mkdir()
    (plugins / "lab_methods.py").write_text(PLUGIN)
    run = tmp_path / "run"
    copy_run(workdir, run)
    synthesis = {**config["synthesis"], "methods": ["mfv", "fourier", "toy"]}
    config = {
        **config,
        "synthesis": {**synthesis, "plugins": ["lab_methods"], "toy": {"steps": 100}},
    }
    env_path = {"PYTHONPATH": os.pathsep.join([str(plugins), os.environ.get("PYTHONPATH", "")])}
    bad = {**config, "synthesis": {**config["synthesis"], "toy": {"steps": 0}}}
    refused = snakemake(run, bad, "--dry-run", env=env_path)
    assert refused.returncode != 0
    assert "synthesis.toy.steps: 0 is less than the minimum of 1" in refused.stdout + refused.stderr
    result = snakemake(run, config, env=env_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    log = result.stdout + result.stderr
    assert log.count("rule synthesize:") == 2  # the new method's two batches, nothing else
    assert "rule train:" not in log and "rule facets:" not in log
    toy = run / "results" / "tiny" / "synthesis" / "toy" / "batch-000" / "footwear"
    with h5py.File(toy / "images.h5", "r") as handle:
        assert handle.attrs["method"] == "toy" and handle["trace"].shape == (2, K)  # 100 x 0.02
    metrics = json.loads((run / "results" / "tiny" / "synthesis" / "metrics.json").read_text())
    assert list(metrics["summary"]) == ["mfv", "fourier", "toy", "mean_image", "nearest_real"]
    missing = snakemake(run, config, "--dry-run")  # without the module on PYTHONPATH
    assert missing.returncode != 0
    assert "cannot import 'lab_methods'" in missing.stdout + missing.stderr


def test_an_evaluation_over_seeds_writes_tables_and_figures(tiny_run, tmp_path: Path):
    """evaluation.seeds and train_seeds (as config/evaluation.yaml sets them): the run's own
    tree stays, another training seed gets its own tree, every (training, synthesis) seed pair
    is synthesized and scored, and the aggregate has an interval per metric and method."""
    _results, workdir, config = tiny_run
    run = tmp_path / "run"
    copy_run(workdir, run)
    config = {**config, "evaluation": {"seeds": [0, 1], "train_seeds": [0, 1]}}
    result = snakemake(run, config)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    log = result.stdout + result.stderr
    assert log.count("rule train:") == 1 and log.count("rule oracle:") == 1  # seed 1's only
    assert log.count("rule synthesis_metrics:") == 3  # (0, 1), (1, 0), (1, 1); (0, 0) was done
    results = run / "results" / "tiny"
    assert (results / "train-seed-1" / "model" / "model.pt").exists()
    assert (results / "train-seed-1" / "seed-1" / "synthesis" / "metrics.json").exists()
    summary = json.loads((results / "evaluation" / "summary.json").read_text())
    assert len(summary["trees"]) == 4
    methods = summary["methods"]
    assert set(methods) == {"mfv", "fourier", "mean_image", "nearest_real"}
    for result in methods.values():
        assert result["seeds"] == 4
        fidelity = result["fidelity"]
        assert fidelity["low"] <= fidelity["mean"] <= fidelity["high"]
    # the references need no optimization: their images do not depend on the synthesis seed
    seeds = [row for row in csv.DictReader((results / "evaluation" / "per_seed.csv").open())
             if row["method"] == "mean_image" and row["train_seed"] == "1"]  # fmt: skip
    assert len(seeds) == 2 and seeds[0]["fidelity"] == seeds[1]["fidelity"]
    for figure in ("pareto", "path"):
        assert (results / "figures" / f"{figure}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_torchvision_model_on_image_folder(tmp_path: Path):
    """The path real users take: an ImageNet-layout folder and a torchvision architecture."""
    root = make_image_folder(
        tmp_path / "train", {"n0001": 12, "n0002": 12, "n0003": 10}, size=(80, 60)
    )
    config = {
        "run": "tv",
        "device": "cpu",
        "dataset": {
            "kind": "image_folder",
            "root": str(root),
            "image_size": 64,
            "label_map": {"first": ["n0001"], "rest": ["n0002", "n0003"]},
        },
        "model": {"kind": "torchvision", "arch": "resnet18", "weights": "random"},
        "facets": {
            "layer": "avgpool",
            "k": 2,
            "m": 3,
            "pca_dims": 5,
            "perplexity": 5,
            "top_n": 20,
            "min_size": 2,
        },
        "neurons": [
            {"name": "logit-1", "layer": "fc", "unit": 1, "select": "label", "class": "rest"},
            {"name": "l4-ch5", "layer": "layer4.0.conv1", "unit": 5, "spatial": "max"},
        ],
        "synthesis": {"methods": ["mfv"], "steps_scale": 0.01},
        "figures": {"examples": 1},
    }
    result = snakemake(tmp_path, config)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    results = tmp_path / "results" / "tv"
    assert not (results / "model").exists()  # nothing to train
    with h5py.File(results / "activations.h5", "r") as handle:
        assert handle["codes"].shape == (34, 512)
        assert handle["layers/fc/value"].shape == (34, 1000)
        assert json.loads(handle.attrs["class_names"]) == ["first", "rest"]
    summary = json.loads((results / "facets" / "logit-1.json").read_text())
    assert summary["images"] == 22  # the two folders merged into "rest"
    # one RGB image per facet; how many facets a random network's channel has (k = 2 less those
    # under min_size) is a float result that may differ between machines
    facets = len(json.loads((results / "facets" / "l4-ch5.json").read_text())["facets"])
    assert facets in (1, 2)
    with h5py.File(
        results / "synthesis" / "mfv" / "batch-001" / "l4-ch5" / "images.h5", "r"
    ) as handle:
        assert handle["images"].shape == (facets, 3, 64, 64)
    assert (
        Image.open(results / "synthesis" / "mfv" / "batch-000" / "logit-1" / "facet_00.png").mode
        == "RGB"
    )
    assert (results / "figures" / "overview.png").exists()


def test_paper_config_runs_end_to_end_with_random_weights(tmp_path: Path):
    """config/paper-alexnet.yaml as shipped, on a tiny ImageFolder with ImageNet's wnid folders;
    only what needs ImageNet, weights or a GPU is overridden, and sizes for a CPU."""
    config = yaml.safe_load((REPO / "config" / "paper-alexnet.yaml").read_text())
    wnids = [neuron["class"] for neuron in config["neurons"]] + ["n01440764", "n01443537"]
    root = make_image_folder(tmp_path / "train", dict.fromkeys(wnids, 6), size=(80, 60))
    config["device"] = "cpu"
    config["dataset"].update(root=str(root), workers=0)
    config["model"]["weights"] = "random"
    config["activations"]["batch_size"] = 16
    config["facets"].update(k=2, m=2, pca_dims=4, perplexity=2, min_size=1)
    config["synthesis"]["steps_scale"] = 0.01
    config["priors"].update(images=16, epochs=1, batch_size=8)  # the upconv generator, briefly
    result = snakemake(tmp_path, config)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    log = result.stdout + result.stderr
    assert log.count("rule activations_shard:") == config["activations"]["shards"]
    results = tmp_path / "results" / "paper-alexnet"
    generator = json.loads((results / "priors" / "generator.json").read_text())
    assert generator["code_layer"] == "classifier.2" and generator["architecture"] == "upconv"
    with h5py.File(results / "activations.h5", "r") as handle:
        assert handle["codes"].shape == (6 * len(wnids), 4096)  # fc7
        assert handle["layers/classifier.6/value"].shape == (6 * len(wnids), 1000)
    for neuron in config["neurons"]:
        summary = json.loads((results / "facets" / f"{neuron['name']}.json").read_text())
        assert summary["images"] == 6  # the images of its wnid folder
        for method in config["synthesis"]["methods"]:
            folder = results / "synthesis" / method / "batch-000" / neuron["name"]
            with h5py.File(folder / "images.h5", "r") as handle:
                assert handle["images"].shape == (2, 3, 227, 227)
        assert (results / "figures" / "facets" / f"{neuron['name']}.png").exists()
    assert not (results / "oracle").exists()
    assert (results / "figures" / "methods.pdf").exists()
    assert not (results / "figures" / "hidden_units.png").exists()  # class units only
    page = (results / "index.html").read_text()
    assert page.count('<section class="neuron"') == len(
        config["neurons"]
    )  # no fine labels beyond the folders: no oracle


def test_default_config_dag_builds(tmp_path: Path):
    result = snakemake(tmp_path, REPO / "config" / "config.yaml", "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    out = result.stdout
    for rule in (
        "train",
        "activations",
        "facets",
        "synthesize",
        "facets_figure",
        "overview_figure",
        "methods_figure",
        "hidden_units_figure",
        "metrics_figure",
        "index_page",
    ):
        assert f"rule {rule}:" in out
    assert out.count("rule facets:") == len(default["neurons"])
    per_job = default["synthesis"]["neurons_per_job"]
    batches = -(-len(default["neurons"]) // per_job)
    methods = len(default["synthesis"]["methods"]) + len(
        references_for(default["synthesis"]["methods"])
    )
    assert out.count("rule synthesize:") == batches * methods
    assert out.count("rule oracle:") == out.count("rule synthesis_metrics:") == 1
    # one generator for the learned priors; the code prior only where ppgn asks for it
    assert out.count("rule generator:") == 1 and "rule code_prior:" not in out
    default["synthesis"]["ppgn"]["prior"] = "dae"
    dae = snakemake(tmp_path, default, "--dry-run")
    assert dae.returncode == 0, dae.stderr[-3000:]
    assert dae.stdout.count("rule code_prior:") == 1


def test_an_overlay_config_plans_its_base_with_its_changes(tmp_path: Path):
    """config/evaluation.yaml names config/config.yaml as its `base:` and holds only what it
    changes: the default run's settings (its label map, facet layer, methods) on its 4 class
    units, for 3 trainings of 5 synthesis seeds each."""
    result = snakemake(tmp_path, REPO / "config" / "evaluation.yaml", "--dry-run", "-p")
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert out.count("rule train:") == out.count("rule oracle:") == 3
    assert out.count("rule facets:") == 4 * 3 and "rule hidden_units_figure:" not in out
    synthesized = len(default["synthesis"]["methods"]) + len(
        references_for(default["synthesis"]["methods"])
    )
    batches = -(-4 // default["synthesis"]["neurons_per_job"])
    assert out.count("rule synthesize:") == 3 * 5 * batches * synthesized
    assert "results/evaluation/train-seed-2/seed-4/" in out
    settings = json.loads(re.search(r"facetviz activations .*?--settings '(\{.*?\})'", out)[1])
    assert settings["dataset"]["label_map"] == default["dataset"]["label_map"]
    assert settings["facet_layer"] == default["facets"]["layer"]


def test_paper_scale_dag_batches_neurons_and_asks_for_gpus(tmp_path: Path):
    """1,000 ImageNet class units plan 100 synthesis jobs; only model jobs ask for a GPU."""
    sys.path.insert(0, str(REPO / "bench"))
    from dag_dryrun import make_class_folders, paper_scale_config

    classes = [f"n{index:08d}" for index in range(1000)]
    make_class_folders(tmp_path / "train", classes)
    config = paper_scale_config(tmp_path / "train", classes, per_job=10)
    result = snakemake(tmp_path, config, "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = re.findall(r"^rule (\w+):\n(.*?)(?=^\[|^rule |\Z)", result.stdout, re.S | re.M)
    rules = Counter(rule for rule, _body in jobs)
    # mfv and the two references, 100 batches of 10 neurons each
    synthesized = len(config["synthesis"]["methods"]) + len(
        references_for(config["synthesis"]["methods"])
    )
    assert rules["synthesize"] == 100 * synthesized and rules["facets"] == 1000
    asks_gpu = {rule for rule, body in jobs if re.search(r"resources:.*\bgpu=1", body)}
    assert asks_gpu == {"activations", "synthesize"}
