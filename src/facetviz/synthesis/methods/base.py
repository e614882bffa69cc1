"""What a synthesis method is, and the registry that finds one by name.

A method is a subclass of `Method` in a module of its own, registered with `@register`. It
declares:
- `summary`, what it does in one line (the docs' method tables);
- `Settings`, a frozen dataclass whose field defaults are the method's defaults (the one place
  they live; `setting()` adds each field's bounds and help, from which the config is validated);
  one with a `preset` setting has `PRESETS` (a class variable: preset -> settings), whose
  settings a block's `preset` stands for (the keys the block sets itself win);
- `inputs`, the extra files it needs from the pipeline (name -> path under `results/<run>/`,
  made by a rule of its own), handed to it as `context.inputs[name]` (`required_inputs` when a
  setting decides);
- `parameterization(task)`: what its loop optimizes, whose `start` are the images it begins from;
- `objective(task)`: what it maximizes (an `objectives.Objective`, or one per octave kind);
- `optimize(task, parameterization, objective)`: its loop (`render`), returning a `Result`.

Methods outside the package (a lab's own) register the same way from a module named in the
config's `synthesis.plugins`: the workflow imports it before it validates the config. One that
takes a name already registered (a built-in's) is refused unless its class sets
`replaces = True`; names are held to `METHOD_NAME`, their inputs' names to `INPUT_NAME`.
"""

from __future__ import annotations

import importlib
import math
import re
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import torch

from facetviz.core.errors import ConfigError, FacetvizError
from facetviz.data.datasets import FacetDataset
from facetviz.facets.record import FacetRecord
from facetviz.model.networks import Network
from facetviz.synthesis.objectives import Forward, Objective, Projection, Unit
from facetviz.synthesis.render import Result

REGISTRY: dict[str, type[Method]] = {}
# A method's name is a wildcard value, a folder (`synthesis/<name>/`), a config key and part of
# the synthesis jobs' commands; its inputs' names are named inputs of the synthesize rule and
# `--input NAME=PATH` arguments. Plain names keep every one of them meaning one thing (no `..`,
# no quote or `=`).
METHOD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
INPUT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RESERVED_INPUTS = frozenset({"facets", "weights"})  # the synthesize rule's own named inputs


def setting(default: Any, help: str, **bounds: Any) -> Any:
    """A settings field: its default, one line of help, and JSON-schema bounds
    (minimum, exclusiveMinimum, maximum, enum)."""
    return field(default=default, metadata={"help": help, "bounds": bounds})


@dataclass(frozen=True)
class Context:
    """What a method runs with: the network, the run-wide settings, its extra input files."""

    network: Network
    steps_scale: float = 1.0  # synthesis.steps_scale: multiplies every step count
    mixed_precision: bool = False
    inputs: Mapping[str, Path] = field(default_factory=dict)
    # opens the run's dataset (its training seed's images), for methods that read the facets'
    # real images (the learned priors encode them); None where a job has no dataset
    dataset: Callable[[], FacetDataset] | None = None

    def open_dataset(self) -> FacetDataset:
        if self.dataset is None:
            raise FacetvizError("this method reads the facets' real images: give it the dataset")
        return self.dataset()

    @property
    def forward(self) -> Forward:
        return Forward(self.network, self.mixed_precision)

    def steps(self, count: int) -> int:
        """A step count scaled by synthesis.steps_scale, at least 1."""
        return max(1, math.ceil(count * self.steps_scale))


