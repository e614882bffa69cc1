"""What Snakemake reruns when a setting changes, and resuming a killed run: real snakemake runs.

The default config is run once with small data (same neurons, rules and batches as `make run`);
each case then asks Snakemake what it would run (a dry run) after one change.
"""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from test_workflow import snakemake, snakemake_command, tiny_config

from facetviz.synthesis.methods import learned_prior, method_class, references_for

pytestmark = pytest.mark.workflow


def small_default_config(fashion_root: Path) -> dict:
    """config/config.yaml with small data and few steps; neurons and batching unchanged."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["dataset"].update(root=str(fashion_root), max_images=600)
    config["model"] = {**config["model"], "width": 8, "train": {"epochs": 1}}
    config["facets"].update(max_images=200, top_n=100, pca_dims=10, perplexity=10, min_size=3)
    config["synthesis"] = {**config.get("synthesis", {}), "steps_scale": 0.01}
    config["oracle"] = {"epochs": 1, "max_images": 1000, "min_accuracy": 0.0}
    # the 3 passes over 600 images it had before the budget was in updates (2814 by default)
    config["priors"]["updates"] = 30
    config["figures"] = {"examples": 2}
    return config


def planned_jobs(output: str) -> dict[str, int]:
    """The job counts of a dry run's summary table ({} when there is nothing to do)."""
    lines = output.splitlines()
    starts = [i for i, line in enumerate(lines) if line.split() == ["job", "count"]]
    if not starts:
        return {}
    jobs = {}
    for line in lines[starts[0] + 2 :]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit() or parts[0] == "total":
            break
        jobs[parts[0]] = int(parts[1])
    return jobs


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory, real_fashion_mnist: Path):
    workdir = tmp_path_factory.mktemp("default-run")
    config = small_default_config(real_fashion_mnist)
    result = snakemake(workdir, config)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return workdir, config


def plan(workdir: Path, config: dict) -> dict[str, int]:
    result = snakemake(workdir, config, "--dry-run")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return planned_jobs(result.stdout + result.stderr)


def changed(config: dict, section: str, **values) -> dict:
    config = copy.deepcopy(config)
    config[section].update(values)
    return config


def test_second_run_does_nothing(default_run) -> None:
    workdir, config = default_run
    result = snakemake(workdir, config, "--dry-run")
    assert "Nothing to be done" in result.stdout + result.stderr
    assert plan(workdir, config) == {}


def methods_and_references(config: dict) -> list[str]:
    methods = config["synthesis"]["methods"]
    return methods + references_for(methods)


