"""Parse-time checks of the dataset, cheap enough for ImageNet: no image is opened.

The workflow runs them (through config.check_run_config and config.check_dataset_files) before
any job starts, so that a wrong root, split, label map or class stops the run with a message
that names the config key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from facetviz.core.errors import ConfigError
from facetviz.core.settings import DEFAULT_RESIZE_RATIO, DatasetSettings
from facetviz.data.datasets import (
    IMAGE_EXTENSIONS,
    LabelSpace,
    class_dirs,
    image_files,
    image_folder_root,
)
from facetviz.data.fashion_mnist import (
    FASHION_MNIST_CLASSES,
    check_fashion_mnist_available,
    check_fashion_mnist_root,
)

# the kinds whose images and labels are Fashion-MNIST's (its scenes redraw the pixels only)
FASHION_MNIST_KINDS = ("fashion_mnist", "fashion_scenes")
MIN_GARMENT_SIDE = 8  # px: a smaller Fashion-MNIST garment loses its class


def input_spec(settings: DatasetSettings) -> tuple[tuple[int, int, int], tuple[str, ...]]:
    """(model input shape, class names) from the config alone, cheap enough for parse time."""
    return settings.input_shape, label_space(settings).class_names


def label_space(settings: DatasetSettings) -> LabelSpace:
    """The dataset's classes and fine classes from the config alone (the folders' names)."""
    if settings.kind in FASHION_MNIST_KINDS:
        fine_names: Sequence[str] = FASHION_MNIST_CLASSES
    else:
        root = image_folder_root(settings.root)
        fine_names = [d.name for d in class_dirs(root)]
        if not fine_names:
            raise ConfigError(
                f"dataset.root: {root} has no class folders. An image_folder dataset is "
                "root/<class>/<image> (ImageNet's train/ layout), not a folder of images."
            )
    return LabelSpace.build(fine_names, settings.label_map)


def has_image(folder: Path) -> bool:
    """Whether `folder` or a folder below it holds an image file, by the job's own walk
    (image_files: links to folders below it are not followed, so it ends on any tree). It stops
    at the first one, and os.scandir reads a directory in small batches: cheap even for
    ImageNet's folders."""
    return next(image_files(folder), None) is not None


def check_dataset(settings: DatasetSettings, classes: dict[int, str] | None = None) -> None:
    """The dataset's files are there, without opening an image.

    The split exists; Fashion-MNIST's root (when set) holds the IDX files; an ImageFolder root
    has class folders and images, every label_map class has a folder with images, and so does
    each class in `classes` (class index -> the config key that selects it, e.g. a neuron's).
    """
    kind, split = settings.kind, settings.split
    splits = settings.kind_defaults.splits
    _check_resize(settings)
    _check_scenes(settings)
    if split is not None and split not in splits:
        raise ConfigError(f"dataset.split: {kind} has splits {', '.join(splits)}, not {split!r}")
    if kind in FASHION_MNIST_KINDS:
        if settings.root:
            check_fashion_mnist_root(Path(settings.root))
        else:  # Debian's copy, an earlier download, or (where allowed) a download in a job
            check_fashion_mnist_available(settings.download_allowed)
        return
    root = image_folder_root(settings.root)
    folders = class_dirs(root)
    if not any(has_image(folder) for folder in folders):
        raise ConfigError(
            f"dataset.root: no images in class sub-folders of {root} ({len(folders)} folders; "
            f"image files end in {', '.join(sorted(IMAGE_EXTENSIONS))})"
        )
    _check_classes_have_images(root, folders, settings.label_map, classes or {})


def _check_scenes(settings: DatasetSettings) -> None:
    """The scene keys belong to fashion_scenes, and its garments fit on the canvas."""
    for key in ("scene_seed", "garment_scale"):
        if getattr(settings, key) is not None and settings.kind != "fashion_scenes":
            raise ConfigError(
                f"dataset.{key}: only dataset.kind fashion_scenes draws scenes; this run's "
                f"kind is {settings.kind}. Remove dataset.{key}, or set dataset.kind: "
                "fashion_scenes."
            )
    if settings.kind != "fashion_scenes":
        return
    (low, high), side = settings.garment_scale_range, settings.input_size
    if low > high:
        raise ConfigError(
            f"dataset.garment_scale: [{low}, {high}] is [smallest, largest] share of the "
            f"canvas; the smallest is larger. Use [{high}, {low}]."
        )
    if round(low * side) < MIN_GARMENT_SIDE:
        raise ConfigError(
            f"dataset.garment_scale: the smallest garment, {low} of the {side} px canvas, is "
            f"under {MIN_GARMENT_SIDE} px, too small to tell its class. Raise "
            f"dataset.garment_scale's first value to {MIN_GARMENT_SIDE / side:.2f} or more, or "
            "dataset.image_size."
        )


def _check_resize(settings: DatasetSettings) -> None:
    """An ImageFolder's resize is at least its image size: the centre crop of a smaller image
    would be padded with black, silently (PIL's crop pads outside the image)."""
    resize, size = settings.resize, settings.input_size
    if settings.kind == "image_folder" and resize is not None and resize < size:
        given = "as set" if settings.image_size else f"the default of {settings.kind}"
        raise ConfigError(
            f"dataset.resize: {resize} px is smaller than dataset.image_size, {size} px "
            f"({given}): the {size} px centre crop of the resized image would be padded with "
            f"black. Set dataset.resize: {size} or more, or leave it out "
            f"(dataset.image_size × 256/224 = {round(size * DEFAULT_RESIZE_RATIO)} px)."
        )


def _check_classes_have_images(
    root: Path,
    folders: list[Path],
    label_map: Mapping[str, list[str]] | None,
    classes: dict[int, str],
) -> None:
    """Each class that a run may select has a folder with images (check_dataset)."""
    groups = list((label_map or {folder.name: [folder.name] for folder in folders}).items())
    # every class of a label_map (they are few, and a neuron may select any of them); without
    # one, ImageNet's 1,000 folders: only those that `classes` names
    needed = (
        {i: f"dataset.label_map.{name}" for i, (name, _members) in enumerate(groups)}
        if label_map
        else classes
    )
    for index, key in sorted(needed.items()):
        name, members = groups[index]
        if not any(has_image(root / member) for member in members):
            raise ConfigError(
                f"{key}: class {name!r} has no images: {', '.join(str(root / m) for m in members)} "
                "holds no image files (links to folders inside it are not followed). Add images, "
                "or leave the class out."
            )
