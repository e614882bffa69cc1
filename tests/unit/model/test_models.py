"""Models: the embedded CNN, torchvision and custom architectures, weights, layers and units."""

from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass, replace

import pytest
import torch
import torchvision
from conftest import EMBEDDED, model_config, model_settings
from torch import nn

from facetviz.core.errors import ConfigError, FacetvizError
from facetviz.core.settings import IMAGENET_MEAN, IMAGENET_STD
from facetviz.model.embedded import EmbeddedCNN
from facetviz.model.networks import (
    Network,
    build_architecture,
    capture,
    layer_shapes,
    load_network,
    load_state_dict,
    missing_weights_message,
    resolve_device,
    resolve_factory,
    resolve_layer,
    save_checkpoint,
    torchvision_cache_path,
    unit_count,
    unit_values,
    weights_file,
)


@dataclass
class NotWeights:
    """Unpickling this needs the class: a file holding it is not plain weights."""

    value: int


def torchvision_cfg(arch, **changes):
    return model_settings(kind="torchvision", arch=arch, **changes)


def custom_cfg(factory, **changes):
    return model_settings(kind="custom", factory=factory, **changes)


def has_inplace(model):
    return any(getattr(module, "inplace", False) is True for module in model.modules())


# --- the embedded CNN ------------------------------------------------------------------------


def test_embedded_cnn_forward_shape():
    model = EmbeddedCNN().eval()
    with torch.no_grad():
        out = model(torch.rand(5, 1, 28, 28))
    assert out.shape == (5, 4)
    assert model.classifier[2].in_features == 64 * 49
    assert model.classifier[2].out_features == 256


