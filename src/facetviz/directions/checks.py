"""Parse-time checks of the neurons that are not one unit, and of the probes and SAEs they name
(docs/design.md §12): each bad value stops the run before any job, naming its key and the fix.

A neuron gives exactly one of `unit`, `units` (a group), `direction`, `probe` or `sae`; a probe's
or an SAE's neuron reads the probe's or the SAE's layer and spatial rule. `latents: top N`
becomes N neurons here, so every later stage sees one latent per neuron.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from facetviz.core.errors import ConfigError
from facetviz.data.datasets import LabelSpace
from facetviz.directions.readouts import load_direction

READOUTS = ("unit", "units", "direction", "probe", "sae")
# keys that only a readout sets: left out of a neuron that does not set them, so that a unit
# neuron's resolved dict (and the rules' params made from it) is what it was before readouts
OPTIONAL_KEYS = ("units", "direction", "probe", "sae", "latent", "latents", "tokens", "patch")


def expand_latents(neurons: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`latents: top N` as N neurons `<name>-0` ... `<name>-<N-1>`, by firing rank."""
    expanded = []
    for neuron in neurons:
        wanted = neuron.get("latents")
        if not wanted:
            expanded.append(dict(neuron))
            continue
        count = int(wanted.split()[1])
        expanded += [
            {**neuron, "name": f"{neuron['name']}-{rank}", "latents": None, "latent_rank": rank}
            for rank in range(count)
        ]
    return expanded


