"""The tiny pipeline through snakemake's SLURM executor and the project's SLURM profile, on a real
single-node SLURM that the test starts here (tests/slurm_cluster.py).

It needs root and apt to install Debian's SLURM where it is missing, and the executor plugins
(in requirements.txt, so `make` installs them); without them it is skipped, saying what was missing.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import slurm_snakemake_args
from slurm_cluster import Cluster
from test_workflow import snakemake, tiny_config

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]


def test_tiny_run_through_slurm(slurm_cluster: Cluster, tmp_path: Path, real_fashion_mnist: Path):
    config = tiny_config(real_fashion_mnist)
    # One neuron keeps the run short (8 jobs): each job costs a SLURM round trip, seconds of
    # executor status polling, and three Python start-ups (sbatch's snakemake, srun's, the rule's).
    config["neurons"] = config["neurons"][:1]
    # Likewise one synthesis method and no oracle, where the config has them (the SLURM side is
    # the same for every rule).
    if "methods" in config["synthesis"]:
        config["synthesis"]["methods"] = config["synthesis"]["methods"][:1]
    if "oracle" in config:
        config["oracle"]["enabled"] = False
    result = snakemake(tmp_path, config, *slurm_snakemake_args(slurm_cluster))
    output = result.stdout + result.stderr
    assert result.returncode == 0, (
        output[-6000:] + "\n--- slurmctld:\n" + slurm_cluster.log("slurmctld")[-3000:]
    )

    results = tmp_path / "results" / "tiny"
    names = [neuron["name"] for neuron in config["neurons"]]
    expected = [
        "model/metrics.json",
        "model/model.pt",
        "activations.h5",
        "facets/table.csv",
        "figures/overview.png",
        *(f"figures/facets/{name}.png" for name in names),
        *(f"figures/embedding/{name}.png" for name in names),
    ]
    missing = [path for path in expected if not (results / path).is_file()]
    assert not missing, f"missing outputs {missing}:\n{output[-3000:]}"

    # Every job snakemake ran was a SLURM job of this run, and SLURM saw it complete.
    run_id = re.search(r"SLURM run ID: (\S+)", output)
    assert run_id, output[-3000:]
    submitted = set(re.findall(r"has been submitted with SLURM jobid (\d+)", output))
    rules_run = re.findall(r"^rule (\w+):$", output, flags=re.MULTILINE)
    assert len(submitted) == len(rules_run) > 0, output[-3000:]
    queue = slurm_cluster.command(
        "squeue",
        "--noheader",
        "--states=all",
        f"--name={run_id[1]}",
        "--format=%i|%T|%k|%b|%V|%S|%e",
    )
    assert queue.returncode == 0, queue.stderr
    # With -s: when each job was submitted, started and ended (where a slow run spent its time).
    print("\nSLURM jobs of this run (id|state|comment|gres|submitted|started|ended):")
    print(queue.stdout)
    rows = [line.split("|") for line in queue.stdout.split()]
    jobs = {job: (state, comment, gres) for job, state, comment, gres, *_times in rows}
    assert set(jobs) == submitted, queue.stdout
    assert {state for state, _comment, _gres in jobs.values()} == {"COMPLETED"}, queue.stdout
    # the job comment is rule_<name>[_wildcards_<values>]
    comments = [re.fullmatch(r"rule_(\w+?)(_wildcards_\S+)?", c) for _, c, _ in jobs.values()]
    assert all(comments), queue.stdout
    rules_in_slurm = sorted(comment[1] for comment in comments)
    assert rules_in_slurm == sorted(rules_run)
    assert {"train", "facets", "synthesize", "overview_figure"} <= set(rules_run), rules_run
    assert any(rule.startswith("activations") for rule in rules_run), rules_run
    # A CPU run: no job asks for the node's (fake) GPU.
    assert {gres for _state, _comment, gres in jobs.values()} == {"N/A"}, queue.stdout
    assert "sched: Allocate JobId=" in slurm_cluster.log("slurmctld")
