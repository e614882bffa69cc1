"""The SLURM profile's per-rule resources (workflow/profiles/slurm/config.yaml) against the rules
the real snakemake reads from this workflow: every rule the profile names exists, and every
rule that needs more than a cluster's default has an entry (no SLURM needed).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from conftest import REPO, SLURM_PROFILE
from test_workflow import snakemake

pytestmark = pytest.mark.workflow

# Rules whose jobs run the model over a dataset or train something: hours at ImageNet scale,
# whatever their threads and resources say.
HEAVY = {
    "train",
    "oracle",
    "generator",
    "code_prior",
    "synthesize",
    "activations",
    "activations_shard",
    "facets",
}
# The fullest DAG: config/evaluation.yaml (every training and synthesis seed, the oracle, the
# learned priors), on CUDA so that the model rules ask for their GPU, with a sharded forward pass
# and ppgn's DAE prior, so that the rules made only then are in it too.
FULLEST = {
    "base": "config/evaluation.yaml",
    "device": "cuda",
    "activations": {"shards": 2},
    "synthesis": {"ppgn": {"prior": "dae"}},
    # a probe and an SAE, for their rules and the directions' evaluation
    "probes": {"sneaker": {"layer": "features.7", "class": "Sneaker"}},
    "sae": {"fc": {"layer": "classifier.2"}},
    "neurons": [
        {"name": "footwear", "layer": "classifier.5", "unit": 0, "select": "label"},
        {"name": "sneaker-probe", "probe": "sneaker"},
        {"name": "fc-latent", "sae": "fc", "latent": 0},
    ],
}


def dry_run_needs(output: str) -> dict[str, set[str]]:
    """Per rule of a dry run's jobs, what they ask for beyond the default: "threads" (more than
    one), "gpu"."""
    needs: dict[str, set[str]] = {}
    for block in re.split(r"^(?=(?:local)?rule \w+:$)", output, flags=re.MULTILINE):
        header = re.match(r"(?:local)?rule (\w+):$", block, flags=re.MULTILINE)
        if header is None:
            continue
        asks = needs.setdefault(header[1], set())
        threads = re.search(r"^\s+threads: (\d+)$", block, flags=re.MULTILINE)
        if threads and int(threads[1]) > 1:
            asks.add("threads")
        resources = re.search(r"^\s+resources: (.*)$", block, flags=re.MULTILINE)
        if resources and re.search(r"\bgpu=[1-9]", resources[1]):
            asks.add("gpu")
    return needs


@pytest.fixture(scope="module")
def workflow_rules(tmp_path_factory: pytest.TempPathFactory) -> tuple[set[str], dict]:
    """The names of every rule the workflow defines (`--list-rules` of the default config, and
    the rules of the fullest dry run, which defines the sharded ones), and what the fullest dry
    run's rules ask for."""
    workdir = tmp_path_factory.mktemp("profile-rules")
    listed = snakemake(workdir, REPO / "config" / "config.yaml", "--list-rules")
    assert listed.returncode == 0, listed.stderr[-3000:]
    fullest = workdir / "fullest.yaml"
    fullest.write_text(yaml.safe_dump(FULLEST))
    dry = snakemake(workdir, fullest, "--dry-run")
    assert dry.returncode == 0, (dry.stdout + dry.stderr)[-3000:]
    needs = dry_run_needs(dry.stdout + dry.stderr)
    names = set(listed.stdout.split()) | set(needs)
    # the parse found what it looks for (a changed log format would otherwise pass silently)
    assert {"gpu", "threads"} <= needs["train"] and "gpu" in needs["synthesize"], needs
    return names, needs


def profile_rules(path: Path = SLURM_PROFILE / "config.yaml") -> dict[str, dict]:
    profile = yaml.safe_load(path.read_text())
    return {**profile.get("set-resources", {}), **profile.get("set-threads", {})}


def test_the_slurm_profile_names_only_rules_that_exist(workflow_rules) -> None:
    names, _needs = workflow_rules
    unknown = sorted(set(profile_rules()) - names)
    assert not unknown, f"the SLURM profile names rules the workflow lacks: {unknown}"


def test_every_rule_that_needs_more_than_the_default_has_an_entry(workflow_rules) -> None:
    names, needs = workflow_rules
    required = {rule for rule, asks in needs.items() if asks} | (HEAVY & names)
    profile = profile_rules()
    missing = sorted(required - set(profile))
    assert not missing, f"the SLURM profile has no resources for {missing}"
    for rule in required:
        assert {"runtime", "mem_mb"} <= set(profile[rule]), (rule, profile[rule])
