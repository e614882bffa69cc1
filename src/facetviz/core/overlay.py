"""Configs as overlays: a config that names `base:` holds only what it changes over that config.

Snakemake merges a `--configfile` into the Snakefile's default config dict by dict, which would
mix, say, a test's `label_map` into the default's; so the Snakefile reads the default only when
no `--configfile` is given, and a config that wants to build on another says so with `base:`.
The workflow (common.smk) resolves it here before validating: the overlay's values replace the
base's, sections are merged key by key, and lists (neurons, methods, seeds) and the keys of
`REPLACED_WHOLE` are replaced as a whole. A base may name a base of its own.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from facetviz.core.errors import ConfigError

# Mappings whose keys belong together: label_map's key order is the class order and a merged
# map would keep the base's classes; kwargs belong to one factory. An overlay replaces them.
REPLACED_WHOLE = frozenset({("dataset", "label_map"), ("model", "kwargs")})


def merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """`overlay` over `base`: mappings merged key by key (the base's key order first, then the
    overlay's new keys), everything else, and the mappings of `REPLACED_WHOLE`, replaced."""
    return _merge(base, overlay, ())


def _merge(
    base: Mapping[str, Any], overlay: Mapping[str, Any], path: tuple[str, ...]
) -> dict[str, Any]:
    merged = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        here = (*path, key)
        below = merged.get(key)
        if isinstance(value, Mapping) and isinstance(below, Mapping) and here not in REPLACED_WHOLE:
            merged[key] = _merge(below, value, here)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def base_path(base: str, root: Path) -> Path:
    """Where `base:` points: an absolute path, or one relative to `root` (the repository, where
    the workflow's own configs are; not the working directory, which `--directory` moves)."""
    path = Path(base).expanduser()
    return path if path.is_absolute() else root / path


def resolve(config: Mapping[str, Any], root: Path) -> dict[str, Any]:
    """`config` merged onto its chain of `base:` configs, without the `base` key; a config
    without one as it is. A missing, unreadable or circular base is a ConfigError."""
    resolved = copy.deepcopy(dict(config))
    seen: list[Path] = []
    while (base := resolved.pop("base", None)) is not None:
        if not isinstance(base, str):
            raise ConfigError(f"base: a path to a config file, got {base!r}")
        path = base_path(base, root).resolve()
        if path in seen:
            chain = " -> ".join(str(p) for p in [*seen, path])
            raise ConfigError(f"base: configs that are each other's base: {chain}")
        seen.append(path)
        resolved = merge(_read(path), resolved)
    return resolved


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(f"base: cannot read {path} ({err.strerror})") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"base: {path} is not valid YAML ({err})") from err
    if not isinstance(data, dict):
        raise ConfigError(f"base: {path} holds no config (a YAML mapping)")
    return data