@dataclass(frozen=True)
class Task:
    """The images one job optimizes: image i maximizes units[i], starting from its facet.

    `groups` are each neuron's images (in order), `generators` each image's own random draws.
    Per image, too: whether its unit is a class unit (probability octaves apply to those only),
    its facet's centroid code in `facet_layer` and its unit's mean activation over the images
    the facets were found in (the unit's scale).
    """

    units: Sequence[Unit | Projection]
    mean_images: torch.Tensor  # [B, C, H, W] facet mean images, pixels in [0, 1]
    groups: Sequence[slice]
    generators: Sequence[torch.Generator]
    facet_layer: str
    class_units: Sequence[bool]
    centroid_codes: torch.Tensor  # [B, D]
    unit_scales: torch.Tensor  # [B]
    nearest_images: torch.Tensor  # [B, C, H, W] the real image nearest its facet's centroid
    records: Sequence[FacetRecord]  # each group's facet file (empty in tests of other methods)

    @property
    def size(self) -> int:
        return int(self.mean_images.shape[-1])

    def noise(self, mean: float, std: float) -> torch.Tensor:
        """Gray + Gaussian noise start images in [0, 1], each from its own generator."""
        shape = self.mean_images.shape[1:]
        draws = torch.stack([torch.randn(shape, generator=g) for g in self.generators])
        return (mean + std * draws).clamp(0, 1).to(self.mean_images.device)


class Method(ABC):
    name: ClassVar[str]
    # what it does, in one line: the method tables of README.md and config/README.md (generated
    # by facetviz.config_docs) show these words, and tests hold both to them
    summary: ClassVar[str]
    Settings: ClassVar[type]
    inputs: ClassVar[Mapping[str, str]] = {}
    # a reference (no optimization): every run scores it beside the methods it runs
    reference: ClassVar[bool] = False
    # a plug-in that reuses a registered name (a built-in's) must say so: otherwise `register`
    # refuses it, so that no import silently swaps the method a config names
    replaces: ClassVar[bool] = False

    def __init__(self, settings: Any, context: Context) -> None:
        self.settings = settings
        self.context = context

    @classmethod
    def required_inputs(cls, settings: Any) -> Mapping[str, str]:
        """The extra files it needs with these settings (name -> path under the training
        tree): `inputs`, unless a setting asks for more."""
        return cls.inputs

    @abstractmethod
    def parameterization(self, task: Task) -> Any: ...

    @abstractmethod
    def objective(self, task: Task) -> Objective | Mapping[str, Objective]: ...

    @abstractmethod
    def optimize(
        self, task: Task, parameterization: Any, objective: Objective | Mapping[str, Objective]
    ) -> Result: ...

    def label(self, task: Task) -> str:
        return f"{self.name} ({len(task.units)} images)"

    def run(self, task: Task) -> tuple[Result, torch.Tensor]:
        """Optimize the task's images; return the result and the images it started from."""
        parameterization = self.parameterization(task)
        start = parameterization.start  # before the loop moves a parameterization's parameters
        return self.optimize(task, parameterization, self.objective(task)), start


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make the method available by its `name`.

    The name and the names of its `inputs` must match `METHOD_NAME` and `INPUT_NAME`. A name
    that another class holds is refused unless the new class says `replaces = True`; the same
    class registered again (its module imported twice) simply replaces itself."""
    if not isinstance(cls.name, str) or not METHOD_NAME.fullmatch(cls.name):
        raise ConfigError(
            f"synthesis method {cls.name!r} ({_where(cls)}): a method's name is a letter, then "
            "letters, digits, '_' or '-' (it names a folder, a config key and an argument of "
            "the synthesis jobs)"
        )
    check_input_names(cls.name, cls.inputs)
    known = REGISTRY.get(cls.name)
    if known is not None and _where(known) != _where(cls) and not cls.replaces:
        origin = " (built in)" if known.__module__.startswith("facetviz.") else ""
        raise ConfigError(
            f"synthesis method {cls.name!r} is defined twice: by {_where(known)}{origin} and "
            f"{_where(cls)}. Rename one or, to replace the first on purpose, set "
            f"`replaces = True` on {cls.__qualname__}"
        )
    REGISTRY[cls.name] = cls
    return cls


def _where(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def check_input_names(method: str, names: Iterable[str]) -> None:
    """Refuse extra-input names that are not plain identifiers or that shadow the synthesize
    rule's own inputs (each becomes a named input of the rule and a `--input NAME=PATH`)."""
    for name in names:
        if not isinstance(name, str) or not INPUT_NAME.fullmatch(name):
            raise ConfigError(
                f"synthesis method {method!r}: input name {name!r} is not a Python identifier "
                "(letters, digits and '_', not starting with a digit)"
            )
        if name in RESERVED_INPUTS:
            raise ConfigError(
                f"synthesis method {method!r}: input name {name!r} is taken by the synthesize "
                f"rule (its own inputs are {', '.join(sorted(RESERVED_INPUTS))}); rename it"
            )


