"""Checks of a run config that need the model or the dataset's folders: the model takes the
dataset's images, layers exist, units and classes are in range, the dataset's files are there.

The schema (workflow/schemas/config.schema.yaml) has already checked keys and types; this runs
next, at workflow parse time, on the meta device, so a bad layer or unit stops the run before
any job starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from facetviz.core.errors import ConfigError
from facetviz.core.settings import DatasetSettings, ModelSettings
from facetviz.data.checks import check_dataset, input_spec, label_space
from facetviz.directions.checks import (
    check_probe_class,
    expand_latents,
    readout_layer,
    resolve_neuron,
)
from facetviz.model.networks import (
    describe_model,
    first_conv,
    input_refused,
    meta_architecture,
    minimum_input_size,
    output_shapes,
    resolve_layer,
    unit_count,
)
from facetviz.model.views import (
    check_view,
    code_view,
    describe_shape,
    has_attention,
    is_channels_last,
    is_token_shape,
    neuron_view,
    prior_view,
    split_view,
)


def check_run_config(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Validate the model-dependent parts of the validated `config`; return the neurons, fully
    resolved.

    Resolved neurons carry `class` as an integer index (or None for select: top) and `units`, the
    size of their layer. Raises ConfigError naming the offending key.
    """
    neurons = expand_latents(config["neurons"])
    _check_names(config, neurons)
    _check_facet_counts(config["facets"])
    dataset = DatasetSettings.from_config(config["dataset"])
    model_settings = ModelSettings.from_config(config["model"])
    input_shape, class_names = input_spec(dataset)
    num_classes = model_settings.num_classes or len(class_names)
    model = meta_architecture(model_settings, input_shape[0], num_classes)
    _check_model_input(model, model_settings, dataset, input_shape)
    model_settings.normalization(input_shape[0])
    keys = [f"neurons[{i}] ({neuron['name']})" for i, neuron in enumerate(neurons)]
    neurons = [
        {**neuron, "layer": readout_layer(key, neuron, config)}
        for key, neuron in zip(keys, neurons, strict=True)
    ]
    shapes = _layer_shapes(model, config, neurons, keys, input_shape)
    transformer = has_attention(model)
    _check_section_views(config, shapes, transformer)
    _check_facet_pool(config["facets"], shapes[config["facets"]["layer"]], transformer)
    neurons = [
        _with_view(key, neuron, shapes[neuron["layer"]], transformer)
        for key, neuron in zip(keys, neurons, strict=True)
    ]
    shapes = output_shapes(model, input_shape, [neuron["layer"] for neuron in neurons])
    labels = label_space(dataset)
    for name, probe in config["probes"].items():
        check_probe_class(f"probes.{name}", probe, labels)

    seen: set[str] = set()
    resolved = []
    for key, neuron in zip(keys, neurons, strict=True):
        if neuron["name"] in seen:
            raise ConfigError(f"{key}.name: {neuron['name']!r} is used twice; names must be unique")
        seen.add(neuron["name"])
        units = unit_count(shapes[neuron["layer"]])
        neuron = resolve_neuron(key, neuron, config, units, labels)
        resolved.append(
            {**neuron, "class": _resolve_class(key, neuron, class_names), "units": units}
        )
    return resolved


def _layer_shapes(
    model: Any,
    config: Mapping[str, Any],
    neurons: list[dict[str, Any]],
    keys: list[str],
    input_shape: tuple[int, ...],
) -> dict[str, tuple[int, ...]]:
    """The output shape of every layer the config names, each checked to exist first."""
    named = {"facets.layer": config["facets"]["layer"]}
    named |= {f"{key}.layer": n["layer"] for key, n in zip(keys, neurons, strict=True)}
    for section in ("probes", "sae"):
        named |= {f"{section}.{name}.layer": e["layer"] for name, e in config[section].items()}
    code_layer = config.get("priors", {}).get("code_layer")
    if code_layer:
        named["priors.code_layer"] = code_layer
    for key, layer in named.items():
        resolve_layer(model, layer, key=key)
    paths = list(dict.fromkeys(split_view(layer)[0] for layer in named.values()))
    raw = output_shapes(model, input_shape, paths)
    transformer = has_attention(model)
    for key, layer in named.items():
        check_view(key, layer, raw[split_view(layer)[0]], transformer)
    return output_shapes(model, input_shape, list(dict.fromkeys(named.values())))


