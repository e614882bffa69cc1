"""Models: the embedded CNN, torchvision architectures, users' own modules; layers and units.

Layers are addressed by dotted module path (`classifier.5`), units by index in that layer's
output; a conv unit is one channel read at the centre (as in the paper), its max, or its mean.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facetviz.core.errors import ConfigError, FacetvizError
from facetviz.core.io import atomic_path
from facetviz.core.settings import ModelSettings
from facetviz.model.embedded import embedded_architecture
from facetviz.model.views import apply_view, split_view

SPATIAL_RULES = ("center", "max", "mean")


@dataclass
class Network:
    """A model with the preprocessing its weights expect; it takes pixels in [0, 1]."""

    module: nn.Module
    mean: tuple[float, ...]
    std: tuple[float, ...]
    description: dict[str, Any] = field(default_factory=dict)

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, device=pixels.device, dtype=pixels.dtype)[:, None, None]
        std = torch.tensor(self.std, device=pixels.device, dtype=pixels.dtype)[:, None, None]
        return (pixels - mean) / std

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.module(self.normalize(pixels))

    def to(self, device: torch.device | str) -> Network:
        self.module.to(device)
        return self


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda was asked for but no CUDA GPU is visible; use auto or cpu")
    return torch.device(name)


# --- building ------------------------------------------------------------------------------


def build_architecture(settings: ModelSettings, in_channels: int, num_classes: int) -> nn.Module:
    """The configured architecture with freshly initialized weights."""
    kind = settings.kind
    if kind == "embedded":
        model: nn.Module = embedded_architecture(settings, in_channels, num_classes)
    elif kind == "torchvision":
        model = _torchvision_architecture(settings)
    elif kind == "custom":
        model = _custom_architecture(settings)
    else:
        raise ConfigError(f"model.kind: unknown kind {kind!r}; use embedded, torchvision or custom")
    # In-place activations would overwrite the outputs our hooks capture.
    for module in model.modules():
        if isinstance(getattr(module, "inplace", None), bool):
            module.inplace = False
    return model


def _torchvision_architecture(settings: ModelSettings) -> nn.Module:
    import torchvision

    arch = settings.arch
    if arch not in torchvision.models.list_models(module=torchvision.models):
        raise ConfigError(
            f"model.arch: {arch!r} is not a torchvision classification model; e.g. alexnet, vgg16, "
            "resnet50 (see torchvision.models.list_models())"
        )
    kwargs = {"num_classes": settings.num_classes} if settings.num_classes else {}
    if arch == "inception_v3" or arch.startswith("googlenet"):
        kwargs["aux_logits"] = False
        kwargs["init_weights"] = False
    return torchvision.models.get_model(arch, weights=None, **kwargs)


def resolve_factory(spec: str) -> Callable[..., Any]:
    """The callable `model.factory` names ('package.module:function'), imported but not called.

    Only a Python function or an `nn.Module` class passes: a config is code (the factory runs
    while Snakemake loads the workflow), and this refuses what is plainly not a model's factory
    (a builtin such as `os:system`, a module, a class of something else) before anything is
    called. A guard against mistakes, not a sandbox: a function may still do anything.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"model.factory: {spec!r} must be 'package.module:function'")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ConfigError(
            f"model.factory: cannot import {spec!r} ({err}); make the module importable "
            "(installed, or on PYTHONPATH)"
        ) from err
    module_class = inspect.isclass(factory) and issubclass(factory, nn.Module)
    if not (inspect.isfunction(factory) or module_class):
        raise ConfigError(
            f"model.factory: {spec!r} is {_kind(factory)}; a factory is a Python function that "
            "returns an nn.Module, or an nn.Module class. It was not called"
        )
    return factory


def _kind(value: object) -> str:
    if inspect.isbuiltin(value):
        return "a built-in function"
    if inspect.ismodule(value):
        return "a module"
    if inspect.isclass(value):
        return "a class that is not an nn.Module"
    return f"a {type(value).__name__}"


