"""Bad input that reaches the dataset's folders and the names of outputs, against the real
snakemake (the bad-input table of docs/faults.md lists each case): a class folder whose links
loop back to it stops the dry run within seconds, naming the folder; `run` and a neuron named
`..` cannot plan outputs outside their folder; a resize below the image size and values past
the schema's bounds are refused before any job.
"""

from __future__ import annotations

import copy
import os
import subprocess
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
import yaml
from conftest import REPO, make_image_folder
from conftest import tests_on_pythonpath as on_pythonpath  # not named test*: no test
from fault_models import CLASSES, folder_config
from test_bad_inputs import assert_refused, selected_cases, two_at_a_time
from test_workflow import snakemake_command, tiny_config

pytestmark = [pytest.mark.workflow]

# A dry run that walks a folder for ever is stopped here; one that ends takes Snakemake's and
# torch's start-up (about 30 s with two at once on 2 cores) and the checks, well under a second.
LIMIT_S = 180
WITHIN_S = 90


def _looping_class(config: dict, _tmp: Path) -> None:
    """Class folder `d` holds no image, only two links to itself (`ln -s . a; ln -s . b`), and
    the first neuron selects it."""
    loop = Path(config["dataset"]["root"]) / "d"
    loop.mkdir()
    os.symlink(".", loop / "a")
    os.symlink(".", loop / "b")
    config["neurons"][0]["class"] = "d"


def _rename_neuron(config: dict, _tmp: Path) -> None:
    config["neurons"][0]["name"] = ".."


Change = Callable[[dict, Path], object]
# name: (base config, change(config, tmp_path), fragments the message must hold)
BAD_DATA_CONFIGS: dict[str, tuple[str, Change, list[str]]] = {
    "class folder whose links loop back to it": (
        "folder",
        _looping_class,
        ["neurons[0] (logit-a).class: class 'd' has no images", "/train/d holds no image files"],
    ),
    "run named ..": ("tiny", lambda c, _: c.update(run=".."), ["run: '..' names no folder"]),
    "run named .": ("tiny", lambda c, _: c.update(run="."), ["run: '.' names no folder"]),
    "neuron named ..": ("tiny", _rename_neuron, ["neurons[0] (..).name: '..' names no folder"]),
    "resize below image_size": (
        "folder",
        lambda c, _: c["dataset"].update(resize=24),
        ["dataset.resize: 24 px is smaller than dataset.image_size, 32 px", "padded with black"],
    ),
    "image_size past its bound": (
        "folder",
        lambda c, _: c["dataset"].update(image_size=3200),
        ["3200 is greater than the maximum of 1024", "['image_size']"],
    ),
    "top_n past its bound": (
        "tiny",
        lambda c, _: c["facets"].update(top_n=1_000_000),
        ["1000000 is greater than the maximum of 100000", "['top_n']"],
    ),
    "k past its bound": (
        "tiny",
        lambda c, _: c["facets"].update(k=1000),
        ["1000 is greater than the maximum of 100", "['facets']['properties']['k']"],
    ),
}


def _dry_run(case: str, workdir: Path, fashion: Path) -> tuple[subprocess.CompletedProcess, float]:
    """The case's dry run in `workdir`, and how long it took."""
    base, change, _expected = BAD_DATA_CONFIGS[case]
    if base == "tiny":
        config = copy.deepcopy(tiny_config(fashion))
    else:
        config = folder_config(make_image_folder(workdir / "train", CLASSES))
    change(config, workdir)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    command, env = snakemake_command(workdir, path, "--dry-run")
    start = time.monotonic()
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=LIMIT_S, env=env)
    except subprocess.TimeoutExpired:  # a walk that never ends: the test says so
        result = subprocess.CompletedProcess(command, -9, "", f"still running after {LIMIT_S} s")
    return result, time.monotonic() - start


@pytest.fixture(scope="module")
def dry_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, real_fashion_mnist
) -> dict[str, tuple[subprocess.CompletedProcess, float, Path]]:
    """The dry run of every selected case, how long it took, and its working directory."""
    workdirs = {
        case: tmp_path_factory.mktemp("bad-data-config")
        for case in selected_cases(request, "test_bad_data_config_stops_before_any_job")
    }
    with pytest.MonkeyPatch.context() as patch:
        on_pythonpath(patch)  # the folder cases' model is tests/fault_models.py
        runs = {
            case: partial(_dry_run, case, w, real_fashion_mnist) for case, w in workdirs.items()
        }
        results = two_at_a_time(runs)
    return {case: (*results[case], workdirs[case]) for case in workdirs}


@pytest.mark.parametrize("case", list(BAD_DATA_CONFIGS))
def test_bad_data_config_stops_before_any_job(case: str, dry_runs) -> None:
    result, seconds, workdir = dry_runs[case]
    assert_refused(result, BAD_DATA_CONFIGS[case][2])
    assert seconds < WITHIN_S, f"{case}: the dry run took {seconds:.0f} s"
    assert not (workdir / "results").exists(), "a job ran despite the bad config"
    assert not (workdir.parent / "oracle").exists()  # what `run: ..` planned


def test_the_faults_table_names_every_data_case() -> None:
    """docs/faults.md's bad-input table names each case of this file, so the two stay in step."""
    table = (REPO / "docs" / "faults.md").read_text()
    cases = [f"[{case}]" for case in BAD_DATA_CONFIGS]
    missing = [case for case in cases if case not in table]
    assert not missing, f"docs/faults.md's bad-input table lacks {missing}"
