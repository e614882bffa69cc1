"""Faults at cluster scale, with real components: a SLURM job cancelled mid-run, a disk that
fills up during the activations and synthesis stages, and two runs at once in one checkout.

Each uses the small ImageFolder run of tests/fault_models.py (a custom CNN with random weights,
so no training job). Where the machine does not allow a test (no root, no mount, no SLURM), it
is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import pytest
import yaml
from conftest import REPO, make_image_folder, partial_files, slurm_snakemake_args
from fault_models import CLASSES, CODE_LAYER, FOLDER_RUN, folder_config
from slurm_cluster import Cluster
from snakemake.utils import validate
from test_workflow import snakemake, snakemake_command

pytestmark = [pytest.mark.workflow, pytest.mark.usefixtures("fault_models_importable")]

IMAGES = sum(CLASSES.values())
BATCH = f"results/{FOLDER_RUN}/synthesis/mfv/batch-000"


def rules_run(result: subprocess.CompletedProcess) -> list[str]:
    return re.findall(r"^(?:local)?rule (\w+):$", result.stdout + result.stderr, re.MULTILINE)


def output_of(result: subprocess.CompletedProcess) -> str:
    return result.stdout[-4000:] + result.stderr[-4000:]


def start(workdir: Path, config: dict, name: str, *args: str) -> subprocess.Popen:
    """The real snakemake in the background; its output goes to workdir/<name>.log."""
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    command, env = snakemake_command(workdir, path, *args)
    with (workdir / f"{name}.log").open("w") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)


# --- (a) a SLURM job cancelled mid-run --------------------------------------------------------


def _wait_for(what: str, ready, process: subprocess.Popen, timeout: float = 240) -> None:
    """Poll `ready()` while `process` runs; fail if it ends first or the wait times out."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            pytest.fail(f"snakemake ended (exit {process.returncode}) before {what}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no {what} within {timeout:.0f} s")
        time.sleep(0.2)


@pytest.mark.slurm
def test_cancelled_slurm_job_fails_cleanly_and_the_rerun_finishes(
    slurm_cluster: Cluster, tmp_path: Path
):
    """scancel a sharded forward-pass job while it writes: the run fails naming the job, leaves
    no shard that looks complete, and the same command then runs only the cancelled shard and
    the join."""
    config = folder_config(make_image_folder(tmp_path / "train", CLASSES), sleep=0.5)
    config["activations"]["shards"] = 2  # 9 images each: 3 batches of 4, 0.5 s each
    target = f"results/{FOLDER_RUN}/activations.h5"
    slurm = [*slurm_snakemake_args(slurm_cluster, jobs=1), target]
    shards = tmp_path / "results" / FOLDER_RUN / "activations"
    first = start(tmp_path, config, "first", *slurm)

    def second_shard_writing() -> bool:  # one job at a time: the other shard has finished
        return any(shards.glob("shard-*.h5")) and any(shards.glob(".shard-*.h5.*.partial"))

    _wait_for("the second shard's job writing", second_shard_writing, first)
    (done,) = (path.name for path in shards.glob("shard-*.h5"))
    cancelled = "shard-0-of-2.h5" if done == "shard-1-of-2.h5" else "shard-1-of-2.h5"
    running = slurm_cluster.command("squeue", "--noheader", "--states=RUNNING", "--format=%i")
    assert len(running.stdout.split()) == 1, running.stdout
    cancel = slurm_cluster.command("scancel", running.stdout.strip())
    assert cancel.returncode == 0, cancel.stderr
    first.wait(timeout=240)
    output = (tmp_path / "first.log").read_text()
    assert first.returncode != 0, output[-4000:]
    assert "CANCELLED" in output and "Error in rule activations_shard" in output, output[-4000:]
    assert (shards / done).exists()  # finished before the cancel: kept for the next run
    assert not (shards / cancelled).exists()
    assert not partial_files(tmp_path / "results"), "the cancelled job left its partial file"
    log = tmp_path / "results" / FOLDER_RUN / "logs" / "activations" / cancelled
    assert "stopped by SIGTERM" in log.with_suffix(".log").read_text()

    second = snakemake(tmp_path, tmp_path / "first.yaml", *slurm)
    assert second.returncode == 0, output_of(second)
    assert sorted(rules_run(second)) == ["activations_join", "activations_shard"]
    # the cancelled shard ran again, the finished one did not
    assert f"output: results/{FOLDER_RUN}/activations/{cancelled}" in output_of(second)
    with h5py.File(tmp_path / target, "r") as handle:
        assert len(handle["labels"]) == IMAGES
    assert not partial_files(tmp_path / "results")


