"""Configs as overlays: a config with `base:` is merged onto its base; one without is as it is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import REPO, validated

from facetviz.core import overlay
from facetviz.core.errors import ConfigError

BASE = {
    "run": "default",
    "dataset": {"kind": "fashion_mnist", "label_map": {"a": ["x", "y"], "b": ["z"]}},
    "model": {"kind": "custom", "kwargs": {"depth": 3, "width": 8}},
    "neurons": [{"name": "a"}, {"name": "b"}],
    "synthesis": {"methods": ["mfv", "fourier"], "mfv": {"steps_scale": 0.25, "facet_weight": 3}},
}


def test_an_overlay_replaces_values_and_merges_sections_key_by_key() -> None:
    merged = overlay.merge(
        BASE,
        {
            "run": "other",
            "dataset": {"max_images": 10},
            "synthesis": {"mfv": {"steps_scale": 0.5}, "neurons_per_job": 4},
            "evaluation": {"seeds": [0, 1]},
        },
    )
    assert merged["run"] == "other"
    assert merged["dataset"] == {**BASE["dataset"], "max_images": 10}
    assert merged["synthesis"] == {
        "methods": ["mfv", "fourier"],
        "mfv": {"steps_scale": 0.5, "facet_weight": 3},
        "neurons_per_job": 4,
    }
    assert merged["evaluation"] == {"seeds": [0, 1]}
    assert list(merged) == [*BASE, "evaluation"]  # the base's order, then the new keys
    assert BASE["synthesis"]["mfv"]["steps_scale"] == 0.25  # the base is left as it was


def test_lists_and_the_whole_mappings_are_replaced_whole() -> None:
    merged = overlay.merge(
        BASE,
        {
            "dataset": {"label_map": {"b": ["z"], "a": ["x"]}},
            "model": {"kwargs": {"depth": 5}},
            "neurons": [{"name": "b"}],
            "synthesis": {"methods": ["dgn"]},
        },
    )
    # label_map's key order is the class order: the overlay's map, not a mix of both
    assert list(merged["dataset"]["label_map"].items()) == [("b", ["z"]), ("a", ["x"])]
    assert merged["model"]["kwargs"] == {"depth": 5}
    assert merged["neurons"] == [{"name": "b"}]
    assert merged["synthesis"]["methods"] == ["dgn"]
    # null puts a key back to its default (the schema fills it in)
    assert overlay.merge(BASE, {"dataset": {"label_map": None}})["dataset"]["label_map"] is None


def test_a_config_without_base_is_complete_as_it_is(tmp_path: Path) -> None:
    assert overlay.resolve(BASE, tmp_path) == BASE
    assert overlay.resolve({**BASE, "base": None}, tmp_path) == BASE


def test_bases_chain_relative_to_the_root_or_absolute(tmp_path: Path) -> None:
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "first.yaml").write_text(yaml.safe_dump(BASE))
    second = {"base": "configs/first.yaml", "run": "second", "dataset": {"workers": 2}}
    (tmp_path / "second.yaml").write_text(yaml.safe_dump(second))
    resolved = overlay.resolve({"base": str(tmp_path / "second.yaml"), "seed": 3}, tmp_path)
    assert "base" not in resolved
    assert resolved["run"] == "second" and resolved["seed"] == 3
    assert resolved["dataset"] == {**BASE["dataset"], "workers": 2}


def test_a_bad_base_is_a_config_error_that_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"base: cannot read .*missing\.yaml"):
        overlay.resolve({"base": "missing.yaml"}, tmp_path)
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match=r"list\.yaml holds no config"):
        overlay.resolve({"base": "list.yaml"}, tmp_path)
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="each other's base"):
        overlay.resolve({"base": "a.yaml"}, tmp_path)
    with pytest.raises(ConfigError, match="a path to a config file"):
        overlay.resolve({"base": 3}, tmp_path)


def test_the_schema_accepts_base() -> None:
    neuron = {"name": "n", "layer": "l", "unit": 0}
    minimal = {"facets": {"layer": "classifier.3"}, "neurons": [neuron]}
    assert validated({**minimal, "base": "config/config.yaml"})["base"] == "config/config.yaml"
    assert validated(minimal)["base"] is None


@pytest.mark.parametrize("name", ["evaluation.yaml", "comparison.yaml"])
def test_the_repositorys_overlays_name_the_default_run_and_keep_its_key_order(name: str) -> None:
    """Each section's keys in the default run's order, as in the full configs these overlays
    replaced: the rules' params are JSON of the sections, so another order would rerun them."""
    raw = yaml.safe_load((REPO / "config" / name).read_text())
    assert raw["base"] == "config/config.yaml"
    resolved = validated(overlay.resolve(raw, REPO))
    default = validated(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
    for section in ("dataset", "model", "facets", "priors", "oracle", "activations", "figures"):
        assert json.dumps(resolved[section]) == json.dumps(default[section]), section
    assert list(resolved["synthesis"]) == list(default["synthesis"])