def _custom_architecture(settings: ModelSettings) -> nn.Module:
    spec = settings.factory or ""
    factory = resolve_factory(spec)
    try:
        model = factory(**settings.kwargs)
    except Exception as err:  # wrong model.kwargs, or a bug in the factory
        raise ConfigError(
            f"model.factory: {spec}(**model.kwargs) failed with {type(err).__name__}: {err}. "
            "Check model.kwargs (call the factory in Python to see the traceback)"
        ) from err
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model.factory: {spec!r} returned {type(model).__name__}, not nn.Module")
    return model


def torchvision_cache_path(arch: str) -> Path:
    """Where torch keeps the default ImageNet weights of `arch` once downloaded."""
    import torchvision

    url = torchvision.models.get_model_weights(arch).DEFAULT.url
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def weights_file(model: ModelSettings | Mapping[str, Any]) -> Path | None:
    """The weights file the config names (None for random or trained-by-the-run weights).

    `model` may be the validated config's section: the workflow calls this at parse time.
    """
    settings = ModelSettings.of(model)
    kind, weights = settings.kind, settings.weights
    if kind == "embedded" or weights == "random":
        return None
    if kind == "torchvision" and weights in (None, "cache"):
        return torchvision_cache_path(settings.arch)
    if not weights:
        raise ConfigError(
            "model.weights: a custom model needs the path to its state dict (or random)"
        )
    return Path(weights)


def missing_weights_message(model: ModelSettings | Mapping[str, Any], path: Path) -> str:
    """Why the weights at `path` are missing and where they go (`model` as in weights_file)."""
    settings = ModelSettings.of(model)
    hint = ""
    if settings.kind == "torchvision":
        hint = (
            f" torchvision's ImageNet weights for {settings.arch} go in the torch cache at "
            f"{torchvision_cache_path(settings.arch)} (copy them there from a machine with a "
            "network), or set model.weights to the file's path."
        )
    return (
        f"model.weights: {path} does not exist.{hint} Weights are never downloaded at run time; "
        "`weights: random` runs with random weights (for tests)."
    )


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from `path`, refusing anything that would run code while unpickling."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # pickle that needs code, truncated file, not a torch file at all
        raise FacetvizError(
            f"{path} is not a plain weights file ({type(err).__name__}: {str(err)[:300]}). Only "
            "tensors and plain containers are loaded (weights_only=True); re-save it with "
            "torch.save(model.state_dict(), path)."
        ) from err
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict):
        raise FacetvizError(f"{path} holds a {type(data).__name__}, not a state dict")
    return data


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save({"state_dict": model.state_dict(), "meta": meta}, tmp)


def load_network(
    settings: ModelSettings,
    input_shape: Sequence[int],
    num_classes: int,
    weights: str | Path | None,
) -> Network:
    """The configured model in eval mode, weights loaded from `weights` (None: random)."""
    model = build_architecture(settings, input_shape[0], num_classes)
    if weights is not None:
        path = Path(weights)
        if not path.exists():
            raise FacetvizError(missing_weights_message(settings, path))
        try:
            model.load_state_dict(load_state_dict(path))
        except RuntimeError as err:
            raise FacetvizError(
                f"{path} does not fit the configured model ({str(err)[:400]}). Check model.arch, "
                "model.num_classes and the dataset's classes."
            ) from err
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    mean, std = settings.normalization(input_shape[0])
    description = {"kind": settings.kind, "weights": str(weights or "random")}
    if settings.arch:
        description["arch"] = settings.arch
    if settings.factory:
        description["factory"] = settings.factory
    return Network(model, mean, std, description)


# --- layers and units ----------------------------------------------------------------------


def resolve_layer(model: nn.Module, name: str, key: str = "layer") -> nn.Module:
    """The module a layer reference names (its view, after `@`, aside: model/views.py)."""
    path = split_view(name)[0]
    modules = dict(model.named_modules())
    if path in modules and path != "":
        return modules[path]
    names = [name for name in modules if name]
    close = [n for n in names if path.split(".")[0] in n][:12] or names[:12]
    raise ConfigError(
        f"{key}: {path!r} is not a module of the model. Layers are dotted module paths, "
        f"e.g. {', '.join(close)}{' ...' if len(names) > 12 else ''}"
    )