def test_sigterm_makes_a_stage_remove_its_partial_output(tmp_path: Path):
    """What scancel, a SLURM time limit or a stopping snakemake send, straight to a stage: it
    unwinds, removes its partial file and says so (the SLURM test above needs a cluster)."""
    config = folder_config(make_image_folder(tmp_path / "train", CLASSES), sleep=1.0)
    # the settings a rule passes are those of the validated config, with the schema's defaults
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    settings = {key: config[key] for key in ("dataset", "model", "device")}
    settings.update(seed=0, facet_layer=CODE_LAYER, target_layers=[CODE_LAYER], batch_size=4)
    out = tmp_path / "activations.h5"
    stage = subprocess.Popen(
        [sys.executable, "-m", "facetviz", "activations", "--settings", json.dumps(settings)]
        + ["--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _wait_for("the partial file", lambda: bool(partial_files(tmp_path)), stage, timeout=60)
    stage.send_signal(signal.SIGTERM)
    log = stage.communicate(timeout=60)[0]
    assert stage.returncode == 128 + signal.SIGTERM, log
    assert "stopped by SIGTERM: this stage kept no output" in log
    assert "Traceback" not in log
    assert not out.exists() and not partial_files(tmp_path)


# --- (b) a full disk ------------------------------------------------------------------------


@contextmanager
def small_filesystem(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `folder`: a real filesystem that fills up (root only)."""
    folder.mkdir(parents=True)
    if os.geteuid() != 0:
        pytest.skip(f"mounting a small filesystem needs root (running as uid {os.geteuid()})")
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=False)


def fill(folder: Path, leave: int) -> Path:
    """Take all but `leave` bytes of `folder`'s filesystem; delete the file to free them."""
    filler = folder / "filler"
    with filler.open("wb") as handle:
        os.posix_fallocate(handle.fileno(), 0, shutil.disk_usage(folder).free - leave)
    return filler


def fails_for_lack_of_space(workdir: Path, config: dict, writing: str) -> list[str]:
    """Run to BATCH with 8 kB left on results/: the run must fail naming `writing` and leave
    neither it nor a partial file. The space is freed again; returns the rules that ran."""
    results = workdir / "results"
    # The logs fit in what is left (a page each); the stage's HDF5 output does not.
    filler = fill(results, leave=8192)
    full = snakemake(workdir, config, "--show-failed-logs", BATCH)
    filler.unlink()
    message = output_of(full)
    assert full.returncode != 0, message
    assert f"No space left on device while writing {writing}" in message
    assert "Traceback" not in message and "Segmentation fault" not in message
    assert not (workdir / writing).exists()
    assert not partial_files(results)
    return rules_run(full)


def test_full_disk_fails_clearly_and_the_run_completes_once_space_is_freed(tmp_path: Path):
    config = folder_config(make_image_folder(tmp_path / "train", CLASSES))
    config["neurons"] = config["neurons"][:1]  # one facets and one synthesis job (BATCH)
    run = f"results/{FOLDER_RUN}"
    with small_filesystem(tmp_path / "results", "2m"):
        assert fails_for_lack_of_space(tmp_path, config, f"{run}/activations.h5") == ["activations"]
        done = snakemake(tmp_path, config, f"{run}/facets/logit-a.json")
        assert done.returncode == 0, output_of(done)
        assert fails_for_lack_of_space(tmp_path, config, BATCH) == ["synthesize"]
        done = snakemake(tmp_path, config, BATCH)
        assert done.returncode == 0, output_of(done)
        assert rules_run(done) == ["synthesize"]  # activations and facets were not redone
        assert len(list((tmp_path / BATCH).glob("logit-a/facet_*.png"))) == 2
        assert not partial_files(tmp_path / "results")


# --- (c) two runs at once in one checkout ---------------------------------------------------


def test_two_runs_at_once_in_one_checkout(tmp_path: Path):
    """Different `run` names write disjoint outputs, so Snakemake's lock lets both proceed and
    both finish; a second start of the same run is refused by that lock, with its message."""
    root = make_image_folder(tmp_path / "train", CLASSES)
    # the forward pass and one neuron's facets each, a forward pass slow enough (2 s a batch)
    # that both runs still hold their locks when the second start of "first" builds its DAG
    configs = {name: folder_config(root, run=name, sleep=2.0) for name in ("first", "second")}
    targets = {name: f"results/{name}/facets/logit-a.json" for name in configs}
    runs = {
        name: start(tmp_path, config, name, "--cores", "1", targets[name])
        for name, config in configs.items()
    }
    locks = tmp_path / ".snakemake" / "locks"
    _wait_for(
        "both runs' locks", lambda: len(list(locks.glob("*.output.lock"))) == 2, runs["first"]
    )
    # as the default profile does: without it, whether the second start is refused by the lock
    # or by Snakemake's incomplete-file check (which runs first) depends on whether the first
    # run's activations.h5 was renamed into place, not yet marked done, at that moment
    again = snakemake(tmp_path, tmp_path / "first.yaml", "--rerun-incomplete", targets["first"])
    for name, process in runs.items():
        process.wait(timeout=600)
        output = (tmp_path / f"{name}.log").read_text()
        assert process.returncode == 0, output[-4000:]
        assert json.loads((tmp_path / targets[name]).read_text())["images"] == CLASSES["a"]
        with h5py.File(tmp_path / "results" / name / "activations.h5", "r") as handle:
            assert len(handle["labels"]) == IMAGES
        assert not partial_files(tmp_path / "results" / name)
    assert again.returncode != 0
    assert "Directory cannot be locked" in again.stdout + again.stderr, output_of(again)