def batches(config: dict) -> int:
    return -(-len(config["neurons"]) // config["synthesis"].get("neurons_per_job", 1))


def test_synthesis_setting_reruns_synthesis_and_figures_only(default_run) -> None:
    workdir, config = default_run
    jobs = plan(workdir, changed(config, "synthesis", steps_scale=0.02))
    assert jobs == {
        # the references too: they take the shared settings (and need a few seconds)
        "synthesize": batches(config) * len(methods_and_references(config)),
        "synthesis_metrics": 1,
        **EVALUATION,
        "facets_figure": len(config["neurons"]),
        **dict.fromkeys(RUN_FIGURES, 1),
        "index_page": 1,
        "all": 1,
    }


# the figures of the whole run: each reruns when any neuron's images change
RUN_FIGURES = ("overview_figure", "methods_figure", "hidden_units_figure", "metrics_figure")
# what shows every method (the other figures show the first, mfv)
ALL_METHODS = ("methods_figure", "metrics_figure", "index_page")
# the aggregate over seeds and its figures, after any new metrics
EVALUATION = {"evaluation": 1, "evaluation_figures": 1}


def test_one_methods_setting_reruns_only_that_method(default_run) -> None:
    workdir, config = default_run
    jobs = plan(workdir, changed(config, "synthesis", fourier={"learning_rate": 0.02}))
    expected = {"synthesize": batches(config), "synthesis_metrics": 1, "all": 1, **EVALUATION}
    assert jobs == {**expected, **dict.fromkeys(ALL_METHODS, 1)}


def test_a_method_setting_written_at_its_default_reruns_nothing(default_run) -> None:
    """A job's params hold its method's settings with the defaults filled in: writing out a
    default changes nothing, and a facetviz whose default changed reruns that method."""
    workdir, config = default_run
    default = method_class("fourier").Settings().learning_rate
    assert plan(workdir, changed(config, "synthesis", fourier={"learning_rate": default})) == {}


def test_priors_setting_reruns_the_generator_and_learned_prior_methods_only(default_run) -> None:
    workdir, config = default_run
    jobs = plan(workdir, changed(config, "priors", epochs=2))
    learned = [name for name in methods_and_references(config) if learned_prior([name])]
    assert sorted(learned) == ["dgn", "dgn_released", "g_centroid", "ppgn"]
    assert jobs == {
        "generator": 1,
        "generator_metrics": 1,
        "synthesize": batches(config) * len(learned),
        "synthesis_metrics": 1,
        **EVALUATION,
        **dict.fromkeys(ALL_METHODS, 1),
        "all": 1,
    }


def test_a_new_oracle_remeasures_without_retraining_the_generator(default_run) -> None:
    """The generator's metrics are their own job: a new oracle reruns them, not its training
    (nor any synthesis)."""
    workdir, config = default_run
    jobs = plan(workdir, changed(config, "oracle", epochs=2))
    assert "generator" not in jobs and "synthesize" not in jobs
    assert jobs == {
        "oracle": 1,
        "generator_metrics": 1,
        "synthesis_metrics": 1,
        **EVALUATION,
        "metrics_figure": 1,
        "index_page": 1,
        "all": 1,
    }


def test_the_oracle_trains_on_one_thread_whatever_the_cores(default_run) -> None:
    """Its floats depend on the thread count: on one thread it is the same on every machine's
    core count; the model trains on as many as the rule allows."""
    workdir, config = default_run
    forced = ("--dry-run", "--printshellcmds", "--forcerun", "oracle", "train")
    result = snakemake(workdir, config, *forced, "--cores", "8")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "facetviz oracle --threads 1 " in out and "facetviz train --threads 4 " in out


def test_the_facet_layer_does_not_retrain_a_generator_of_another_code_layer(default_run) -> None:
    workdir, config = default_run
    assert config["priors"]["code_layer"]  # set explicitly in the default config
    jobs = plan(workdir, changed(config, "facets", layer="classifier.3"))
    assert jobs["facets"] == len(config["neurons"]) and "generator" not in jobs


@pytest.mark.parametrize(
    ("values", "reruns"),
    [
        ({"examples": 3}, {"facets_figure": 8, "index_page": 1}),
        ({"hidden_unit_facets": 2}, {"hidden_units_figure": 1}),
        ({"max_rows": 5}, {"overview_figure": 1, "methods_figure": 1, "hidden_units_figure": 1}),
    ],
)
def test_figure_setting_reruns_only_figures(default_run, values: dict, reruns: dict) -> None:
    workdir, config = default_run
    assert len(config["neurons"]) == 8
    assert plan(workdir, changed(config, "figures", **values)) == {**reruns, "all": 1}


@pytest.mark.parametrize(("key", "value"), [("k", 9), ("perplexity", 12)])
def test_facet_setting_reruns_clustering_onward(default_run, key: str, value) -> None:
    workdir, config = default_run
    jobs = plan(workdir, changed(config, "facets", **{key: value}))
    n = len(config["neurons"])
    assert "train" not in jobs and "activations" not in jobs
    assert jobs["facets"] == jobs["embedding_figure"] == jobs["facets_figure"] == n
    assert jobs["facet_table"] == jobs["index_page"] == 1
    assert all(jobs[figure] == 1 for figure in RUN_FIGURES)
    assert jobs["synthesize"] >= 1


def test_adding_a_neuron_runs_only_its_jobs(default_run) -> None:
    workdir, config = default_run
    grown = copy.deepcopy(config)
    # a layer the activations file already stores: no new forward pass
    grown["neurons"].append({"name": "fc-u9", "layer": "classifier.2", "unit": 9, "select": "top"})
    jobs = plan(workdir, grown)
    assert jobs == {
        "facets": 1,
        "embedding_figure": 1,
        # a new batch per method and reference
        "synthesize": len(methods_and_references(config)),
        "facets_figure": 1,
        "facet_table": 1,
        **dict.fromkeys(RUN_FIGURES, 1),
        "index_page": 1,
        "all": 1,
    }


@pytest.mark.parametrize(
    ("section", "values"),
    [("model", {"width": 12}), ("dataset", {"max_images": 500}), ("seed", None)],
)
def test_model_or_dataset_change_reruns_everything(default_run, section: str, values) -> None:
    workdir, config = default_run
    config = {**config, "seed": 1} if values is None else changed(config, section, **values)
    jobs = plan(workdir, config)
    n = len(config["neurons"])
    assert jobs["train"] == jobs["activations"] == 1
    assert jobs["facets"] == jobs["facets_figure"] == jobs["embedding_figure"] == n


def wait_for(path: Path, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"snakemake ended (exit {process.returncode}) before {path} appeared")
        if time.monotonic() > deadline:
            pytest.fail(f"{path} did not appear within {timeout} s")
        time.sleep(0.2)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_killed_run_resumes_without_redoing_finished_jobs(
    stop: signal.Signals, tmp_path: Path, real_fashion_mnist: Path
) -> None:
    config = tiny_config(real_fashion_mnist)
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    results = tmp_path / "results" / "tiny"
    profile = REPO / "workflow" / "profiles" / "default"
    command, env = snakemake_command(tmp_path, config_path, "--workflow-profile", str(profile))
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        # stop it while facet jobs run: training and the forward pass are finished by then
        wait_for(results / "logs" / "facets" / "footwear.log", process, timeout=300)
        os.killpg(process.pid, stop)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            # Snakemake 9 can miss a Ctrl-C that lands while it schedules (once in about six
            # runs of this test): a user presses it again (docs/faults.md §4)
            assert stop == signal.SIGINT, "SIGKILL did not end snakemake"
            os.killpg(process.pid, stop)
            process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    finished = {
        path: path.stat().st_mtime_ns
        for path in (results / "model" / "model.pt", results / "activations.h5")
    }
    if stop == signal.SIGKILL:  # nothing could release Snakemake's lock: the documented step
        unlock = subprocess.run([*command, "--unlock"], env=env, capture_output=True, timeout=120)
        assert unlock.returncode == 0, unlock.stderr[-2000:]

    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    for path, mtime in finished.items():
        assert path.stat().st_mtime_ns == mtime, f"{path.name} was made again"
    for neuron in config["neurons"]:
        assert (results / "figures" / "facets" / f"{neuron['name']}.png").exists()
    assert (results / "figures" / "overview.png").exists()
    leftovers = [p for p in tmp_path.rglob("*.partial*")]
    assert leftovers == [], "partial outputs survived the resume"
    again = snakemake(tmp_path, config, "--dry-run")
    assert "Nothing to be done" in again.stdout + again.stderr
