"""Typed HDF5 records: a dataclass per file format, written and read by one pair of functions.

Fields annotated `np.ndarray` are datasets; every other field is an attribute (JSON for dicts
and lists). A file that lacks a field (written by an older version, or cut short) is an error
that names the stage to rerun, never a KeyError deep inside a later stage. A field with a
default of None is optional: not written while None, and None when the file lacks it (so
adding one leaves the files of every record without it byte for byte as they were).
"""

from __future__ import annotations

import json
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

import h5py
import numpy as np

from facetviz.core.errors import FacetvizError
from facetviz.core.io import open_h5

R = TypeVar("R")
_SCALARS = {"str": str, "bool": bool, "int": int, "float": float}


def _kinds(cls: type) -> dict[str, str]:
    """Field name -> 'array', 'object' (a class with to_dict/from_dict), 'json' or a scalar type
    name, from the class's annotations."""
    hints = typing.get_type_hints(cls)
    kinds = {}
    for field in fields(cls):
        hint = hints[field.name]
        if field.default is None:  # `X | None = None`: the kind of X
            hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
        if hint is np.ndarray:
            kinds[field.name] = "array"
        elif hasattr(hint, "from_dict") and hasattr(hint, "to_dict"):
            kinds[field.name] = "object"
        elif getattr(hint, "__name__", "") in _SCALARS:
            kinds[field.name] = hint.__name__
        else:  # dicts, lists, optional values: JSON keeps their structure
            kinds[field.name] = "json"
    return kinds


def _optional(cls: type) -> set[str]:
    return {field.name for field in fields(cls) if field.default is None}


def write_record(handle: h5py.Group, record: Any) -> None:
    """Every field of the dataclass `record` into the open group `handle`."""
    for name, kind in _kinds(type(record)).items():
        value = getattr(record, name)
        if value is None and name in _optional(type(record)):
            continue
        if kind == "array":
            handle[name] = value
        elif kind == "object":
            handle.attrs[name] = json.dumps(value.to_dict())
        elif kind == "json":
            handle.attrs[name] = json.dumps(value)
        else:
            handle.attrs[name] = value


def read_record(cls: type[R], path: str | Path, stage: str) -> R:
    """The record of type `cls` stored at `path` (made by `stage`), opened read-only."""
    with open_h5(path, stage) as handle:
        return read_group(cls, handle, stage)


def read_group(cls: type[R], handle: h5py.Group, stage: str) -> R:
    kinds = _kinds(cls)
    absent = {
        name
        for name, kind in kinds.items()
        if (name not in handle if kind == "array" else name not in handle.attrs)
    }
    missing = [name for name in kinds if name in absent and name not in _optional(cls)]
    if missing:
        raise FacetvizError(
            f"{handle.file.filename} lacks {', '.join(missing)}: it was written by another "
            f"version of facetviz or is incomplete. Delete it and rerun the '{stage}' stage "
            f"(snakemake --forcerun {stage})."
        )
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for name, kind in kinds.items():
        if name in absent:
            values[name] = None
        elif kind == "array":
            values[name] = handle[name][()]
        elif kind == "object":
            values[name] = hints[name].from_dict(json.loads(handle.attrs[name]))
        elif kind == "json":
            values[name] = json.loads(handle.attrs[name])
        else:
            values[name] = _SCALARS[kind](handle.attrs[name])
    return cls(**values)
