"""Configs whose values reach a shell or name code (docs/faults.md, the bad-input table), through
the real snakemake: a weights path with shell syntax in it runs as a plain file name, and a
plug-in or a factory that is not what it claims to be is refused before any job.

The other cases of the table are in tests/workflow/test_bad_inputs.py, whose helpers these use.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import REPO, make_image_folder
from fault_models import CLASSES, FOLDER_RUN, build, folder_config
from plugin_method import plugin_source
from test_bad_inputs import assert_refused
from test_workflow import snakemake

from facetviz.synthesis import methods

pytestmark = [pytest.mark.workflow, pytest.mark.usefixtures("fault_models_importable")]

# A legal file name holding a quote, a command substitution, `;` and spaces: unquoted, or
# quoted by hand as '{input.weights}', the shell would run `touch PWNED`.
HOSTILE = "q'$(touch PWNED)'; x.pth"
HEAD_BIAS = 7.0  # the weights' logits: every image's, so that the job must have read the file


def hostile_weights(folder: Path) -> Path:
    """A valid state dict of the tests' custom CNN at a path with shell syntax in it."""
    model = build()
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.fill_(HEAD_BIAS)
    path = folder / "my weights" / HOSTILE
    path.parent.mkdir(parents=True)
    torch.save(model.state_dict(), path)
    return path


def pwned(tmp_path: Path) -> list[Path]:
    """The files a command in a config made: in the test's folders (snakemake and its jobs run
    in the working directory under it) or in the repository and pytest's folder."""
    made = list(tmp_path.rglob("PWNED"))
    return made + [path for path in (REPO / "PWNED", Path.cwd() / "PWNED") if path.exists()]


def rules_run(result: subprocess.CompletedProcess) -> list[str]:
    output = result.stdout + result.stderr
    return re.findall(r"^(?:local)?rule (\w+):$", output, flags=re.MULTILINE)


def test_a_weights_path_with_shell_syntax_runs_the_job_and_nothing_else(tmp_path: Path) -> None:
    """The activations job of a model whose weights file is named like a shell command: it
    reads that very file (the logits are the file's) and runs nothing else."""
    workdir = tmp_path / "run"
    config = folder_config(make_image_folder(workdir / "train", CLASSES))
    config["model"]["weights"] = str(hostile_weights(tmp_path))
    result = snakemake(workdir, config, f"results/{FOLDER_RUN}/activations.h5")
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert rules_run(result) == ["activations"], log[-4000:]
    assert not pwned(tmp_path), "a command in the weights path ran"
    with h5py.File(workdir / "results" / FOLDER_RUN / "activations.h5", "r") as handle:
        np.testing.assert_array_equal(handle["layers/head/value"][:], HEAD_BIAS)


# --- every command of a full DAG: the paths a config names are single words -----------------


