"""check_run_config: the model-dependent checks of a run config, on the meta device."""

from __future__ import annotations

import copy

import pytest

from facetviz.checks import check_run_config
from facetviz.core.errors import ConfigError
from facetviz.core.settings import DatasetSettings
from facetviz.data.checks import input_spec
from facetviz.data.datasets import FASHION_MNIST_CLASSES

LABEL_MAP = {
    "footwear": ["Sandal", "Sneaker", "Ankle boot"],
    "tops": ["T-shirt/top", "Pullover", "Coat", "Shirt"],
    "trouser-dress": ["Trouser", "Dress"],
    "bag": ["Bag"],
}


def neuron(name, layer, unit, select="top", cls=None, spatial="center"):
    """A neuron as the schema leaves it, defaults filled in."""
    return {
        "name": name,
        "layer": layer,
        "unit": unit,
        "spatial": spatial,
        "select": select,
        "class": cls,
    }


def make_config(neurons=None, **sections):
    """A valid config for the embedded model on Fashion-MNIST, as the schema produces it."""
    config = {
        "run": "test",
        "seed": 0,
        "device": "cpu",
        "dataset": {
            "kind": "fashion_mnist",
            "root": None,
            "split": None,
            "image_size": None,
            "resize": None,
            "channels": None,
            "label_map": copy.deepcopy(LABEL_MAP),
            "max_images": None,
            "holdout": 0.1,
            "workers": 0,
        },
        "model": {
            "kind": "embedded",
            "arch": None,
            "factory": None,
            "kwargs": {},
            "weights": None,
            "num_classes": None,
            "mean": None,
            "std": None,
            "width": 16,
            "train": {"epochs": 3, "batch_size": 128, "lr": 0.002, "weight_decay": 0.0},
        },
        "activations": {"batch_size": 256},
        "facets": {
            "layer": "classifier.3",
            "k": 10,
            "m": 15,
            "pca_dims": 50,
            "perplexity": 30.0,
            "max_images": 2000,
            "top_n": 1000,
        },
        "neurons": neurons
        if neurons is not None
        else [
            neuron("footwear", "classifier.5", 0, select="label"),
            neuron("tops", "classifier.5", 1, select="label", cls="tops"),
            neuron("bag-by-index", "classifier.5", 3, select="label", cls=3),
            neuron("conv3-ch5", "features.6", 5, spatial="max"),
            neuron("fc-u7", "classifier.2", 7),
        ],
        "probes": {},
        "sae": {},
        "synthesis": {"steps": 200, "step_size": 0.01, "tv_weight": 0.5, "jitter": 1},
        "figures": {"examples": 4},
    }
    for section, changes in sections.items():
        config[section].update(changes)
    return config


def test_valid_config_resolves_neurons():
    config = make_config()
    original = copy.deepcopy(config)
    resolved = check_run_config(config)
    assert [n["name"] for n in resolved] == [
        "footwear",
        "tops",
        "bag-by-index",
        "conv3-ch5",
        "fc-u7",
    ]
    assert [n["class"] for n in resolved] == [0, 1, 3, None, None]
    assert [n["units"] for n in resolved] == [4, 4, 4, 64, 256]
    # everything else passes through unchanged
    assert resolved[3]["spatial"] == "max"
    assert resolved[3]["layer"] == "features.6" and resolved[3]["unit"] == 5
    assert config == original  # the config itself is not modified


def test_class_by_name_and_index_agree_with_label_map_order():
    config = make_config(
        [
            neuron("by-name", "classifier.5", 2, select="label", cls="trouser-dress"),
            neuron("by-index", "classifier.5", 0, select="label", cls=2),
            neuron("by-unit", "classifier.5", 2, select="label"),
            neuron("top-ignores-class", "classifier.5", 1, select="top", cls="bag"),
        ]
    )
    assert [n["class"] for n in check_run_config(config)] == [2, 2, 2, None]


def test_width_changes_unit_counts():
    config = make_config(model={"width": 4})
    resolved = check_run_config(config)
    assert resolved[3]["units"] == 16  # features.6 has 4 * width channels
    config["neurons"][3]["unit"] = 16
    with pytest.raises(ConfigError, match=r"neurons\[3\] \(conv3-ch5\)\.unit: 16"):
        check_run_config(config)