@pytest.mark.parametrize("size", [20, 28, 32, 64])
def test_embedded_cnn_three_channels_other_sizes(size):
    model = EmbeddedCNN(in_channels=3, num_classes=7, width=8).eval()
    with torch.no_grad(), capture(model, ["features.6", "pool"]) as outputs:
        out = model(torch.rand(2, 3, size, size))
    assert out.shape == (2, 7)
    assert outputs["features.6"].shape == (2, 32, size // 4, size // 4)
    assert outputs["pool"].shape == (2, 32, 7, 7)  # the classifier sees 7x7 at any size


def test_embedded_cnn_rejects_wrong_channel_count():
    with pytest.raises(RuntimeError):
        EmbeddedCNN(in_channels=1)(torch.rand(1, 3, 28, 28))


def test_build_architecture_embedded_uses_config():
    model = build_architecture(model_settings(width=8), in_channels=3, num_classes=6)
    assert isinstance(model, EmbeddedCNN)
    assert model.features[0].in_channels == 3
    assert model.features[0].out_channels == 8
    assert model.classifier[5].out_features == 6
    default_width = build_architecture(EMBEDDED, 1, 4)  # the schema's width
    assert default_width.features[0].out_channels == 16


def test_build_architecture_unknown_kind():
    with pytest.raises(ConfigError, match="model.kind"):
        build_architecture(replace(EMBEDDED, kind="keras"), 3, 10)  # past the schema


# --- torchvision -----------------------------------------------------------------------------


def test_torchvision_resnet18_random_weights_no_inplace():
    assert has_inplace(torchvision.models.resnet18())  # torchvision's default, for contrast
    model = build_architecture(torchvision_cfg("resnet18", num_classes=10), 3, 4).eval()
    assert isinstance(model, torchvision.models.ResNet)
    assert model.fc.out_features == 10  # model.num_classes, not the dataset's class count
    assert not has_inplace(model)
    with torch.no_grad(), capture(model, ["bn1"]) as outputs:
        out = model(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 10)
    # with an in-place ReLU after it, bn1's captured output would have been clipped at 0
    assert float(outputs["bn1"].min()) < 0


def test_torchvision_alexnet_random_weights_no_inplace():
    assert has_inplace(torchvision.models.alexnet())
    model = build_architecture(torchvision_cfg("alexnet"), 3, 4).eval()
    assert isinstance(model, torchvision.models.AlexNet)
    assert model.classifier[6].out_features == 1000  # the architecture's default
    assert not has_inplace(model)
    with torch.no_grad(), capture(model, ["features.0", "classifier.5"]) as outputs:
        out = model(torch.rand(1, 3, 96, 96))
    assert out.shape == (1, 1000)
    assert float(outputs["features.0"].min()) < 0  # conv output before ReLU, not clipped
    assert outputs["classifier.5"].shape == (1, 4096)


def test_torchvision_two_builds_have_different_random_weights():
    first = build_architecture(torchvision_cfg("resnet18", num_classes=3), 3, 3)
    second = build_architecture(torchvision_cfg("resnet18", num_classes=3), 3, 3)
    assert not torch.equal(first.conv1.weight, second.conv1.weight)


def test_torchvision_unknown_arch():
    with pytest.raises(ConfigError, match="model.arch: 'resnet1000'"):
        build_architecture(torchvision_cfg("resnet1000"), 3, 10)


# --- layers and units ------------------------------------------------------------------------


def test_layer_shapes_embedded_on_meta_device():
    layers = ["features.2", "features.6", "pool", "classifier.3", "classifier.5"]
    shapes = layer_shapes(EMBEDDED, (1, 28, 28), 4, layers)
    assert shapes == {
        "features.2": (16, 14, 14),
        "features.6": (64, 7, 7),
        "pool": (64, 7, 7),
        "classifier.3": (256,),
        "classifier.5": (4,),
    }
    assert layer_shapes(model_settings(width=4), (3, 40, 40), 9, ["features.6"]) == {
        "features.6": (16, 10, 10)
    }


def test_layer_shapes_torchvision_on_meta_device():
    shapes = layer_shapes(
        torchvision_cfg("resnet18", num_classes=10), (3, 224, 224), 10, ["layer4", "avgpool", "fc"]
    )
    assert shapes == {"layer4": (512, 7, 7), "avgpool": (512, 1, 1), "fc": (10,)}


def test_layer_shapes_unknown_layer():
    with pytest.raises(ConfigError, match="'features.60'"):
        layer_shapes(EMBEDDED, (1, 28, 28), 4, ["features.60"])


def test_resolve_layer_finds_modules():
    model = EmbeddedCNN()
    assert resolve_layer(model, "classifier.3") is model.classifier[3]
    assert resolve_layer(model, "pool") is model.pool


def test_resolve_layer_unknown_lists_candidates():
    model = EmbeddedCNN()
    with pytest.raises(ConfigError) as err:
        resolve_layer(model, "features.9", key="facets.layer")
    message = str(err.value)
    assert message.startswith("facets.layer: 'features.9' is not a module")
    assert "features.0" in message and "features.6" in message  # the close candidates
    with pytest.raises(ConfigError) as err:
        resolve_layer(model, "fc7")
    assert str(err.value).startswith("layer: 'fc7'")
    assert "features" in str(err.value) and "..." in str(err.value)  # more than 12 modules


def test_resolve_layer_refuses_the_whole_model():
    with pytest.raises(ConfigError, match="layer: ''"):
        resolve_layer(EmbeddedCNN(), "")


def test_unit_values_fc_output_unchanged():
    output = torch.tensor([[1.0, -2.0, 3.0], [4.0, 5.0, -6.0]])
    for spatial in ("center", "max", "mean"):
        assert torch.equal(unit_values(output, spatial), output)


def test_unit_values_conv_output_by_spatial_rule():
    # value at [n, c, h, w] is n*60 + c*20 + h*4 + w: easy to compute by hand
    output = torch.arange(2 * 3 * 5 * 4, dtype=torch.float32).reshape(2, 3, 5, 4)
    center = unit_values(output, "center")  # h = 5 // 2 = 2, w = 4 // 2 = 2 -> offset 10
    assert center.tolist() == [[10.0, 30.0, 50.0], [70.0, 90.0, 110.0]]
    assert unit_values(output, "max").tolist() == [[19.0, 39.0, 59.0], [79.0, 99.0, 119.0]]
    assert unit_values(output, "mean").tolist() == [[9.5, 29.5, 49.5], [69.5, 89.5, 109.5]]


def test_unit_values_center_is_not_max():
    output = torch.zeros(1, 2, 3, 3)
    output[0, 0, 1, 1] = 5.0  # the centre of channel 0
    output[0, 1, 0, 0] = 7.0  # a corner of channel 1
    assert unit_values(output, "center").tolist() == [[5.0, 0.0]]
    assert unit_values(output, "max").tolist() == [[5.0, 7.0]]
    assert unit_values(output, "mean")[0].tolist() == pytest.approx([5 / 9, 7 / 9])


def test_unit_values_other_ranks_are_flattened_and_bad_rule():
    output = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    assert unit_values(output, "center").shape == (2, 12)
    # the unit count that config checks and HDF5 datasets use agrees with unit_values
    for shape in [(3, 4), (7,), (3, 5, 4)]:
        values = unit_values(torch.zeros(2, *shape), "center")
        assert unit_count(shape) == values.shape[1]
    with pytest.raises(ConfigError, match="spatial: unknown rule 'median'"):
        unit_values(torch.zeros(1, 2, 3, 3), "median")


def test_capture_returns_layer_outputs_and_removes_hooks():
    torch.manual_seed(0)
    model = EmbeddedCNN().eval()
    x = torch.rand(3, 1, 28, 28)
    layers = ["features.6", "classifier.3", "classifier.5", "classifier.3"]  # one twice
    with torch.no_grad(), capture(model, layers) as outputs:
        logits = model(x)
    assert set(outputs) == {"features.6", "classifier.3", "classifier.5"}
    with torch.no_grad():
        conv = model.features[:7](x)  # up to and including features.6
        hidden = torch.relu(model.classifier[2](model.pool(model.features(x)).flatten(1)))
    assert torch.allclose(outputs["features.6"], conv)
    assert float(outputs["features.6"].min()) < 0  # the conv itself, before features.7's ReLU
    assert torch.allclose(outputs["classifier.3"], hidden)
    assert torch.equal(outputs["classifier.5"], logits)
    for module in model.modules():
        assert not module._forward_hooks
    with torch.no_grad():
        model(torch.rand(1, 1, 28, 28))
    assert outputs["classifier.5"].shape == (3, 4)  # later passes store nothing


def test_capture_removes_hooks_after_an_error():
    model = EmbeddedCNN()
    with pytest.raises(ValueError), capture(model, ["features.0", "classifier.2"]):
        assert len(model.features[0]._forward_hooks) == 1
        raise ValueError("stop")
    assert all(not module._forward_hooks for module in model.modules())


def test_capture_unknown_layer_registers_nothing():
    # a typo in the second layer must not leave the first layer's hook on the model
    model = EmbeddedCNN()
    with pytest.raises(ConfigError), capture(model, ["features.0", "nope"]):
        pass
    assert all(not module._forward_hooks for module in model.modules())


# --- weights ---------------------------------------------------------------------------------


def test_save_checkpoint_load_network_round_trip(tmp_path):
    torch.manual_seed(1)
    model = build_architecture(EMBEDDED, 1, 4).eval()
    path = tmp_path / "run" / "model.pt"
    save_checkpoint(path, model, {"epochs": 2, "accuracy": 0.5})
    assert path.is_file()
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]  # no partial file left
    assert torch.load(path, weights_only=True)["meta"] == {"epochs": 2, "accuracy": 0.5}

    network = load_network(EMBEDDED, (1, 28, 28), 4, path)
    assert not network.module.training
    assert all(not p.requires_grad for p in network.module.parameters())
    assert network.mean == (0.5,) and network.std == (0.5,)
    assert network.description == {"kind": "embedded", "weights": str(path)}
    pixels = torch.rand(6, 1, 28, 28)
    with torch.no_grad():
        expected = model((pixels - 0.5) / 0.5)
        assert torch.equal(network(pixels), expected)
        fresh = load_network(EMBEDDED, (1, 28, 28), 4, None)
        assert not torch.allclose(fresh(pixels), expected)
    assert fresh.description["weights"] == "random"


