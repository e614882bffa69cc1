"""Parse-time checks of readout neurons: each bad value is a ConfigError naming its key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import COARSE_LABEL_MAP, NEURON, validated

from facetviz.checks import check_run_config
from facetviz.core.errors import ConfigError

FC = 256  # the embedded CNN's fc layer (classifier.2), the default width
CONV = 64  # features.7's channels, as a spatial rule reads them


def config_with(neuron: dict, **sections) -> dict:
    neurons = [NEURON, {"name": "x", **neuron}]
    return validated({"facets": {"layer": "features.7"}, "neurons": neurons, **sections})


def resolved(neuron: dict, **sections) -> dict:
    return check_run_config(config_with(neuron, **sections))[-1]


def refused(neuron: dict, *fragments: str, **sections) -> str:
    with pytest.raises(ConfigError) as err:
        check_run_config(config_with(neuron, **sections))
    for fragment in fragments:
        assert fragment in str(err.value), str(err.value)
    return str(err.value)


def saved(tmp_path: Path, vector, name: str = "v.npy") -> str:
    path = tmp_path / name
    with open(path, "wb") as handle:
        np.save(handle, np.asarray(vector))
    return str(path)


def test_a_direction_of_the_layers_length_resolves(tmp_path: Path) -> None:
    path = saved(tmp_path, np.ones(CONV))
    neuron = resolved({"layer": "features.7", "spatial": "mean", "direction": path})
    assert neuron["direction"] == path and neuron["units"] == CONV and "unit" not in neuron
    assert "direction_cosine_power" not in neuron  # 0 is left out


@pytest.mark.parametrize(
    ("vector", "name", "fragment"),
    [
        (np.ones(CONV + 1), "v.npy", "65 numbers but the layer has 64 units"),
        (np.r_[np.ones(CONV - 1), np.nan], "v.npy", "NaN or infinite"),
        (np.zeros(CONV), "v.npy", "all zeros"),
        (np.ones(CONV), "v.txt", "is not a .npy file"),
        (np.ones((8, 8)), "v.npy", "not a vector"),
    ],
)
def test_a_bad_direction_file_is_refused(tmp_path: Path, vector, name, fragment) -> None:
    path = saved(tmp_path, vector, name)
    message = refused({"layer": "features.7", "direction": path}, "neurons[1] (x).direction",
                      fragment)  # fmt: skip
    assert ".npy file of 64 finite numbers" in message  # the fix


def test_a_missing_or_corrupt_direction_file_is_refused(tmp_path: Path) -> None:
    refused({"layer": "features.7", "direction": str(tmp_path / "no.npy")}, "does not exist")
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    refused({"layer": "features.7", "direction": str(tmp_path / "bad.npy")}, "cannot be read")


def test_a_group_resolves_and_its_units_are_checked() -> None:
    group = [{"unit": 3, "weight": 1.0}, {"unit": 7, "weight": -0.5}]
    neuron = resolved({"layer": "classifier.2", "units": group})
    assert neuron["group"] == [[3, 1.0], [7, -0.5]] and neuron["units"] == FC
    refused({"layer": "classifier.2", "units": [{"unit": FC, "weight": 1.0}]},
            "neurons[1] (x).units[0].unit: 256 is out of range", "256 units")  # fmt: skip
    refused({"layer": "classifier.2", "units": group + [{"unit": 3, "weight": 2.0}]},
            "units[2].unit: unit 3 is listed twice")  # fmt: skip
    refused({"layer": "classifier.2", "units": [{"unit": 1, "weight": 0}]}, "every weight is 0")


def test_sae_latents_are_checked_and_expanded() -> None:
    sae = {"fc": {"layer": "classifier.2", "width": 32}}
    neuron = resolved({"sae": "fc", "latent": 31}, sae=sae)
    assert (neuron["layer"], neuron["spatial"], neuron["latent"]) == ("classifier.2", "mean", 31)
    refused({"sae": "fc", "latent": 32}, "neurons[1] (x).latent: 32 is out of range",
            "32 latents", sae=sae)  # fmt: skip
    refused({"sae": "fc", "latents": "top 33"}, "latents: top 33 is out of range", sae=sae)
    refused({"sae": "fc"}, "`latent: <index>` or `latents: top <N>`", sae=sae)
    refused({"sae": "gc", "latent": 0}, "no sae entry 'gc'", "known: fc", sae=sae)
    refused({"layer": "features.7", "sae": "fc", "latent": 0},
            "'features.7' is not the layer of sae 'fc'", sae=sae)  # fmt: skip
    refused({"layer": "classifier.2", "unit": 0, "latent": 3}, "add `sae: <name>`")


def test_a_probe_for_a_class_the_dataset_has_not_is_refused() -> None:
    probes = {"sneaker": {"layer": "features.7", "class": "Sneaker"}}
    assert resolved({"probe": "sneaker"}, probes=probes)["layer"] == "features.7"
    boot = {"layer": "features.7", "class": "Boot"}
    refused({"probe": "sneaker"}, "probes.boot.class: 'Boot' is not a class", "Sneaker",
            probes={**probes, "boot": boot})  # fmt: skip
    coarse = {"s": {"layer": "features.7", "class": "Sneaker", "labels": "coarse"}}
    refused({"probe": "s"}, "'Sneaker' is not a coarse class", "footwear", probes=coarse,
            dataset={"label_map": COARSE_LABEL_MAP})  # fmt: skip


def test_one_readout_per_neuron() -> None:
    refused({"layer": "classifier.2", "unit": 1, "units": [{"unit": 2, "weight": 1}]},
            "exactly one of unit, units, direction, probe or sae (it has unit, units)")  # fmt: skip
    refused({"layer": "classifier.2"}, "(it has none)")
    refused({"unit": 1}, "neurons[1] (x).layer: missing")
    refused({"layer": "classifier.2", "units": [{"unit": 2, "weight": 1}], "select": "label"},
            "select: top")  # fmt: skip
    refused({"layer": "classifier.2", "units": [{"unit": 2, "weight": 1}],
             "direction_cosine_power": 2}, "only a direction or a probe has a cosine")  # fmt: skip
