"""The learned prior's check in a real run: a generator trained for one update (priors.updates:
1) is flagged in its job's log and on index.html, and with priors.check.on_poor: stop the run
stops before anything is drawn with it. One workdir: the stopped run's model, facets and
generator serve the run that warns."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from test_reruns import planned_jobs
from test_workflow import snakemake, tiny_config

pytestmark = pytest.mark.workflow

RUN = "poor-prior"
# the page and what it needs, not the figures: the run stays short
PAGE = f"results/{RUN}/index.html"


def one_update_config(fashion_root: Path, on_poor: str) -> dict:
    """The tiny run with one class unit, dgn alone, and a generator of conv3's code (as the
    default run's) trained for one update. No oracle, to keep it short: the code cosine fails
    (the accuracy's check: tests/unit/priors/test_prior_check.py)."""
    config = tiny_config(fashion_root)
    config["run"] = RUN
    config["neurons"] = config["neurons"][:1]
    config["synthesis"] = {"methods": ["dgn"], "steps_scale": 0.02}
    config["oracle"] = {"enabled": False}
    config["priors"] = {"code_layer": "features.7", "updates": 1, "check": {"on_poor": on_poor}}
    return config


def test_a_one_update_generator_stops_the_run_or_warns_in_the_log_and_on_the_page(
    tmp_path: Path, real_fashion_mnist: Path
) -> None:
    results = tmp_path / "results" / RUN
    log = results / "logs" / "priors" / "generator_metrics.log"

    stopping = one_update_config(real_fashion_mnist, "stop")
    stopped = snakemake(tmp_path, stopping, PAGE)
    assert stopped.returncode != 0, stopped.stdout[-2000:] + stopped.stderr[-3000:]
    assert (results / "priors" / "generator.pt").exists()  # it trained: the check stopped it
    stop_message = log.read_text()
    assert "The generator is too poor to trust" in stop_message
    assert "raise priors.updates (now 1)" in stop_message and "on_poor is stop" in stop_message
    assert not (results / "priors" / "generator.json").exists()
    # nothing was drawn with the generator (dgn, and g_centroid, the reference it draws)
    for method in ("dgn", "g_centroid"):
        assert not (results / "synthesis" / method).exists(), method

    warning = one_update_config(real_fashion_mnist, "warn")
    warned = snakemake(tmp_path, warning, PAGE)
    assert warned.returncode == 0, warned.stdout[-2000:] + warned.stderr[-5000:]
    check = json.loads((results / "priors" / "generator.json").read_text())["check"]
    figures = [problem["figure"] for problem in check["problems"]]
    assert check["passed"] is False and figures == ["code_cosine"]
    assert f"WARNING {check['message']}" in log.read_text()
    assert "raise priors.updates (now 1)" in check["message"]
    page = (results / "index.html").read_text()
    assert page.count("class='warning'") == 1
    assert check["message"].replace("'", "&#x27;") in page
    assert (results / "synthesis" / "dgn" / "batch-000").is_dir()

    # a new threshold re-measures the generator and redraws the page: it retrains nothing
    accepting = copy.deepcopy(warning)
    accepting["priors"]["check"]["code_cosine"] = -1.0
    planned = snakemake(tmp_path, accepting, "--dry-run", PAGE)
    assert planned.returncode == 0, planned.stdout[-2000:] + planned.stderr[-3000:]
    assert planned_jobs(planned.stdout + planned.stderr) == {
        "generator_metrics": 1,
        "index_page": 1,
    }