def plugin(
    folder: Path, module: str, name: str, inputs=None, replaces: bool = False, cls: str = "Lab"
) -> dict:
    """Write a plug-in module that registers method `name` (class `cls`); the environment in
    which snakemake and its jobs import it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(plugin_source(name, cls, inputs, replaces))
    return {"PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])}


def shell_commands(result: subprocess.CompletedProcess) -> dict[str, list[list[str]]]:
    """Per rule, the words of each shell command a dry run with --printshellcmds prints, as
    the shell splits them (shlex follows POSIX quoting; nothing is expanded in '...')."""
    commands: dict[str, list[list[str]]] = {}
    rule = ""
    for line in (result.stdout + result.stderr).splitlines():
        if match := re.match(r"^(?:local)?rule (\w+):$", line):
            rule = match[1]
        elif line.startswith("Shell command: ") and line != "Shell command: None":  # `all`
            commands.setdefault(rule, []).append(shlex.split(line.removeprefix("Shell command: ")))
    return commands


def test_every_command_passes_the_configs_paths_as_single_words(tmp_path: Path) -> None:
    """The full DAG of a run with a sharded forward pass, a generator, a DAE, an oracle and a
    plug-in whose extra input has shell syntax in its path: every rule that gets the weights or
    that input gets each as one word, exactly the path."""
    workdir = tmp_path / "run"
    config = folder_config(make_image_folder(workdir / "train", CLASSES))
    weights = hostile_weights(tmp_path)
    config["model"]["weights"] = str(weights)
    extra = "priors/lab $(touch PWNED); 'x'.pt"
    env = plugin(tmp_path / "lab", "lab_methods", "lab-toy", {"extra": extra})
    made = workdir / "results" / FOLDER_RUN / extra  # made by no rule: the lab brings it
    made.parent.mkdir(parents=True)
    made.write_bytes(b"")
    config["oracle"] = {"enabled": True, "epochs": 1}
    config["activations"]["shards"] = 2
    config["synthesis"].update(
        methods=["mfv", "dgn", "ppgn", "lab-toy"], plugins=["lab_methods"], ppgn={"prior": "dae"}
    )
    result = snakemake(workdir, config, "--dry-run", "--printshellcmds", env=env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    commands = shell_commands(result)
    with_weights = {"activations_shard", "generator", "code_prior", "generator_metrics"}
    with_weights |= {"synthesize", "synthesis_metrics"}
    assert with_weights | {"activations_join", "oracle"} <= set(commands), sorted(commands)
    for rule in with_weights:
        for words in commands[rule]:
            assert f"--weights={weights}" in words, (rule, words)
    lab = [words for words in commands["synthesize"] if any("extra=" in word for word in words)]
    assert lab, commands["synthesize"]
    for words in lab:
        assert words[words.index("--input") + 1] == f"extra=results/{FOLDER_RUN}/{extra}", words
    for words in (w for rule_commands in commands.values() for w in rule_commands):
        assert ">" in words and words[-1] == "2>&1", words  # the redirection stayed whole
    assert not pwned(tmp_path)


# --- a plug-in or a factory that is not what it claims to be: refused before any job --------

# change(config, tmp_path) -> the variables to add to snakemake's environment
Change = Callable[[dict, Path], dict]


def _plugin_case(name: str, inputs=None, cls: str = "Lab") -> Change:
    def change(config: dict, tmp: Path) -> dict:
        config["synthesis"].update(methods=[name, "fourier"], plugins=["lab_methods"])
        return plugin(tmp / "lab", "lab_methods", name, inputs, cls=cls)

    return change


def _factory_case(factory: str, kwargs: dict) -> Change:
    def change(config: dict, _tmp: Path) -> dict:
        config["model"].update(factory=factory, kwargs=kwargs)
        return {}

    return change


# name: (change, fragments the message must hold)
CODE_CONFIGS: dict[str, tuple[Change, list[str]]] = {
    # the built-in's own class name too: `register` once compared only that, and let it through
    "plug-in named like a built-in": (
        _plugin_case("mfv", cls=methods.method_class("mfv").__qualname__),
        ["synthesis method 'mfv' is defined twice", "(built in)", "replaces = True"],
    ),
    "plug-in whose name is a path": (
        _plugin_case(".."),
        ["synthesis method '..'", "a method's name is a letter"],
    ),
    "plug-in input named like the rule's own": (
        _plugin_case("lab", {"weights": "priors/w.pt"}),
        ["synthesis method 'lab': input name 'weights' is taken by the synthesize rule"],
    ),
    "plug-in input name that is not an identifier": (
        _plugin_case("lab", {"a=b": "priors/w.pt"}),
        ["synthesis method 'lab': input name 'a=b' is not a Python identifier"],
    ),
    # os.system takes `command` by keyword: called, it would touch PWNED in the working folder
    "factory that is a builtin": (
        _factory_case("os:system", {"command": "touch PWNED"}),
        ["model.factory: 'os:system' is a built-in function", "It was not called"],
    ),
    "factory that is a module": (
        _factory_case("os:path", {}),
        ["model.factory: 'os:path' is a module", "an nn.Module class"],
    ),
    "factory that is a class of something else": (
        _factory_case("subprocess:Popen", {"args": ["touch", "PWNED"]}),
        ["model.factory: 'subprocess:Popen' is a class that is not an nn.Module"],
    ),
}


@pytest.mark.parametrize("case", list(CODE_CONFIGS))
def test_code_that_is_not_what_it_claims_stops_before_any_job(case: str, tmp_path: Path) -> None:
    change, expected = CODE_CONFIGS[case]
    workdir = tmp_path / "run"
    config = folder_config(make_image_folder(workdir / "train", CLASSES))
    env = change(config, tmp_path)
    result = snakemake(workdir, config, "--dry-run", env=env)
    assert_refused(result, expected)
    assert not (workdir / "results").exists(), "a job ran despite the bad config"
    assert not pwned(tmp_path), "the config's code ran"


def test_a_plugin_that_says_it_replaces_a_built_in_runs_in_its_place(tmp_path: Path) -> None:
    workdir = tmp_path / "run"
    config = folder_config(make_image_folder(workdir / "train", CLASSES))
    env = plugin(tmp_path / "lab", "lab_mfv", "mfv", replaces=True)
    config["synthesis"].update(methods=["mfv"], plugins=["lab_mfv"])
    result = snakemake(workdir, config, "--dry-run", "--printshellcmds", env=env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    synthesize = shell_commands(result)["synthesize"]
    settings = [json.loads(words[words.index("--settings") + 1]) for words in synthesize]
    mfv = [entry for entry in settings if entry["method"] == "mfv"]
    assert mfv and all(entry["synthesis"]["plugins"] == ["lab_mfv"] for entry in mfv)
    lab_settings = {"steps": 3, "step_size": 0.05}  # the lab's, not the built-in mfv's
    assert all(entry["synthesis"]["mfv"] == lab_settings for entry in mfv)


def test_the_faults_table_names_every_case_of_this_file() -> None:
    table = (REPO / "docs" / "faults.md").read_text()
    cases = [f"[{case}]" for case in CODE_CONFIGS]
    cases += [name for name in globals() if name.startswith("test_") and "faults_table" not in name]
    missing = [case for case in cases if case not in table]
    assert not missing, f"docs/faults.md's bad-input table lacks {missing}"