def test_load_state_dict_plain_and_wrapped(tmp_path):
    model = EmbeddedCNN(width=4)
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    torch.save({"state_dict": model.state_dict(), "meta": {}}, tmp_path / "wrapped.pt")
    for name in ("plain.pt", "wrapped.pt"):
        state = load_state_dict(tmp_path / name)
        assert set(state) == set(model.state_dict())
        assert torch.equal(state["features.0.weight"], model.features[0].weight)


def test_load_state_dict_refuses_pickled_code(tmp_path):
    path = tmp_path / "object.pt"
    torch.save({"state_dict": NotWeights(3)}, path)
    with pytest.raises(FacetvizError, match="weights_only") as err:
        load_state_dict(path)
    assert str(path) in str(err.value)
    torch.save(NotWeights(4), tmp_path / "bare.pt")
    with pytest.raises(FacetvizError, match="weights_only"):
        load_network(EMBEDDED, (1, 28, 28), 4, tmp_path / "bare.pt")


def test_load_state_dict_refuses_other_files(tmp_path):
    (tmp_path / "text.pt").write_text("not a torch file")
    with pytest.raises(FacetvizError, match="not a plain weights file"):
        load_state_dict(tmp_path / "text.pt")
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(FacetvizError, match="holds a list, not a state dict"):
        load_state_dict(tmp_path / "list.pt")


