"""The learned prior's budget in updates (priors.updates), and its check after training
(priors.check): it fires on a generator trained for one update, in the log, in generator.json
and on the page, or stops the run; it stays quiet on a generator trained enough."""

from __future__ import annotations

import html
import json
import logging
from dataclasses import replace
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import COARSE_LABEL_MAP, NEURON, dataset_settings, prior_settings, validated

from facetviz.core.errors import FacetvizError
from facetviz.core.settings import PriorCheckSettings, PriorSettings
from facetviz.data.datasets import FacetDataset, open_dataset
from facetviz.measure.generator import measure_generator
from facetviz.measure.prior_check import check_generator, poor_prior_message
from facetviz.model.networks import Network
from facetviz.priors.training import budget, fit_generator, train_generator
from facetviz.report.index_page import write_index

pytestmark = pytest.mark.usefixtures("one_thread")

# enough updates for the small run's generator to draw the bars the oracle tells apart (400: its
# reconstructions reach 0.68 of the oracle's accuracy, 600: 0.90)
ENOUGH = 600


def defaults() -> dict:
    """The priors section as the schema fills it in for a config that sets none of it."""
    return validated({"facets": {"layer": "classifier.3"}, "neurons": [NEURON]})["priors"]


DEFAULT_CHECK = PriorCheckSettings.from_config(defaults()["check"])


def test_the_default_budget_is_what_the_default_run_always_had() -> None:
    """3 passes over its 60,000 images in batches of 64: the default run's generator and code
    prior train exactly as before the budget was counted in updates."""
    priors = PriorSettings.from_config(defaults())
    assert priors.epochs is None and priors.dae_epochs is None
    before = replace(priors, epochs=3, dae_epochs=3)
    for dae in (False, True):
        now, then = budget(priors, 60000, dae), budget(before, 60000, dae)
        assert now.updates == then.updates and now.passes == pytest.approx(3, abs=0.01)
        assert now.key == ("priors.dae_updates" if dae else "priors.updates")
        assert then.key == ("priors.dae_epochs" if dae else "priors.epochs")


def test_a_small_data_set_gets_the_whole_budget_and_epochs_keep_their_meaning() -> None:
    priors = prior_settings(epochs=None, updates=500, batch_size=32)
    assert budget(priors, 400).updates == budget(priors, 40000).updates == 500
    assert budget(priors, 400).passes == pytest.approx(500 / 13)  # ceil(400 / 32) per pass
    # an older config's epochs: passes over the images, whatever updates says
    older = prior_settings(epochs=2, updates=500, batch_size=32)
    assert (budget(older, 400).updates, budget(older, 400).key) == (26, "priors.epochs")
    assert str(budget(older, 400)) == "26 updates (priors.epochs; 2 passes over the images)"


