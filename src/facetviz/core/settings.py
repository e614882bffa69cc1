"""Typed settings: each config section a stage reads, as a frozen dataclass built once.

The schema (workflow/schemas/config.schema.yaml) holds the defaults of these sections and fills
them in before any job starts, so the dataclasses here have none: a missing key means the config
never passed the schema, which is a bug, not a default; a test fails for a field the schema
does not document with a default. (A synthesis method's settings are the exception: the
method's own dataclass holds its defaults, `synthesis.methods`.) What a `null` means depends on
the dataset's or the model's kind; those meanings are written once, here, as properties of the
typed section (`DatasetSettings.input_size`, `ModelSettings.normalization`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, fields, replace
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

from facetviz.core.errors import ConfigError, FacetvizError

T = TypeVar("T")


def from_section(cls: type[T], section: Mapping[str, Any], name: str) -> T:
    """`cls` from a validated config section; keys `cls` does not declare are ignored.

    Only a field with a default may be absent: one whose key the schema deliberately leaves
    unfilled (see `DatasetSettings.on_unreadable`).
    """
    declared = fields(cls)  # type: ignore[arg-type]
    missing = [f.name for f in declared if f.name not in section and f.default is MISSING]
    if missing:
        raise FacetvizError(
            f"the settings of {name} lack {', '.join(missing)}: the config did not pass the "
            "schema (run the stage through snakemake, which validates it)"
        )
    return cls(**{f.name: section[f.name] for f in declared if f.name in section})


@dataclass(frozen=True)
class Neuron:
    """One visualized neuron of `layer`, read by `spatial` where the layer is a conv map: a
    `unit`, or (docs/design.md §12) a `group` of (unit, weight) pairs, a `direction` (.npy
    file), a `probe` or a latent of an `sae` (by index, `latent`, or by firing rank,
    `latent_rank`), with Lucid's `cosine_power` for directions and probes.

    `class_index` is the class whose images are clustered (select: label; resolved from a name
    or the unit index at parse time), None for select: top. `units` is the size of the layer.
    """

    name: str
    layer: str
    unit: int | None
    spatial: str
    select: str
    class_index: int | None = None  # derived at parse time, not a config default
    units: int | None = None
    group: tuple[tuple[int, float], ...] | None = None
    direction: str | None = None
    probe: str | None = None
    sae: str | None = None
    latent: int | None = None
    latent_rank: int | None = None
    cosine_power: float = 0.0

    @property
    def is_class_unit(self) -> bool:
        return self.select == "label"

    @property
    def kind(self) -> str:
        """unit, group, direction, probe or sae."""
        named = [k for k in ("group", "direction", "probe", "sae") if getattr(self, k)]
        return named[0] if named else "unit"

    @property
    def label(self) -> str:
        """How the neuron reads its layer, for figures: `classifier.2[3]`, `classifier.2[3 -
        0.5×7]`, `features.7 · probe sneaker`, `classifier.2 · sae fc latent 17`."""
        if self.kind == "unit":
            return f"{self.layer}[{self.unit}]"
        if self.kind == "group":
            terms = " + ".join(f"{w:g}×{u}" for u, w in self.group or ())
            return f"{self.layer}[{terms.replace('+ -', '- ')}]"
        if self.kind == "sae":  # a latent by rank gets its index in the facets stage
            latent = self.latent if self.latent is not None else f"ranked {self.latent_rank}"
            return f"{self.layer} · sae {self.sae} latent {latent}"
        named = self.probe if self.kind == "probe" else Path(str(self.direction)).stem
        return f"{self.layer} · {self.kind} {named}"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Neuron:
        """From the config's (resolved) neuron, where the class is under `class`."""
        group = data.get("group")
        return cls(
            name=data["name"],
            layer=data["layer"],
            unit=None if data.get("unit") is None else int(data["unit"]),
            spatial=data["spatial"],
            select=data["select"],
            class_index=data.get("class"),
            units=data.get("units"),
            group=None if group is None else tuple((int(u), float(w)) for u, w in group),
            **{key: data[key] for key in (*_NAMED, *_INDICES) if data.get(key) is not None},
            cosine_power=float(data.get("direction_cosine_power") or 0.0),
        )

    def to_dict(self) -> dict[str, Any]:
        # the keys of a readout only where set: a unit neuron's dict (and so its facet file and
        # the rules' params) is the one it was before readouts existed
        readout = {key: getattr(self, key) for key in _NAMED if getattr(self, key)}
        readout |= {key: getattr(self, key) for key in _INDICES if getattr(self, key) is not None}
        if self.group:
            readout["group"] = [list(pair) for pair in self.group]
        if self.cosine_power:
            readout["direction_cosine_power"] = self.cosine_power
        return {
            "name": self.name,
            "layer": self.layer,
            "unit": self.unit,
            "spatial": self.spatial,
            "select": self.select,
            "class": self.class_index,
            "units": self.units,
        } | readout