def _with_view(
    key: str, neuron: dict[str, Any], shape: tuple[int, ...], transformer: bool
) -> dict[str, Any]:
    """The neuron reading its layer through its view (model/views.py), `tokens` and `patch`
    folded into the layer's name, the spatial rule filled in."""
    layer, spatial = neuron_view(key, neuron, shape, transformer)
    rest = {k: v for k, v in neuron.items() if k not in ("tokens", "patch")}
    return {**rest, "layer": layer, "spatial": spatial}


def _check_section_views(
    config: Mapping[str, Any], shapes: dict[str, tuple[int, ...]], transformer: bool
) -> None:
    """A probe or an SAE reads a token layer through a view the user names: its tokens are
    not units."""
    for section in ("probes", "sae"):
        for name, entry in config[section].items():
            layer = entry["layer"]
            if transformer and is_token_shape(shapes[layer]) and split_view(layer)[1] is None:
                raise ConfigError(
                    f"{section}.{name}.layer: {layer!r} is a token layer {list(shapes[layer])}; "
                    f"name the tokens read: {layer}@mean (the patch mean) or {layer}@cls"
                )


def _check_facet_pool(facets: Mapping[str, Any], shape: tuple[int, ...], transformer: bool) -> None:
    """facets.pool pools a conv map [C, H, W] over its positions (facets/pooling.py): refuse it
    on codes that have none, or whose positions are not laid out as a conv map's, naming the
    view that reads them as one."""
    # the schema fills both keys in; a config made by hand (a caller's own) may lack them
    pool, layer, tokens = facets.get("pool", "none"), facets["layer"], facets.get("tokens")
    if pool == "none" or (len(shape) == 3 and not is_channels_last(shape)):
        return
    path, view = split_view(layer)
    if view is None and transformer and is_token_shape(shape):
        if tokens in ("cls", "mean"):
            read = f"facets.tokens: {tokens} reads one vector per image, with no positions"
        else:
            read = f"layer {layer!r} is a token layer {list(shape)}, not a conv map"
        fix = f"facets.layer: {path}@grid (its patch tokens as a map; facets.tokens: null)"
    elif view is None and is_channels_last(shape):
        read = f"layer {layer!r} gives {describe_shape(shape)}"
        fix = f"facets.layer: {path}@nchw (the same map as [C, H, W])"
    else:
        read = f"layer {layer!r} gives {describe_shape(shape)}, with no positions to pool over"
        fix = "a conv facets.layer"
    raise ConfigError(
        f"facets.pool: {pool} pools a conv map [C, H, W] over its positions, but {read}. "
        f"Set facets.pool: none, or {fix}"
    )


def code_layers(config: Mapping[str, Any]) -> tuple[str, str | None]:
    """(facets.layer, priors.code_layer) with their views (model/views.py): a token facet
    layer's codes as `facets.tokens` says, a token code layer's patch tokens as a grid. The
    config's own names where no view applies (conv and fc layers)."""
    dataset = DatasetSettings.from_config(config["dataset"])
    model_settings = ModelSettings.from_config(config["model"])
    input_shape, class_names = input_spec(dataset)
    model = meta_architecture(
        model_settings, input_shape[0], model_settings.num_classes or len(class_names)
    )
    facets, code_layer = config["facets"], config["priors"]["code_layer"]
    raw = [facets["layer"], *([code_layer] if code_layer else [])]
    shapes = output_shapes(model, input_shape, raw)
    transformer = has_attention(model)
    facet_layer = code_view(
        "facets.layer", facets["layer"], shapes[facets["layer"]], transformer, facets["tokens"]
    )
    prior_layer = code_layer or facets["layer"]
    viewed = prior_view(prior_layer, shapes[prior_layer], transformer)
    return facet_layer, (viewed if viewed != prior_layer else code_layer)


