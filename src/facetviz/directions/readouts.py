"""A neuron's readout (model/readout.py) from its config and the file that defines it: a
direction's .npy, a probe's direction (rule probe) or an SAE (rule sae)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from facetviz.core.errors import ConfigError, FacetvizError
from facetviz.core.settings import Neuron
from facetviz.model.readout import Readout, group_weights, unit_direction


def load_direction(path: str | Path, units: int, key: str) -> np.ndarray:
    """The direction in `path` as a [units] vector, or a ConfigError naming `key` and the fix:
    not a .npy, unreadable, of the wrong shape or length, not finite, or all zero."""
    path = Path(path)
    fix = f"a .npy file of {units} finite numbers, not all zero (np.save)"
    if path.suffix != ".npy":
        raise ConfigError(f"{key}: {path} is not a .npy file; give {fix}")
    if not path.is_file():
        raise ConfigError(f"{key}: {path} does not exist; give {fix}")
    try:
        vector = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ConfigError(
            f"{key}: {path} cannot be read as a .npy array ({err}); give {fix}"
        ) from None
    if vector.dtype.kind not in "fiu" or vector.squeeze().ndim != 1:
        raise ConfigError(
            f"{key}: {path} holds a {vector.dtype} array of shape {vector.shape}, not a vector; "
            f"give {fix}"
        )
    vector = vector.ravel().astype(np.float64)
    if len(vector) != units:
        raise ConfigError(
            f"{key}: {path} has {len(vector)} numbers but the layer has {units} units (as the "
            f"neuron's spatial rule reads it); give {fix}"
        )
    if not np.isfinite(vector).all():
        raise ConfigError(f"{key}: {path} holds NaN or infinite numbers; give {fix}")
    if not np.any(vector):
        raise ConfigError(f"{key}: {path} is all zeros, which points nowhere; give {fix}")
    return vector


def resolve_neuron(neuron: Neuron, readout_file: str | Path | None) -> Neuron:
    """The neuron with what its file decides: an SAE latent named by firing rank gets its
    index (so that figures and the page name the latent)."""
    if neuron.kind != "sae" or neuron.latent is not None or readout_file is None:
        return neuron
    from facetviz.directions.sae import SaeRecord

    ranked = SaeRecord.read(readout_file).by_firing()
    return replace(neuron, latent=int(ranked[neuron.latent_rank or 0]))


def resolve_readout(neuron: Neuron, readout_file: str | Path | None) -> Readout | None:
    """The readout of a neuron that is not one unit (None for a unit); `readout_file` is its
    direction's .npy (a direction or a probe) or its SAE (an sae latent, by index: see
    `resolve_neuron`)."""
    if neuron.kind == "unit":
        return None
    if neuron.units is None:
        raise FacetvizError(f"neuron {neuron.name}: its layer's size was not resolved")
    if neuron.kind == "group":
        weights = group_weights(list(neuron.group or ()), neuron.units)
        return Readout(weights, 0.0, 0.0, neuron.label)
    if readout_file is None:
        raise FacetvizError(f"neuron {neuron.name}: no file given for its {neuron.kind}")
    if neuron.kind == "sae":
        return _sae_readout(neuron, readout_file)
    vector = load_direction(readout_file, neuron.units, f"neurons ({neuron.name}).{neuron.kind}")
    return Readout(unit_direction(vector), 0.0, neuron.cosine_power, neuron.label)


def _sae_readout(neuron: Neuron, path: str | Path) -> Readout:
    from facetviz.directions.sae import SaeRecord

    if neuron.latent is None:
        raise FacetvizError(f"neuron {neuron.name}: its latent was not resolved")
    weights, bias = SaeRecord.read(path).latent_readout(neuron.latent)
    return Readout(np.asarray(weights, dtype=np.float32), float(bias), 0.0, neuron.label)