def load_plugins(modules: Sequence[str]) -> None:
    """Import the modules of `synthesis.plugins`, which register their methods."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise ConfigError(
                f"synthesis.plugins: cannot import {name!r} ({err}); make the module importable "
                "(installed, or its folder on PYTHONPATH) where snakemake and the jobs run"
            ) from err


def method_class(name: str) -> type[Method]:
    if name not in REGISTRY:
        raise ConfigError(
            f"synthesis.methods: unknown method {name!r}; known: {', '.join(REGISTRY)} "
            "(a method of your own: synthesis.plugins, docs/design.md §9)"
        )
    return REGISTRY[name]


def settings_schema(settings_class: type) -> dict[str, Any]:
    """The JSON schema of a method's settings block, from its dataclass."""
    hints = typing.get_type_hints(settings_class)
    json_types = {int: "integer", float: "number", bool: "boolean", str: "string"}
    properties = {}
    for item in fields(settings_class):
        hint = hints[item.name]
        kind = json_types.get(hint) if isinstance(hint, type) else None
        if kind is None:
            raise TypeError(f"{settings_class.__name__}.{item.name}: use int, float, bool or str")
        properties[item.name] = {
            "type": kind,
            **item.metadata.get("bounds", {}),
            "description": item.metadata.get("help", ""),
        }
    return {"type": "object", "additionalProperties": False, "properties": properties}


def defaults(settings_class: type) -> dict[str, Any]:
    return {item.name: _default(item) for item in fields(settings_class)}


def _default(item: Field) -> Any:
    if item.default is MISSING:
        raise TypeError(f"setting {item.name} has no default: every method setting needs one")
    return item.default


def method_settings(name: str, block: Mapping[str, Any] | None) -> Any:
    """The typed settings of method `name` from its config block (`synthesis.<name>`),
    validated like the rest of the config: an unknown key, a wrong type or a bound is a
    ConfigError that names the key."""
    settings_class = method_class(name).Settings
    block = dict(block or {})
    unknown = sorted(set(block) - set(defaults(settings_class)))
    if unknown:
        raise ConfigError(
            f"synthesis.{name}: unknown setting(s) {', '.join(unknown)}; "
            f"known: {', '.join(defaults(settings_class))}"
        )
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(settings_schema(settings_class)).iter_errors(block)
    )
    if error is not None:
        key = ".".join(str(part) for part in error.absolute_path)
        raise ConfigError(f"synthesis.{name}.{key}: {error.message}")
    block = {**getattr(settings_class, "PRESETS", {}).get(block.get("preset"), {}), **block}
    # integers are valid numbers; the dataclass keeps them as floats where it declares floats
    hints = typing.get_type_hints(settings_class)
    typed = {k: float(v) if hints[k] is float else v for k, v in block.items()}
    return settings_class(**typed)


def check_synthesis(synthesis: Mapping[str, Any]) -> dict[str, Any]:
    """Check the config's `synthesis` section at parse time: import its plugins, resolve
    every method it runs and validate every method block. Returns each method's settings."""
    load_plugins(synthesis["plugins"])
    for name in synthesis["methods"]:
        method_class(name)
    blocks = {key: value for key, value in synthesis.items() if isinstance(value, dict)}
    for key, block in blocks.items():
        if key not in REGISTRY:
            raise ConfigError(
                f"synthesis.{key}: neither a setting of synthesis nor a method; methods: "
                f"{', '.join(REGISTRY)}"
            )
        method_settings(key, block)  # a block of a method not run now is checked too
    resolved = {name: method_settings(name, blocks.get(name)) for name in synthesis["methods"]}
    for name, settings in resolved.items():  # a setting may add inputs (`required_inputs`)
        check_input_names(name, method_class(name).required_inputs(settings))
    return resolved


def is_plugin(name: str) -> bool:
    """Whether method `name` comes from a plugin module (which its jobs must import too)."""
    return not method_class(name).__module__.startswith("facetviz.")
