"""Token layers in the real workflow (model/views.py): config/vit.yaml plans its jobs with each
neuron's view folded into its layer, the default CNN run resolves its neurons as before views
existed, and a token rule that would misread its layer stops the dry run before any job, with
a message that names the key and the fix.

The other cases of the bad-input table are in tests/workflow/test_bad_inputs.py, whose helpers
these use; each rule's branches are unit-tested in tests/unit/model/test_views.py.
"""

from __future__ import annotations

import json
import re
import subprocess
from functools import partial
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from test_bad_inputs import assert_refused, two_at_a_time
from test_reruns import planned_jobs
from test_workflow import snakemake

pytestmark = pytest.mark.workflow

MLP = "encoder.layers.encoder_layer_2.mlp.1"  # [50, 128]: a class token and a 7x7 grid
BLOCK = "encoder.layers.encoder_layer_2"  # [50, 64]


def vit_overlay(fashion_root: Path, **changes) -> dict:
    """config/vit.yaml (the embedded ViT on the default run's settings), with `changes`."""
    return {"base": "config/vit.yaml", "dataset": {"root": str(fashion_root)}, **changes}


def bad_neuron(**neuron) -> dict:
    return {"neurons": [{"name": "bad", "unit": 0, **neuron}]}


# name: (the overlay's changes, fragments the message must hold)
BAD_TOKENS = {
    "tokens on a vector": (
        bad_neuron(layer="heads.head", tokens="mean"),
        ["neurons[0] (bad).tokens: layer 'heads.head' gives a vector [4], not tokens",
         "remove tokens"],
    ),
    "tokens on a conv map": (
        bad_neuron(layer="conv_proj", tokens="mean"),
        ["neurons[0] (bad).tokens: layer 'conv_proj' gives a conv map ([C, H, W]) [64, 7, 7]",
         "remove tokens (use spatial for a conv map)"],
    ),
    "patch outside the grid": (
        bad_neuron(layer=MLP, patch=[7, 0]),
        ["neurons[0] (bad).patch: [7, 0] is outside", "7x7 grid of patches",
         "rows and columns are 0..6"],
    ),
    "spatial on a token layer": (
        bad_neuron(layer=MLP, spatial="center"),
        ["neurons[0] (bad).spatial", "is a token layer [50, 128]",
         "Use tokens: mean, max, cls or center, or patch: [row, col]"],
    ),
    "facet tokens on a conv map": (
        {"facets": {"layer": "conv_proj", "tokens": "cls"}},
        ["facets.tokens: layer 'conv_proj' gives a conv map", "remove facets.tokens"],
    ),
    "view outside the grid": (
        bad_neuron(layer=f"{MLP}@patch-0-9"),
        ["neurons[0] (bad).layer: @patch-0-9 is outside", "rows and columns are 0..6"],
    ),
    "probe on a raw token layer": (
        {"probes": {"p": {"layer": BLOCK, "class": "Sneaker"}},
         "neurons": [{"name": "p", "probe": "p"}]},
        [f"probes.p.layer: '{BLOCK}' is a token layer [50, 64]",
         f"{BLOCK}@mean (the patch mean)", f"{BLOCK}@cls"],
    ),
    "facet pool on tokens read as one vector": (
        {"facets": {"layer": BLOCK, "tokens": "mean", "pool": "mean"}},
        ["facets.pool: mean pools a conv map [C, H, W] over its positions",
         "facets.tokens: mean reads one vector per image, with no positions",
         f"Set facets.pool: none, or facets.layer: {BLOCK}@grid"],
    ),
    "facet pool on a vector layer": (
        {"facets": {"layer": "heads.head", "pool": "pyramid"}},
        ["facets.pool: pyramid pools a conv map",
         "layer 'heads.head' gives a vector [4], with no positions to pool over",
         "Set facets.pool: none, or a conv facets.layer"],
    ),
}  # fmt: skip


def _plan(workdir: Path, config: dict | Path) -> subprocess.CompletedProcess:
    """The dry run, printing each job's command (and so its settings)."""
    return snakemake(workdir, config, "--dry-run", "--printshellcmds")