# a readout's keys in a neuron's dict: names (of a file, a probe, an SAE) and latent indices
_NAMED = ("direction", "probe", "sae")
_INDICES = ("latent", "latent_rank")


class Section:
    """A config section as typed settings; `section` names it in messages."""

    section: ClassVar[str]

    @classmethod
    def from_config(cls, values: Mapping[str, Any]) -> Self:
        return from_section(cls, values, cls.section)

    @classmethod
    def of(cls, values: Self | Mapping[str, Any]) -> Self:
        """`values` when typed already, else built from the validated section: for the
        workflow's parse-time entry points (common.smk), which hold the config's dicts."""
        return values if isinstance(values, cls) else cls.from_config(values)


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
    pool: str  # none, mean, max or pyramid: facets/pooling.py


@dataclass(frozen=True)
class TrainSettings(Section):
    section = "model.train"
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float


# ImageNet's per-channel statistics: what torchvision's trained weights expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelSettings(Section):
    section = "model"
    kind: str
    arch: str | None  # torchvision only
    factory: str | None  # custom only, called with kwargs
    kwargs: Mapping[str, Any]
    weights: str | None  # see models.weights_file
    num_classes: int | None  # torchvision only; None: the architecture's own
    mean: Sequence[float] | None  # None: the kind's convention (normalization)
    std: Sequence[float] | None
    width: int  # embedded only, as is train
    train: TrainSettings

    @classmethod
    def from_config(cls, values: Mapping[str, Any]) -> Self:
        model = from_section(cls, values, cls.section)  # checks that `train` is there too
        return replace(model, train=TrainSettings.from_config(values["train"]))

    def normalization(self, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(mean, std) per channel: the config's, else what the model kind conventionally uses
        (ImageNet's for torchvision weights; 0.5 for ours, which train on [-1, 1])."""
        if self.kind == "torchvision":
            mean, std = IMAGENET_MEAN, IMAGENET_STD
        else:
            mean, std = (0.5,), (0.5,)
        # `or`: an empty list, which the schema allows, means the default too
        mean = tuple(self.mean or mean)
        std = tuple(self.std or std)
        if len(mean) == 1:
            mean = mean * channels
        if len(std) == 1:
            std = std * channels
        if len(mean) != channels or len(std) != channels:
            raise ConfigError(
                f"model.mean/model.std: need 1 or {channels} values (one per input channel), "
                f"got {len(mean)} and {len(std)}"
            )
        return mean, std


@dataclass(frozen=True)
class DatasetKind:
    """What a dataset kind means where the config leaves a value null."""

    image_size: int
    channels: int
    split: str  # the split visualized
    splits: tuple[str, ...]
    training_splits: tuple[str, str]  # (fit, evaluation) for the embedded model and the oracle


DATASET_KINDS = {
    "fashion_mnist": DatasetKind(28, 1, "train", ("train", "test"), ("train", "test")),
    # Fashion-MNIST's garments in colour scenes (data/scenes.py): a 40 px canvas keeps conv3 of
    # the embedded CNN at 64 x 10 x 10 and its training about twice 28 px's cost
    "fashion_scenes": DatasetKind(40, 3, "train", ("train", "test"), ("train", "test")),
    # ImageNet's evaluation input; an ImageFolder has no test split, so part of it is held out
    "image_folder": DatasetKind(224, 3, "all", ("all", "fit", "holdout"), ("fit", "holdout")),
}
# What fashion_scenes' keys mean when absent (the schema's x-default; a test holds them equal).
SCENE_DEFAULTS: dict[str, Any] = {"scene_seed": 0, "garment_scale": (0.45, 0.8)}
# ImageNet's evaluation resize (256 px before a 224 px centre crop), as a ratio.
DEFAULT_RESIZE_RATIO = 256 / 224


@dataclass(frozen=True)
class DatasetSettings(Section):
    section = "dataset"
    kind: str
    root: str | None
    split: str | None  # None: the kind's (visualized_split)
    image_size: int | None  # None: the kind's (input_size)
    resize: int | None  # image_folder only; None: resize_side
    channels: int | None  # None: the kind's (input_channels)
    label_map: Mapping[str, list[str]] | None
    max_images: int | None
    holdout: float
    workers: int
    # The schema fills in no default here, so that the params of runs made before the key
    # existed stay the same and nothing reruns: absent means None, which means "error" (the
    # schema's documented `x-default`).
    on_unreadable: str | None = None
    # Left unfilled by the schema for the same reason: absent means None, which means True.
    download: bool | None = None
    # fashion_scenes only, unfilled for the same reason: None means SCENE_DEFAULTS' value.
    scene_seed: int | None = None
    garment_scale: Sequence[float] | None = None

    def __post_init__(self) -> None:
        # the schema refuses other kinds; this catches settings made past it
        if self.kind not in DATASET_KINDS:
            raise ConfigError(
                f"dataset.kind: unknown kind {self.kind!r}; use {' or '.join(DATASET_KINDS)}"
            )

    @property
    def kind_defaults(self) -> DatasetKind:
        return DATASET_KINDS[self.kind]

    @property
    def input_size(self) -> int:
        """Side of the square model input."""
        return self.image_size or self.kind_defaults.image_size

    @property
    def input_channels(self) -> int:
        return self.channels or self.kind_defaults.channels

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.input_channels, self.input_size, self.input_size)

    @property
    def resize_side(self) -> int:
        """image_folder: the shorter side an image is resized to before the centre crop."""
        return self.resize or round(self.input_size * DEFAULT_RESIZE_RATIO)

    @property
    def visualized_split(self) -> str:
        return self.split or self.kind_defaults.split

    @property
    def training_splits(self) -> tuple[str, str]:
        """The (fit, evaluation) splits a network trained on this dataset uses."""
        return self.kind_defaults.training_splits

    @property
    def unreadable_policy(self) -> str:
        """What the forward pass does with an image that cannot be decoded: error or skip."""
        return self.on_unreadable or "error"

    @property
    def scenes_seed(self) -> int:
        """fashion_scenes: the seed of every scene (dataset.scene_seed; not the run's seed)."""
        return SCENE_DEFAULTS["scene_seed"] if self.scene_seed is None else self.scene_seed

    @property
    def garment_scale_range(self) -> tuple[float, float]:
        """fashion_scenes: the smallest and largest garment side, as shares of the canvas's."""
        low, high = self.garment_scale or SCENE_DEFAULTS["garment_scale"]
        return float(low), float(high)

    @property
    def download_allowed(self) -> bool:
        """Fashion-MNIST: whether a job may download it when no copy is found (dataset.download)."""
        return self.download is not False


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
    updates: int  # the generator's training budget, in batches
    epochs: float | None  # where set, passes over the images instead (`updates` then unused)
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
    dae_updates: int
    dae_epochs: float | None


@dataclass(frozen=True)
class PriorCheckSettings(Section):
    """The trained generator's quality check (rule generator_metrics): minimums of its figures
    on the test split, and what falling below one does (warn or stop)."""

    section = "priors.check"
    accuracy: float  # the oracle's accuracy on the reconstructions, where the run has an oracle
    code_cosine: float  # mean cosine of E(G(E(x))) to E(x)
    on_poor: str  # warn | stop