def readout_layer(key: str, neuron: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    """The neuron's layer: its own, or its probe's or SAE's (which it must not contradict)."""
    _require_one_readout(key, neuron)
    source = _source(key, neuron, config)
    layer = neuron.get("layer")
    if source is None:
        if not layer:
            raise ConfigError(f"{key}.layer: missing; name the layer the neuron reads")
        return layer
    if layer and layer != source["layer"]:
        section, name = _named(neuron)
        raise ConfigError(
            f"{key}.layer: {layer!r} is not the layer of {section} {name!r} "
            f"({source['layer']!r}); leave layer out or set it to {source['layer']!r}"
        )
    return source["layer"]


def resolve_neuron(
    key: str,
    neuron: Mapping[str, Any],
    config: Mapping[str, Any],
    units: int,
    labels: LabelSpace,
) -> dict[str, Any]:
    """The neuron with its readout checked against its layer's `units`, keys it does not set
    left out, the group under `group`, a probe's or SAE's layer and spatial rule filled in."""
    resolved = {k: v for k, v in neuron.items() if k not in OPTIONAL_KEYS or v is not None}
    if not resolved.get("direction_cosine_power"):
        resolved.pop("direction_cosine_power", None)
    if neuron.get("unit") is None:
        if neuron["select"] == "label":
            raise ConfigError(
                f"{key}.select: `label` clusters the images of a class unit's class; a "
                f"{_kind(neuron)} neuron selects its top images: use select: top"
            )
        resolved.pop("unit", None)
    elif neuron["unit"] >= units:
        raise ConfigError(
            f"{key}.unit: {neuron['unit']} is out of range for layer {neuron['layer']!r}, "
            f"which has {units} units (0..{units - 1})"
        )
    if neuron.get("direction_cosine_power") and _kind(neuron) not in ("direction", "probe"):
        raise ConfigError(
            f"{key}.direction_cosine_power: only a direction or a probe has a cosine; remove it"
        )
    resolved |= _check_readout(key, neuron, config, units, labels)
    return resolved


def _check_readout(
    key: str, neuron: Mapping[str, Any], config: Mapping[str, Any], units: int, labels: LabelSpace
) -> dict[str, Any]:
    kind = _kind(neuron)
    if kind == "units":
        return {"group": _check_group(key, neuron["units"], neuron["layer"], units)}
    if kind == "direction":
        load_direction(neuron["direction"], units, f"{key}.direction")
        return {}
    if kind == "probe":
        probe = config["probes"][neuron["probe"]]
        check_probe_class(f"probes.{neuron['probe']}", probe, labels)
        return {"layer": probe["layer"], "spatial": probe["spatial"]}
    if kind == "sae":
        return _check_latent(key, neuron, config["sae"][neuron["sae"]])
    return {}


def _check_group(key: str, group: list[Mapping[str, Any]], layer: str, units: int) -> list:
    seen: set[int] = set()
    for i, term in enumerate(group):
        unit = term["unit"]
        if unit >= units:
            raise ConfigError(
                f"{key}.units[{i}].unit: {unit} is out of range for layer {layer!r}, which has "
                f"{units} units (0..{units - 1})"
            )
        if unit in seen:
            raise ConfigError(f"{key}.units[{i}].unit: unit {unit} is listed twice; list it once")
        seen.add(unit)
    if not any(term["weight"] for term in group):
        raise ConfigError(f"{key}.units: every weight is 0, which reads nothing; give one ≠ 0")
    return [[term["unit"], float(term["weight"])] for term in group]


def _check_latent(key: str, neuron: Mapping[str, Any], sae: Mapping[str, Any]) -> dict[str, Any]:
    latent, rank = neuron.get("latent"), neuron.get("latent_rank")
    if latent is None and rank is None:
        raise ConfigError(f"{key}: an sae neuron names `latent: <index>` or `latents: top <N>`")
    if latent is not None and neuron.get("latent_rank") is not None:
        raise ConfigError(f"{key}: give `latent` or `latents`, not both")
    index, what = (latent, "latent") if latent is not None else (rank, "latents")
    if index >= sae["width"]:
        shown = index if latent is not None else f"top {index + 1}"
        raise ConfigError(
            f"{key}.{what}: {shown} is out of range: sae {neuron['sae']!r} has "
            f"{sae['width']} latents (0..{sae['width'] - 1}); lower it or widen the SAE"
        )
    return {"layer": sae["layer"], "spatial": sae["spatial"]}


def check_probe_class(key: str, probe: Mapping[str, Any], labels: LabelSpace) -> str:
    """`fine` or `coarse`: which labels the probe's class is one of, or a ConfigError."""
    wanted, which = probe["class"], probe["labels"]
    fine = wanted in labels.fine_names and which in ("auto", "fine")
    coarse = wanted in labels.class_names and which in ("auto", "coarse")
    if fine or coarse:
        return "fine" if fine else "coarse"
    names = labels.fine_names if which == "fine" else labels.class_names
    if which == "auto":
        names = tuple(dict.fromkeys((*labels.fine_names, *labels.class_names)))
    raise ConfigError(
        f"{key}.class: {wanted!r} is not a {'' if which == 'auto' else which + ' '}class of "
        f"the dataset; classes: {', '.join(names[:30])}{' ...' if len(names) > 30 else ''}"
    )


def _require_one_readout(key: str, neuron: Mapping[str, Any]) -> None:
    given = [name for name in READOUTS if neuron.get(name) is not None]
    if len(given) != 1:
        which = f"it has {', '.join(given)}" if given else "it has none"
        raise ConfigError(
            f"{key}: give exactly one of unit, units, direction, probe or sae ({which})"
        )
    latent = neuron.get("latent") is not None or neuron.get("latent_rank") is not None
    if latent and given[0] != "sae":
        raise ConfigError(f"{key}: `latent` and `latents` name an SAE's latents; add `sae: <name>`")


def _source(key: str, neuron: Mapping[str, Any], config: Mapping[str, Any]) -> dict | None:
    """The probe or SAE the neuron names, or None; a ConfigError for an unknown name."""
    section, name = _named(neuron)
    if section is None:
        return None
    known = config[section]
    if name not in known:
        listed = ", ".join(known) or f"none: define one under `{section}:`"
        raise ConfigError(f"{key}.{_kind(neuron)}: no {section} entry {name!r}; known: {listed}")
    return known[name]


def _named(neuron: Mapping[str, Any]) -> tuple[str | None, str | None]:
    if neuron.get("probe") is not None:
        return "probes", neuron["probe"]
    if neuron.get("sae") is not None:
        return "sae", neuron["sae"]
    return None, None


def _kind(neuron: Mapping[str, Any]) -> str:
    return next((name for name in READOUTS if neuron.get(name) is not None), "unit")