def test_without_label_map_the_classes_are_fashion_mnists():
    config = make_config(
        [neuron("sneaker", "classifier.5", 7, select="label", cls="Sneaker")],
        dataset={"label_map": None},
    )
    (resolved,) = check_run_config(config)
    assert resolved["class"] == FASHION_MNIST_CLASSES.index("Sneaker")
    assert resolved["units"] == 10


@pytest.mark.parametrize(
    ("index", "layer", "unit", "units"),
    [(0, "classifier.5", 4, 4), (3, "features.6", 64, 64), (4, "classifier.2", 999, 256)],
)
def test_unit_out_of_range(index, layer, unit, units):
    config = make_config()
    config["neurons"][index]["unit"] = unit
    with pytest.raises(ConfigError) as err:
        check_run_config(config)
    message = str(err.value)
    assert message.startswith(f"neurons[{index}] ({config['neurons'][index]['name']}).unit: {unit}")
    assert f"{layer!r}, which has {units} units (0..{units - 1})" in message


def test_last_valid_unit_is_accepted():
    config = make_config()
    config["neurons"][3]["unit"] = 63
    config["neurons"][4]["unit"] = 255
    assert [n["units"] for n in check_run_config(config)][3:] == [64, 256]


def test_unknown_neuron_layer():
    config = make_config()
    config["neurons"][4]["layer"] = "classifier.9"
    with pytest.raises(ConfigError) as err:
        check_run_config(config)
    message = str(err.value)
    assert message.startswith("neurons[4] (fc-u7).layer: 'classifier.9' is not a module")
    assert "classifier.5" in message  # a candidate


def test_unknown_facets_layer():
    config = make_config(facets={"layer": "fc7"})
    with pytest.raises(ConfigError) as err:
        check_run_config(config)
    assert str(err.value).startswith("facets.layer: 'fc7' is not a module")


@pytest.mark.parametrize(("key", "limit"), [("top_n", 5), ("max_images", 9)])
def test_image_caps_below_k(key: str, limit: int):
    config = make_config()
    config["facets"][key] = limit
    with pytest.raises(ConfigError, match=f"facets.{key}: {limit} images cannot make facets.k"):
        check_run_config(config)
    config["facets"][key] = 10
    check_run_config(config)


def test_unknown_class_name():
    config = make_config()
    config["neurons"][1]["class"] = "shoes"
    with pytest.raises(ConfigError) as err:
        check_run_config(config)
    message = str(err.value)
    assert message.startswith("neurons[1] (tops).class: 'shoes' is not a class of the dataset")
    assert "footwear, tops, trouser-dress, bag" in message


def test_fine_class_name_is_not_a_class_when_merged():
    config = make_config()
    config["neurons"][0]["class"] = "Sneaker"  # a fine class, merged into footwear
    with pytest.raises(ConfigError, match=r"neurons\[0\] \(footwear\)\.class: 'Sneaker'"):
        check_run_config(config)


@pytest.mark.parametrize("cls", [4, -1, 10])
def test_class_index_out_of_range(cls):
    config = make_config()
    config["neurons"][2]["class"] = cls
    with pytest.raises(ConfigError) as err:
        check_run_config(config)
    message = str(err.value)
    assert message.startswith(f"neurons[2] (bag-by-index).class: {cls} is out of range")
    assert "4 classes (0..3)" in message


def test_default_class_is_unit_and_must_be_a_class():
    # select label on a hidden unit: the unit index is taken as the class unless class is set
    config = make_config([neuron("hidden", "classifier.2", 9, select="label")])
    with pytest.raises(ConfigError, match=r"neurons\[0\] \(hidden\)\.class: 9 is out of range"):
        check_run_config(config)
    config["neurons"][0]["class"] = "bag"
    (resolved,) = check_run_config(config)
    assert resolved["class"] == 3 and resolved["units"] == 256


