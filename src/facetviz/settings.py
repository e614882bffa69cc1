"""Typed settings: each config section a stage reads, as a frozen dataclass built once.

The schema (workflow/schemas/config.schema.yaml) holds the defaults of these sections and fills
them in before any job starts, so the dataclasses here have none: a missing key means the config
never passed the schema, which is a bug, not a default. (A synthesis method's settings are the
exception: the method's own dataclass holds its defaults, `synthesis.methods`.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Self, TypeVar

from facetviz.errors import FacetvizError

T = TypeVar("T")


def from_section(cls: type[T], section: Mapping[str, Any], name: str) -> T:
    """`cls` from a validated config section; keys `cls` does not declare are ignored."""
    missing = [f.name for f in fields(cls) if f.name not in section]  # type: ignore[arg-type]
    if missing:
        raise FacetvizError(
            f"the settings of {name} lack {', '.join(missing)}: the config did not pass the "
            "schema (run the stage through snakemake, which validates it)"
        )
    return cls(**{f.name: section[f.name] for f in fields(cls)})  # type: ignore[arg-type]


@dataclass(frozen=True)
class Neuron:
    """One visualized unit: `unit` of `layer`, read by `spatial` where the layer is a conv map.

    `class_index` is the class whose images are clustered (select: label; resolved from a name
    or the unit index at parse time), None for select: top. `units` is the size of the layer.
    """

    name: str
    layer: str
    unit: int
    spatial: str
    select: str
    class_index: int | None = None  # derived at parse time, not a config default
    units: int | None = None

    @property
    def is_class_unit(self) -> bool:
        return self.select == "label"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Neuron:
        """From the config's (resolved) neuron, where the class is under `class`."""
        return cls(
            name=data["name"],
            layer=data["layer"],
            unit=int(data["unit"]),
            spatial=data["spatial"],
            select=data["select"],
            class_index=data.get("class"),
            units=data.get("units"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "layer": self.layer,
            "unit": self.unit,
            "spatial": self.spatial,
            "select": self.select,
            "class": self.class_index,
            "units": self.units,
        }


class Section:
    """A config section as typed settings; `section` names it in messages."""

    section: ClassVar[str]

    @classmethod
    def from_config(cls, values: Mapping[str, Any]) -> Self:
        return from_section(cls, values, cls.section)


@dataclass(frozen=True)
class FacetSettings(Section):
    section = "facets"
    layer: str
    k: int
    m: int
    pca_dims: int
    perplexity: float
    max_images: int | None
    top_n: int
    space: str
    min_size: int
    compare_spaces: bool
    coverage_min_share: float


@dataclass(frozen=True)
class TrainSettings(Section):
    section = "model.train"
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float


@dataclass(frozen=True)
class OracleSettings(Section):
    section = "oracle"
    epochs: int
    seed_offset: int
    min_accuracy: float
    max_images: int | None


@dataclass(frozen=True)
class SynthesisSettings(Section):
    """What every synthesis method shares; each method's own block is its settings class's."""

    section = "synthesis"

    steps_scale: float
    batch_size: int
    mixed_precision: bool


@dataclass(frozen=True)
class FigureSettings(Section):
    section = "figures"
    examples: int
    hidden_unit_facets: int
    max_rows: int


@dataclass(frozen=True)
class PriorSettings(Section):
    """How the learned priors train (rules generator and code_prior)."""

    section = "priors"
    code_layer: str | None  # null: the facet layer
    images: int | None  # training images (a seeded subset of the training split; null: all)
    epochs: float
    batch_size: int
    lr: float
    width: int
    pixel_loss: str
    pixel_weight: float
    feature_layer: str | None
    feature_weight: float
    code_weight: float
    adversarial_weight: float
    dae_sigma: float
    dae_hidden: int
    dae_epochs: float