def check_dataset_files(config: Mapping[str, Any], neurons: list[dict[str, Any]]) -> None:
    """The dataset's files are there (check_dataset), with images for every class that one of
    the resolved `neurons` selects."""
    classes = {
        neuron["class"]: f"neurons[{i}] ({neuron['name']}).class"
        for i, neuron in reversed(list(enumerate(neurons)))  # the first neuron names a class
        if neuron["class"] is not None
    }
    check_dataset(DatasetSettings.from_config(config["dataset"]), classes)


def _check_model_input(
    model: Any, settings: ModelSettings, dataset: DatasetSettings, shape: tuple[int, ...]
) -> None:
    """The model takes the dataset's images. When torch refuses them, say why in the config's
    terms: the channels (the first convolution's), or the size (the architecture's minimum).
    Only then: a model may adapt its input itself, e.g. repeat a gray channel."""
    refused = input_refused(model, shape)
    if refused is None:
        return
    channels, size = shape[0], shape[1]
    name = describe_model(settings)
    conv = first_conv(model)
    if conv is not None and conv[1].in_channels != channels:
        takes, given = conv[1].in_channels, _origin(dataset, "channels")
        convert = "repeated into" if takes > channels else "averaged to"
        raise ConfigError(
            f"dataset.channels: the model ({name}) takes {takes}-channel images (its first "
            f"layer {conv[0]}), but the dataset gives {channels} ({given}). Set "
            f"dataset.channels: {takes} (images are {convert} {takes} channels), or a model "
            f"that takes {channels}-channel images."
        )
    minimum = minimum_input_size(model, channels, size)
    given = _origin(dataset, "image_size")
    if minimum is None:
        raise ConfigError(
            f"dataset.image_size: the model ({name}) refuses {channels}x{size}x{size} images "
            f"({given}), and every larger size: {refused}"
        )
    raise ConfigError(
        f"dataset.image_size: {size} px ({given}) is smaller than the model ({name}) accepts: "
        f"it needs at least {minimum} px. Set dataset.image_size: {minimum} or more (images are "
        "resized to it)."
    )


def _origin(dataset: DatasetSettings, key: str) -> str:
    """Whether a dataset setting was set, or is its kind's default (messages say which)."""
    return "as set" if getattr(dataset, key) else f"the default of {dataset.kind}"


# Names that become a folder or a file name (results/<run>/, facets/<neuron>.json) and that
# the schema's pattern lets through: `.` and `..` name no folder of their own (`run: ..` would
# write into the folder above results/).
RESERVED_NAMES = (".", "..")


def _check_names(config: Mapping[str, Any], neurons: list[dict[str, Any]]) -> None:
    """`run` and the neurons' names are not `.` or `..`."""
    named = [("run", config["run"])]
    named += [(f"neurons[{i}] ({n['name']}).name", n["name"]) for i, n in enumerate(neurons)]
    for key, name in named:
        if name in RESERVED_NAMES:
            raise ConfigError(
                f"{key}: {name!r} names no folder or file of its own (it is the "
                f"{'current' if name == '.' else 'parent'} folder in a path): use letters, "
                "digits, `_`, `.` and `-`, other than `.` or `..`"
            )


def _check_facet_counts(facets: Mapping[str, Any]) -> None:
    """k facets need at least k images: catch a cap below k before any work."""
    k = facets["k"]
    for key in ("top_n", "max_images"):
        limit = facets[key]
        if limit is not None and limit < k:
            raise ConfigError(
                f"facets.{key}: {limit} images cannot make facets.k = {k} facets; "
                f"raise facets.{key} or lower facets.k"
            )


def _resolve_class(key: str, neuron: Mapping[str, Any], class_names: tuple[str, ...]) -> int | None:
    if neuron["select"] != "label":
        return None
    wanted = neuron["class"]
    if wanted is None:
        wanted = neuron["unit"]
    if isinstance(wanted, str):
        if wanted not in class_names:
            raise ConfigError(
                f"{key}.class: {wanted!r} is not a class of the dataset; classes: "
                f"{', '.join(class_names[:20])}{' ...' if len(class_names) > 20 else ''}"
            )
        return class_names.index(wanted)
    if not 0 <= wanted < len(class_names):
        raise ConfigError(
            f"{key}.class: {wanted} is out of range; the dataset has {len(class_names)} classes "
            f"(0..{len(class_names) - 1}). Set class when the unit index is not the class index."
        )
    return int(wanted)
