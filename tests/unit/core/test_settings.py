"""Typed settings: built once from the validated config; the schema holds their defaults."""

from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import NEURON, dataset_settings, facet_settings, model_config, validated

from facetviz.checks import check_run_config
from facetviz.core.errors import ConfigError, FacetvizError
from facetviz.core.settings import (
    IMAGENET_MEAN,
    DatasetSettings,
    FacetSettings,
    FigureSettings,
    ModelSettings,
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
    with pytest.raises(FacetvizError, match="settings of dataset lack root, split, .*schema"):
        DatasetSettings.from_config({"kind": "fashion_mnist"})
    model = model_config()
    with pytest.raises(FacetvizError, match="settings of model lack train:"):
        ModelSettings.from_config({key: value for key, value in model.items() if key != "train"})
    with pytest.raises(FacetvizError, match="settings of model.train lack lr, weight_decay:"):
        ModelSettings.from_config({**model, "train": {"epochs": 1, "batch_size": 8}})


def test_dataset_defaults_are_the_schemas_and_its_kinds() -> None:
    """An empty dataset section: the schema's values, and what null means for its kind."""
    config = validated({"facets": {"layer": "classifier.3"}, "neurons": [NEURON]})
    dataset = DatasetSettings.from_config(config["dataset"])
    assert (dataset.kind, dataset.holdout, dataset.workers) == ("fashion_mnist", 0.1, 0)
    assert dataset.image_size is None and dataset.channels is None and dataset.split is None
    assert dataset.input_shape == (1, 28, 28)
    assert (dataset.input_size, dataset.input_channels) == (28, 1)
    assert dataset.visualized_split == "train" and dataset.training_splits == ("train", "test")
    # the schema leaves on_unreadable out (so that older runs' params stay the same): error
    assert "on_unreadable" not in config["dataset"] and dataset.unreadable_policy == "error"
    folder = dataset_settings(kind="image_folder", root="/images")
    assert folder.input_shape == (3, 224, 224) and folder.resize_side == 256
    assert folder.visualized_split == "all" and folder.training_splits == ("fit", "holdout")
    assert folder.kind_defaults.splits == ("all", "fit", "holdout")
    sized = dataset_settings(kind="image_folder", image_size=64, channels=1, on_unreadable="skip")
    assert sized.input_shape == (1, 64, 64) and sized.resize_side == 73  # 64 * 256/224
    assert sized.unreadable_policy == "skip"
    assert dataset_settings(kind="image_folder", image_size=64, resize=80).resize_side == 80
    assert dataset_settings(split="test").visualized_split == "test"
    with pytest.raises(ConfigError, match="dataset.kind: unknown kind 'cifar'"):
        replace(dataset, kind="cifar")  # past the schema, which refuses it


def test_model_defaults_are_the_schemas_and_its_kinds() -> None:
    config = validated({"facets": {"layer": "classifier.3"}, "neurons": [NEURON]})
    model = ModelSettings.from_config(config["model"])
    assert (model.kind, model.width, model.weights, model.kwargs) == ("embedded", 16, None, {})
    assert model.train == TrainSettings(epochs=3, batch_size=128, lr=0.002, weight_decay=0.0)
    assert model.normalization(1) == ((0.5,), (0.5,))
    torchvision = ModelSettings.from_config(model_config(kind="torchvision", arch="alexnet"))
    assert torchvision.normalization(3)[0] == IMAGENET_MEAN
    # `of`: typed settings pass through; the workflow's dicts are built
    assert ModelSettings.of(model) is model and ModelSettings.of(config["model"]) == model


def test_a_neuron_round_trips_through_its_config_dict() -> None:
    config = validated({"facets": {"layer": "classifier.3"}, "neurons": [NEURON]})
    resolved = check_run_config(config)[0]
    unit = Neuron.from_dict(resolved)
    assert unit.is_class_unit and unit.class_index == 0 and unit.spatial == "center"
    assert Neuron.from_dict(unit.to_dict()) == unit
    # a unit's dict has no readout keys: it is the one it was before readouts existed
    assert unit.to_dict() == resolved
    assert set(resolved) == {"name", "layer", "unit", "spatial", "select", "class", "units"}


def test_readout_neurons_round_trip_through_their_config_dicts() -> None:
    group = {
        "name": "pair",
        "layer": "classifier.2",
        "units": [{"unit": 3, "weight": 1.0}, {"unit": 7, "weight": -0.5}],
    }
    sae = {"name": "lat", "sae": "fc", "latents": "top 2"}
    config = validated({
        "facets": {"layer": "classifier.3"},
        "neurons": [group, sae],
        "sae": {"fc": {"layer": "classifier.2", "width": 8}},
    })  # fmt: skip
    resolved = check_run_config(config)
    assert [n["name"] for n in resolved] == ["pair", "lat-0", "lat-1"]
    neurons = [Neuron.from_dict(n) for n in resolved]
    assert neurons[0].group == ((3, 1.0), (7, -0.5)) and neurons[0].kind == "group"
    assert neurons[0].label == "classifier.2[1×3 - 0.5×7]"
    assert neurons[2].sae == "fc" and neurons[2].latent_rank == 1 and neurons[2].unit is None
    for neuron in neurons:
        assert Neuron.from_dict(neuron.to_dict()) == neuron