@pytest.fixture(scope="module")
def dry_runs(tmp_path_factory: pytest.TempPathFactory, real_fashion_mnist: Path):
    """Every dry run of this module, two at a time: the bad cases, vit.yaml and the default
    config ({name: (result, workdir)})."""
    runs = {case: vit_overlay(real_fashion_mnist, **BAD_TOKENS[case][0]) for case in BAD_TOKENS}
    runs |= {"vit": vit_overlay(real_fashion_mnist), "default": REPO / "config" / "config.yaml"}
    workdirs = {name: tmp_path_factory.mktemp("tokens") for name in runs}
    results = two_at_a_time({name: partial(_plan, workdirs[name], runs[name]) for name in runs})
    return {name: (results[name], workdirs[name]) for name in runs}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
def test_a_token_rule_that_misreads_its_layer_stops_before_any_job(case: str, dry_runs) -> None:
    result, workdir = dry_runs[case]
    message = assert_refused(result, BAD_TOKENS[case][1])
    assert "Invalid config" in message
    assert not (workdir / "results").exists(), "a job ran despite the bad config"


def job_settings(output: str, command: str) -> list[dict]:
    """The --settings of every planned `python -m facetviz <command>` job."""
    pattern = rf"facetviz {command} .*?--settings '(\{{.*?\}})'"
    return [json.loads(found) for found in re.findall(pattern, output)]


def planned(dry_runs, name: str) -> tuple[str, dict[str, dict]]:
    """A positive dry run's output, and its facets jobs' neurons by name."""
    result, _workdir = dry_runs[name]
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    neurons = {s["neuron"]["name"]: s for s in job_settings(result.stdout, "facets")}
    return result.stdout, neurons


def test_vit_config_plans_its_neurons_through_their_views(dry_runs) -> None:
    out, facets = planned(dry_runs, "vit")
    vit = yaml.safe_load((REPO / "config" / "vit.yaml").read_text())
    assert planned_jobs(out)["facets"] == len(vit["neurons"]) == len(facets)
    for neuron in vit["neurons"]:
        settings = facets[neuron["name"]]
        resolved = settings["neuron"]
        view = neuron.get("tokens")
        assert resolved["layer"] == (f"{MLP}@{view}" if view else "heads.head"), resolved
        assert resolved["spatial"] == "center" and resolved["unit"] == neuron["unit"]
        assert "tokens" not in resolved and "patch" not in resolved
        assert resolved["units"] == (128 if view else 4)
        # facets.tokens: all (the default): the block's raw name, every token flattened
        assert settings["facets"]["layer"] == BLOCK and "tokens" not in settings["facets"]
    (generator,) = job_settings(out, "generator")
    assert generator["priors"]["code_layer"] == f"{BLOCK}@grid"
    (activations,) = job_settings(out, "activations")
    assert activations["facet_layer"] == BLOCK
    assert activations["target_layers"] == sorted(
        [f"{MLP}@{rule}" for rule in ("center", "cls", "mean")] + ["heads.head"]
    )


def test_default_config_resolves_its_neurons_as_before_views(dry_runs) -> None:
    """The CNN run: each neuron's own layer (no view) and spatial rule (the centre where none
    is given), and settings without the token keys: its jobs' params are what they were."""
    out, facets = planned(dry_runs, "default")
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert set(facets) == {neuron["name"] for neuron in default["neurons"]}
    for neuron in default["neurons"]:
        settings = facets[neuron["name"]]
        resolved = settings["neuron"]
        assert resolved["layer"] == neuron["layer"] and "@" not in resolved["layer"]
        assert resolved["spatial"] == neuron.get("spatial", "center")
        assert "tokens" not in resolved and "patch" not in resolved
        assert settings["facets"]["layer"] == default["facets"]["layer"]
        assert "tokens" not in settings["facets"]
    assert facets["conv3-ch0"]["neuron"]["layer"] == "features.6"
    assert facets["conv3-ch0"]["neuron"]["spatial"] == "center"
    (generator,) = job_settings(out, "generator")
    assert generator["priors"]["code_layer"] == default["priors"]["code_layer"]
    (activations,) = job_settings(out, "activations")
    assert not any("@" in layer for layer in activations["target_layers"])