@contextmanager
def capture(model: nn.Module, layers: Iterable[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block, each forward pass stores the output of every named layer (as its view
    reads it, where the name has one)."""
    outputs: dict[str, torch.Tensor] = {}
    # Resolve every name first, so a wrong one leaves no hook behind.
    modules = {name: resolve_layer(model, name) for name in dict.fromkeys(layers)}
    handles = []
    for name, module in modules.items():

        def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor, name: str = name) -> None:
            outputs[name] = apply_view(output, split_view(name)[1])

        handles.append(module.register_forward_hook(hook))
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


def unit_values(output: torch.Tensor, spatial: str) -> torch.Tensor:
    """[N, units] from a layer output: fc layers as they are, conv layers by the spatial rule."""
    if output.ndim == 2:
        return output
    if output.ndim != 4:
        return output.flatten(1)
    if spatial == "center":
        return output[:, :, output.shape[2] // 2, output.shape[3] // 2]
    if spatial == "max":
        return output.amax(dim=(2, 3))
    if spatial == "mean":
        return output.mean(dim=(2, 3))
    raise ConfigError(f"spatial: unknown rule {spatial!r}; use one of {', '.join(SPATIAL_RULES)}")


def unit_count(shape: Sequence[int]) -> int:
    """Units of a layer with output `shape` (no batch), as `unit_values` counts them."""
    if len(shape) == 3:
        return int(shape[0])
    return int(np.prod(shape)) if shape else 1


def meta_architecture(settings: ModelSettings, in_channels: int, num_classes: int) -> nn.Module:
    """The architecture on the meta device: shapes without memory or initialization cost."""
    with torch.device("meta"):
        return build_architecture(settings, in_channels, num_classes).eval()


def output_shapes(
    model: nn.Module, input_shape: Sequence[int], layers: Iterable[str]
) -> dict[str, tuple[int, ...]]:
    """Output shape (without batch) of each layer of a meta-device `model`."""
    with capture(model, layers) as outputs, torch.no_grad():
        model(torch.empty(1, *input_shape, device="meta"))
    return {name: tuple(out.shape[1:]) for name, out in outputs.items()}


def describe_model(settings: ModelSettings) -> str:
    """The configured model in a few words, for messages."""
    if settings.kind == "torchvision":
        return f"torchvision {settings.arch}"
    return f"custom {settings.factory}" if settings.kind == "custom" else "the embedded CNN"


def first_conv(model: nn.Module) -> tuple[str, nn.Module] | None:
    """The first convolution registered in `model` (for CNNs, the layer the image enters)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            return name, module
    return None


def input_refused(model: nn.Module, input_shape: Sequence[int]) -> str | None:
    """Why a meta-device `model` refuses one image of `input_shape`; None if it takes it."""
    try:
        with torch.no_grad():
            model(torch.empty(1, *input_shape, device="meta"))
    except (RuntimeError, ValueError, IndexError) as err:  # torch's shape checks
        return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return None


def minimum_input_size(
    model: nn.Module, channels: int, refused: int, limit: int = 4096
) -> int | None:
    """The smallest square side above `refused` that a meta-device `model` takes (None up to
    `limit`), assuming that it takes every larger side too, as CNNs with adaptive pooling do.

    Doubling, then bisecting: about 2 log2(size) forward passes on the meta device, each a few
    milliseconds, and only for a config that is being refused.
    """

    def takes(size: int) -> bool:
        return input_refused(model, (channels, size, size)) is None

    low, high = refused, max(2 * refused, 8)
    while not takes(high):
        if high >= limit:
            return None
        low, high = high, min(2 * high, limit)
    while high - low > 1:  # low is refused, high is taken
        middle = (low + high) // 2
        low, high = (low, middle) if takes(middle) else (middle, high)
    return high


def layer_shapes(
    settings: ModelSettings, input_shape: Sequence[int], num_classes: int, layers: Iterable[str]
) -> dict[str, tuple[int, ...]]:
    """Output shape (without batch) of each layer of the configured model."""
    model = meta_architecture(settings, input_shape[0], num_classes)
    return output_shapes(model, input_shape, layers)