def test_load_network_weights_of_another_model(tmp_path):
    save_checkpoint(tmp_path / "small.pt", EmbeddedCNN(width=4), {})
    with pytest.raises(FacetvizError, match="does not fit the configured model"):
        load_network(EMBEDDED, (1, 28, 28), 4, tmp_path / "small.pt")


def test_missing_weights_file(tmp_path):
    path = tmp_path / "nowhere" / "model.pt"
    with pytest.raises(FacetvizError) as err:
        load_network(EMBEDDED, (1, 28, 28), 4, path)
    message = str(err.value)
    assert message == missing_weights_message(EMBEDDED, path)
    assert f"model.weights: {path} does not exist" in message
    assert "never downloaded" in message
    assert "`weights: random`" in message
    assert "torch cache" not in message


def test_missing_torchvision_weights_names_torch_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    cache = tmp_path / "torch-home" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cfg = torchvision_cfg("resnet18")
    assert torchvision_cache_path("resnet18") == cache
    assert weights_file(cfg) == cache
    assert weights_file(replace(cfg, weights="cache")) == cache
    # the workflow passes the validated config's section
    assert weights_file(model_config(kind="torchvision", arch="resnet18")) == cache
    with pytest.raises(FacetvizError) as err:
        load_network(cfg, (3, 224, 224), 1000, weights_file(cfg))
    message = str(err.value)
    assert f"in the torch cache at {cache}" in message
    assert "never downloaded" in message and "`weights: random`" in message
    assert not cache.exists()  # nothing was downloaded


def test_weights_file_choices(tmp_path):
    assert weights_file(EMBEDDED) is None
    assert weights_file(torchvision_cfg("alexnet", weights="random")) is None
    assert weights_file(torchvision_cfg("alexnet", weights=str(tmp_path / "a.pt"))) == (
        tmp_path / "a.pt"
    )
    custom = custom_cfg("m:f")
    with pytest.raises(ConfigError, match="model.weights"):
        weights_file(custom)
    assert weights_file(replace(custom, weights="w.pt")).name == "w.pt"


# --- custom factories ------------------------------------------------------------------------

FACTORY_MODULE = "facetviz_test_tinynet"