def test_duplicate_neuron_names():
    config = make_config()
    config["neurons"][4]["name"] = "tops"
    with pytest.raises(ConfigError) as err:
        check_run_config(config)
    assert str(err.value).startswith("neurons[4] (tops).name: 'tops' is used twice")


@pytest.mark.parametrize("name", [".", ".."])
def test_run_and_neuron_names_that_are_no_folder_of_their_own(name):
    """The schema's pattern lets `.` and `..` through; `run: ..` would write beside results/."""
    with pytest.raises(ConfigError) as err:
        check_run_config({**make_config(), "run": name})
    assert str(err.value).startswith(f"run: {name!r} names no folder or file of its own")
    config = make_config()
    config["neurons"][1]["name"] = name
    with pytest.raises(ConfigError) as err:
        check_run_config(config)
    assert str(err.value).startswith(f"neurons[1] ({name}).name: {name!r} names no folder")
    assert [n["name"] for n in check_run_config({**make_config(), "run": "..."})][0] == "footwear"


def test_bad_label_map_is_reported():
    config = make_config(dataset={"label_map": {"footwear": ["Sandal", "Boot"]}})
    with pytest.raises(ConfigError, match=r"dataset\.label_map\.footwear: 'Boot'"):
        check_run_config(config)


def test_dataset_files_are_not_needed(tmp_path):
    missing = tmp_path / "no-fashion-mnist-here"
    config = make_config(dataset={"root": str(missing)})
    assert input_spec(DatasetSettings.from_config(config["dataset"])) == (
        (1, 28, 28),
        ("footwear", "tops", "trouser-dress", "bag"),
    )
    assert [n["units"] for n in check_run_config(config)] == [4, 4, 4, 64, 256]
    assert not missing.exists()


def test_input_shape_follows_dataset_config():
    config = make_config(dataset={"channels": 3, "image_size": 40})
    assert input_spec(DatasetSettings.from_config(config["dataset"]))[0] == (3, 40, 40)
    resolved = check_run_config(config)
    assert resolved[3]["units"] == 64  # channels, whatever the input size


def test_torchvision_model_config():
    config = make_config(
        [
            neuron("fc-class", "fc", 999, select="label", cls=2),
            neuron("block", "layer4.1.conv2", 511),
        ],
        dataset={"channels": 3, "image_size": 64},
        model={"kind": "torchvision", "arch": "resnet18", "weights": "random"},
        facets={"layer": "avgpool"},
    )
    resolved = check_run_config(config)
    assert [n["units"] for n in resolved] == [1000, 512]  # the architecture's 1000 classes
    assert resolved[0]["class"] == 2
    config["neurons"][1]["unit"] = 512
    with pytest.raises(ConfigError, match=r"which has 512 units"):
        check_run_config(config)


def test_the_evaluation_and_comparison_configs_are_the_default_setting() -> None:
    """config/evaluation.yaml measures the default run: an overlay of it that changes only its
    name, the seeds and the neurons (its class units, what the oracle scores);
    config/comparison.yaml is the default run with every built-in method."""
    import yaml
    from conftest import REPO, validated

    from facetviz.core import overlay
    from facetviz.synthesis.methods import BUILT_IN

    def resolved(name: str) -> dict:
        raw = yaml.safe_load((REPO / "config" / name).read_text())
        return validated(overlay.resolve(raw, REPO))

    default, evaluation, comparison = map(
        resolved, ("config.yaml", "evaluation.yaml", "comparison.yaml")
    )
    assert len(evaluation["evaluation"]["seeds"]) >= 5
    assert len(evaluation["evaluation"]["train_seeds"]) >= 3
    assert evaluation["neurons"] == [n for n in default["neurons"] if n["select"] == "label"]
    assert comparison["synthesis"]["methods"] == list(BUILT_IN)
    assert comparison["run"] == "comparison" and evaluation["run"] == "evaluation"
    assert evaluation == {
        **default,
        "run": "evaluation",
        "evaluation": evaluation["evaluation"],
        "neurons": evaluation["neurons"],
    }
    assert comparison == {
        **default,
        "run": "comparison",
        "synthesis": {**default["synthesis"], "methods": list(BUILT_IN)},
    }
