"""Typed settings: built once from the validated config; the schema holds their defaults."""

from __future__ import annotations

import pytest
from conftest import NEURON, facet_settings, validated

from facetviz.errors import FacetvizError
from facetviz.settings import (
    FacetSettings,
    FigureSettings,
    Neuron,
    SynthesisSettings,
    TrainSettings,
)


def test_settings_come_from_the_schemas_defaults() -> None:
    config = validated({"facets": {"layer": "classifier.3"}, "neurons": [NEURON]})
    facets = FacetSettings.from_config(config["facets"])
    assert facets.min_size == 10 and facets.k == 10 and facets.space == "tsne"
    assert facet_settings(k=3).k == 3
    assert SynthesisSettings.from_config(config["synthesis"]).batch_size == 256
    assert FigureSettings.from_config(config["figures"]).examples == 4
    assert TrainSettings.from_config(config["model"]["train"]).epochs == 3


def test_a_section_that_skipped_the_schema_is_an_error() -> None:
    with pytest.raises(FacetvizError, match="settings of facets lack m, pca_dims.*schema"):
        FacetSettings.from_config({"layer": "x", "k": 3})


def test_a_neuron_round_trips_through_its_config_dict() -> None:
    config = validated({"facets": {"layer": "classifier.3"}, "neurons": [NEURON]})
    resolved = {**config["neurons"][0], "class": 0, "units": 4}
    unit = Neuron.from_dict(resolved)
    assert unit.is_class_unit and unit.class_index == 0 and unit.spatial == "center"
    assert Neuron.from_dict(unit.to_dict()) == unit
    assert unit.to_dict() == resolved