@pytest.fixture
def factory_module(tmp_path, monkeypatch):
    (tmp_path / f"{FACTORY_MODULE}.py").write_text(
        textwrap.dedent(
            """
            from torch import nn


            def build(hidden=4, classes=3):
                return nn.Sequential(
                    nn.Flatten(),
                    nn.Linear(16, hidden),
                    nn.ReLU(inplace=True),
                    nn.Linear(hidden, classes),
                )


            def not_a_module():
                return "a string"
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, FACTORY_MODULE, raising=False)
    yield FACTORY_MODULE
    sys.modules.pop(FACTORY_MODULE, None)


def test_custom_factory_builds_module(factory_module):
    cfg = custom_cfg(f"{factory_module}:build", kwargs={"hidden": 5})
    model = build_architecture(cfg, in_channels=1, num_classes=99)
    assert isinstance(model, nn.Sequential)
    assert model[1].out_features == 5  # kwargs reach the factory
    assert model[3].out_features == 3  # the factory decides, not num_classes
    assert model[2].inplace is False
    assert model(torch.rand(2, 1, 4, 4)).shape == (2, 3)
    assert layer_shapes(cfg, (1, 4, 4), 3, ["1", "3"]) == {"1": (5,), "3": (3,)}


def test_custom_factory_load_network(factory_module, tmp_path):
    cfg = custom_cfg(f"{factory_module}:build")
    model = build_architecture(cfg, 1, 3)
    torch.save(model.state_dict(), tmp_path / "custom.pt")
    network = load_network(cfg, (1, 4, 4), 3, tmp_path / "custom.pt")
    assert network.description["factory"] == f"{factory_module}:build"
    pixels = torch.rand(2, 1, 4, 4)
    with torch.no_grad():
        assert torch.allclose(network(pixels), model((pixels - 0.5) / 0.5))


@pytest.mark.parametrize(
    "factory",
    [
        None,
        "",
        "no_colon_here",
        ":build",
        f"{FACTORY_MODULE}:",
        "facetviz_no_such_module_xyz:build",
        f"{FACTORY_MODULE}:missing",
        f"{FACTORY_MODULE}:not_a_module",
    ],
)
def test_custom_factory_bad_strings(factory_module, factory):
    with pytest.raises(ConfigError, match=r"^model\.factory: "):
        build_architecture(custom_cfg(factory), 1, 3)


@pytest.mark.parametrize(
    ("factory", "kind"),
    [
        ("os:system", "a built-in function"),
        ("os:path", "a module"),
        ("subprocess:Popen", "a class that is not an nn.Module"),
        ("math:pi", "a float"),
    ],
)
def test_custom_factory_that_is_not_a_factory_is_not_called(factory, kind, tmp_path):
    """A config is code: what is plainly not a model's factory is refused before it is called
    (os.system would run the command, Popen start it)."""
    marker = tmp_path / "called"
    kwargs = {
        "os:system": {"command": f"touch {marker}"},
        "subprocess:Popen": {"args": ["touch", str(marker)]},
    }
    cfg = custom_cfg(factory, kwargs=kwargs.get(factory, {}))
    with pytest.raises(ConfigError, match=rf"^model\.factory: '{factory}' is {kind}; .*not called"):
        build_architecture(cfg, 1, 3)
    assert not marker.exists()


def test_custom_factory_may_be_a_module_class():
    assert resolve_factory("torch.nn:Identity") is nn.Identity


# --- normalization ---------------------------------------------------------------------------


def test_network_normalize_one_channel():
    network = Network(nn.Identity(), (0.5,), (0.25,))
    pixels = torch.tensor([0.0, 0.5, 0.75, 1.0]).reshape(1, 1, 2, 2)
    assert network.normalize(pixels).flatten().tolist() == [-2.0, 0.0, 1.0, 2.0]


def test_network_normalize_per_channel_and_call():
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 0.125)
    network = Network(nn.Flatten(), mean, std)
    pixels = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    normalized = network.normalize(pixels)
    assert normalized.dtype == torch.float64
    for c in range(3):
        expected = (pixels[:, c] - mean[c]) / std[c]
        assert torch.allclose(normalized[:, c], expected)
    # the module gets the normalized input
    assert torch.allclose(network(pixels), normalized.flatten(1))
    assert network.to("cpu") is network


def test_normalization_defaults():
    assert EMBEDDED.normalization(1) == ((0.5,), (0.5,))
    assert EMBEDDED.normalization(3) == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert custom_cfg("m:f").normalization(3) == ((0.5,) * 3, (0.5,) * 3)
    assert torchvision_cfg("alexnet").normalization(3) == (
        (0.485, 0.456, 0.406),
        (0.229, 0.224, 0.225),
    )
    assert (IMAGENET_MEAN, IMAGENET_STD) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def test_normalization_from_config():
    assert custom_cfg("m:f", mean=[0.2], std=[0.3]).normalization(3) == (
        (0.2, 0.2, 0.2),
        (0.3, 0.3, 0.3),
    )
    cfg = torchvision_cfg("alexnet", mean=[0.1, 0.2, 0.3], std=[0.4, 0.5, 0.6])
    assert cfg.normalization(3) == ((0.1, 0.2, 0.3), (0.4, 0.5, 0.6))


def test_normalization_one_value_for_one_of_mean_and_std():
    # "need 1 or 3 values" holds for each of mean and std on its own
    cfg = custom_cfg("m:f", mean=[0.1, 0.2, 0.3], std=[0.5])
    assert cfg.normalization(3) == ((0.1, 0.2, 0.3), (0.5, 0.5, 0.5))
    cfg = torchvision_cfg("alexnet", mean=[0.5], std=None)  # std stays ImageNet's
    assert cfg.normalization(3) == ((0.5, 0.5, 0.5), IMAGENET_STD)


@pytest.mark.parametrize(
    ("cfg", "channels"),
    [
        (custom_cfg("m:f", mean=[0.1, 0.2], std=[0.5, 0.5]), 3),
        (custom_cfg("m:f", mean=[0.1, 0.2, 0.3], std=[0.5, 0.5, 0.5]), 1),
        (torchvision_cfg("alexnet"), 1),  # ImageNet's three values for a gray input
    ],
)
def test_normalization_wrong_number_of_values(cfg, channels):
    with pytest.raises(ConfigError, match=rf"model\.mean/model\.std: need 1 or {channels} values"):
        cfg.normalization(channels)


def test_resolve_device(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="device: cuda"):
        resolve_device("cuda")