def test_updates_train_as_the_same_number_of_epochs_did(
    small_run_network: Network, coarse_fashion: FacetDataset
) -> None:
    images = coarse_fashion.pixels(np.arange(64))  # 2 batches of 32 a pass
    by_epochs = fit_generator(small_run_network, images, "classifier.3",
                              prior_settings(epochs=3), seed=0)  # fmt: skip
    by_updates = fit_generator(small_run_network, images, "classifier.3",
                               prior_settings(epochs=None, updates=6), seed=0)  # fmt: skip
    pairs = zip(by_epochs.state_dict().values(), by_updates.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


@pytest.fixture(scope="module")
def trained(small_run_network: Network, coarse_fashion, tmp_path_factory):
    """Trains the small run's generator for a number of updates (once each): its checkpoint
    and training record."""
    folder = tmp_path_factory.mktemp("generators")

    @cache
    def train(updates: int) -> tuple[Path, Path]:
        checkpoint, fit = folder / f"g{updates}.pt", folder / f"fit{updates}.json"
        settings = prior_settings(epochs=None, updates=updates)
        train_generator(small_run_network, coarse_fashion, "classifier.3", settings, 0,
                        checkpoint, fit)  # fmt: skip
        return checkpoint, fit

    return train


@pytest.fixture(scope="module")
def test_split(fashion_dir: Path) -> FacetDataset:
    settings = dataset_settings(root=str(fashion_dir), label_map=COARSE_LABEL_MAP)
    return open_dataset(settings, "test", seed=0)


def measure(network, test_split, trained, oracle, out: Path, updates: int, check=DEFAULT_CHECK):
    checkpoint, fit = trained(updates)
    return measure_generator(network, test_split, checkpoint, fit, out, oracle[0] / "o.pt", check)


def test_one_update_fails_the_check_with_a_warning_that_names_the_fix(
    small_run_network, test_split, trained, small_oracle, tmp_path: Path, caplog
) -> None:
    out = tmp_path / "generator.json"
    with caplog.at_level(logging.INFO, logger="facetviz"):
        metrics = measure(small_run_network, test_split, trained, small_oracle, out, 1)
    assert metrics["updates"] == 1 and metrics["updates_from"] == "priors.updates"
    check = json.loads(out.read_text())["check"]
    assert check == metrics["check"] and check["passed"] is False and check["on_poor"] == "warn"
    assert {p["figure"] for p in check["problems"]} == {"reconstruction_accuracy", "code_cosine"}
    for problem in check["problems"]:
        key = problem["key"].removeprefix("priors.check.")
        assert problem["value"] < problem["minimum"] == getattr(DEFAULT_CHECK, key)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [check["message"]]
    message = check["message"]
    assert f"below priors.check.accuracy = {DEFAULT_CHECK.accuracy:g}" in message
    assert f"below priors.check.code_cosine = {DEFAULT_CHECK.code_cosine:g}" in message
    assert f"{metrics['code_cosine']:.3f}" in message
    assert "raise priors.updates (now 1) or priors.width (now 16)" in message
    assert "lower priors.check.accuracy or priors.check.code_cosine if you accept" in message


def test_on_poor_stop_raises_the_message_and_writes_nothing(
    small_run_network, test_split, trained, small_oracle, tmp_path: Path
) -> None:
    out = tmp_path / "generator.json"
    stop = replace(DEFAULT_CHECK, on_poor="stop")
    with pytest.raises(FacetvizError, match=r"raise priors\.updates \(now 1\)") as raised:
        measure(small_run_network, test_split, trained, small_oracle, out, 1, stop)
    assert "too poor to trust" in str(raised.value) and "on_poor is stop" in str(raised.value)
    assert not out.exists()


def test_a_generator_trained_enough_passes_quietly(
    small_run_network, test_split, trained, small_oracle, tmp_path: Path, caplog
) -> None:
    out = tmp_path / "generator.json"
    with caplog.at_level(logging.INFO, logger="facetviz"):
        metrics = measure(small_run_network, test_split, trained, small_oracle, out, ENOUGH)
    assert metrics["reconstruction_accuracy"] >= DEFAULT_CHECK.accuracy
    assert metrics["code_cosine"] >= DEFAULT_CHECK.code_cosine
    minimums = {"reconstruction_accuracy": DEFAULT_CHECK.accuracy,
                "code_cosine": DEFAULT_CHECK.code_cosine}  # fmt: skip
    expected = {"passed": True, "on_poor": "warn", "minimums": minimums}
    assert json.loads(out.read_text())["check"] == expected
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    # on_poor: stop lets it through
    stopping = replace(DEFAULT_CHECK, on_poor="stop")
    again = measure(small_run_network, test_split, trained, small_oracle, out, ENOUGH, stopping)
    assert again["check"]["passed"] is True


def test_without_an_oracle_only_the_code_cosine_is_checked() -> None:
    good = {"code_cosine": DEFAULT_CHECK.code_cosine + 0.01, "updates": 9}
    assert check_generator(good, DEFAULT_CHECK, 16)["passed"] is True
    poor = check_generator({**good, "code_cosine": 0.5}, DEFAULT_CHECK, 16)
    assert [p["figure"] for p in poor["problems"]] == ["code_cosine"]
    assert poor["minimums"] == {"code_cosine": DEFAULT_CHECK.code_cosine}
    assert "priors.check.accuracy" not in poor["message"]


def test_the_fix_names_the_key_that_set_the_budget_and_a_weak_oracle() -> None:
    metrics = {"reconstruction_accuracy": 0.25, "real_accuracy": 0.3, "code_cosine": 0.99,
               "updates": 30, "updates_from": "priors.epochs", "passes": 3}  # fmt: skip
    message = check_generator(metrics, DEFAULT_CHECK, 64)["message"]
    assert "raise priors.epochs (now 3) or priors.width (now 64)" in message
    assert "the oracle itself scores only 0.300 on the real test images" in message
    problem = {"figure": "code_cosine", "value": 0.5, "minimum": 0.9, "key": "priors.check.x"}
    assert "oracle itself" not in poor_prior_message([problem], metrics, 64)


def test_the_page_shows_a_failed_check_and_nothing_for_a_passed_one(
    small_run, coarse_fashion, small_synthesis, small_run_network, test_split, trained,
    small_oracle, tmp_path: Path,
) -> None:  # fmt: skip
    poor = tmp_path / "results" / "run" / "train-seed-1" / "priors" / "generator.json"
    good = tmp_path / "results" / "run" / "priors" / "generator.json"
    for path in (poor, good):
        path.parent.mkdir(parents=True)
    failed = measure(small_run_network, test_split, trained, small_oracle, poor, 1)
    measure(small_run_network, test_split, trained, small_oracle, good, ENOUGH)
    dirs = [small_run / "synthesis" / "tops"]
    out = tmp_path / "index.html"

    def page(*generators: Path) -> str:
        facets = [small_run / "facets" / "tops.h5"]
        write_index("run", facets, {"mfv": dirs}, coarse_fashion, out, 1, None, generators)
        return out.read_text()

    shown = page(good, poor)
    assert shown.count("class='warning'") == 1
    box = shown.split("class='warning'")[1].split("</div>")[0]
    assert f"the learned prior of {poor.parent.parent} failed its check" in box
    assert failed["check"]["message"] in html.unescape(box)
    assert "class='warning'" not in page(good) and "class='warning'" not in page()
