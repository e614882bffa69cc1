"""Datasets: Fashion-MNIST, its garments in colour scenes, and ImageFolder trees, with optional
merging of classes.

Every item is `(pixels, label, fine_label, index)`: pixels in [0, 1] at the model's input size
(normalization belongs to the model), the (possibly merged) class, the original class, and the
image's index in the full, unsubsampled dataset.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from facetviz.core.errors import ConfigError, FacetvizError
from facetviz.core.progress import log
from facetviz.core.settings import DatasetSettings
from facetviz.data.fashion_mnist import (
    FASHION_MNIST_CLASSES,
    IDX_FILES,
    find_fashion_mnist,
    idx_file,
    read_idx,
)

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}


@dataclass(frozen=True)
class LabelSpace:
    """Classes the model sees (`class_names`) and the original classes under them (`fine_names`)."""

    class_names: tuple[str, ...]
    fine_names: tuple[str, ...]
    fine_to_class: tuple[int, ...]  # -1: the fine class belongs to no class and is left out
    has_fine_labels: bool  # True when classes merge fine classes, so fine labels say more

    @classmethod
    def build(cls, fine_names: Sequence[str], label_map: dict[str, list[str]] | None) -> LabelSpace:
        fine_names = tuple(fine_names)
        if not label_map:
            return cls(fine_names, fine_names, tuple(range(len(fine_names))), False)
        position = {name: i for i, name in enumerate(fine_names)}
        fine_to_class = [-1] * len(fine_names)
        for class_index, (class_name, members) in enumerate(label_map.items()):
            for member in members:
                if member not in position:
                    raise ConfigError(
                        f"dataset.label_map.{class_name}: '{member}' is not a class of this "
                        f"dataset. Known classes: {', '.join(fine_names)}"
                    )
                if fine_to_class[position[member]] != -1:
                    raise ConfigError(
                        f"dataset.label_map: '{member}' is listed under two classes; "
                        "each fine class may belong to one class only."
                    )
                fine_to_class[position[member]] = class_index
        return cls(tuple(label_map), fine_names, tuple(fine_to_class), True)


class UnreadableImage(FacetvizError):
    """An image file that cannot be decoded (corrupt, truncated, not an image, unreadable)."""

    def __init__(self, path: Path, reason: BaseException) -> None:
        super().__init__(
            f"cannot read image {path}: {reason}. Replace or delete the file, or set "
            "dataset.on_unreadable: skip to leave such files out of the forward pass (each one "
            "is logged and recorded in activations.h5; training the embedded model still needs "
            "every file)"
        )
        self.path = path
        self.reason = reason


class FacetDataset(Dataset):
    """Shared behaviour; subclasses load one image's pixels in `_load`."""

    # what the forward pass does with an image `_load` cannot read (UnreadableImage): see
    # SkipUnreadable; image_folder datasets take it from dataset.on_unreadable
    on_unreadable = "error"

    def __init__(
        self,
        label_space: LabelSpace,
        fine_labels: np.ndarray,
        indices: np.ndarray,
        image_size: int,
        channels: int,
        description: dict[str, Any],
    ) -> None:
        mapped = np.asarray(label_space.fine_to_class)[fine_labels]
        keep = mapped >= 0  # images of fine classes that no class takes are left out
        self.label_space = label_space
        self.indices = np.asarray(indices, dtype=np.int64)[keep]
        self.fine_labels = np.asarray(fine_labels, dtype=np.int64)[keep]
        self.labels = mapped[keep].astype(np.int64)
        self.image_size = image_size
        self.channels = channels
        self.description = description

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)

    @property
    def num_classes(self) -> int:
        return len(self.label_space.class_names)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, int, int, int]:
        return (
            self._load(position),
            int(self.labels[position]),
            int(self.fine_labels[position]),
            int(self.indices[position]),
        )

    def pixels(self, positions: Sequence[int]) -> torch.Tensor:
        """Images at these positions (not dataset indices) as one [n, C, H, W] tensor."""
        if len(positions) == 0:
            return torch.empty((0, *self.image_shape))
        return torch.stack([self._load(int(p)) for p in positions])

    def positions_of(self, dataset_indices: Sequence[int]) -> np.ndarray:
        """Positions in this dataset of the given dataset indices (all must be present)."""
        lookup = {int(index): pos for pos, index in enumerate(self.indices)}
        try:
            return np.array([lookup[int(i)] for i in dataset_indices], dtype=np.int64)
        except KeyError as err:
            raise FacetvizError(
                f"dataset index {err.args[0]} is not in the configured dataset: the dataset "
                "changed since the activations were computed; rerun the pipeline."
            ) from None

    def source(self, position: int) -> str:
        """Where the image at `position` comes from, for messages: its file, or its index."""
        return (
            f"{self.description['kind']} {self.description['split']} image {self.indices[position]}"
        )

    def _load(self, position: int) -> torch.Tensor:
        raise NotImplementedError


class SkipUnreadable(Dataset):
    """`images` (a dataset or a Subset of one) where an unreadable image becomes a placeholder.

    The placeholder's index is -1 and its pixels zeros, so that it batches with the others; the
    forward pass drops it and records the file as skipped (activations.extract). Each skip is
    logged here with its reason, also from DataLoader worker processes.
    """

    def __init__(self, images: Dataset, image_shape: tuple[int, int, int]) -> None:
        self.images = images
        self.image_shape = image_shape

    def __len__(self) -> int:
        return len(self.images)  # type: ignore[arg-type]

    def __getitem__(self, position: int) -> tuple[torch.Tensor, int, int, int]:
        try:
            return self.images[position]
        except UnreadableImage as err:
            log.warning("skipped (dataset.on_unreadable: skip): %s: %s", err.path, err.reason)
            return torch.zeros(self.image_shape), -1, -1, -1


def _fit_to_model(image: torch.Tensor, image_size: int, channels: int) -> torch.Tensor:
    """[C, H, W] in [0, 1] -> the model's channel count and square size."""
    if image.shape[0] != channels:
        image = image.mean(0, keepdim=True) if channels == 1 else image.expand(channels, -1, -1)
    if image.shape[-1] != image_size or image.shape[-2] != image_size:
        image = F.interpolate(
            image[None], size=(image_size, image_size), mode="bilinear", align_corners=False
        )[0]
    return image.contiguous()


# --- Fashion-MNIST -------------------------------------------------------------------------


class FashionMNISTData(FacetDataset):
    def __init__(self, settings: DatasetSettings, split: str, seed: int) -> None:
        if split not in IDX_FILES:
            raise ConfigError(
                f"dataset.split: Fashion-MNIST has splits train and test, not {split!r}"
            )
        folder = find_fashion_mnist(settings.root, settings.download_allowed)
        images_stem, labels_stem = IDX_FILES[split]
        images = read_idx(idx_file(folder, images_stem))
        fine = read_idx(idx_file(folder, labels_stem)).astype(np.int64)
        indices = subsample(len(fine), settings.max_images, seed)
        self._images = images[indices]
        super().__init__(
            LabelSpace.build(FASHION_MNIST_CLASSES, settings.label_map),
            fine[indices],
            indices,
            settings.input_size,
            settings.input_channels,
            {"kind": "fashion_mnist", "root": str(folder), "split": split},
        )
        self._images = self._images[np.isin(indices, self.indices)]

    def _load(self, position: int) -> torch.Tensor:
        image = torch.from_numpy(self._images[position].astype(np.float32) / 255.0)[None]
        return _fit_to_model(image, self.image_size, self.channels)


# --- ImageFolder (ImageNet layout: root/<class>/<image>) -----------------------------------


def image_folder_root(root: str | None) -> Path:
    """dataset.root of an image_folder dataset, checked to be a folder."""
    if not root:
        raise ConfigError("dataset.root: an image_folder dataset needs the folder's path")
    if not Path(root).is_dir():
        raise ConfigError(
            f"dataset.root: {root} does not exist or is not a folder. An image_folder dataset is "
            "a folder with one sub-folder per class (ImageNet's train/ layout)."
        )
    return Path(root)


def class_dirs(root: Path) -> list[Path]:
    """The class folders of an ImageFolder tree, in class-index order."""
    return sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))


def image_files(folder: Path) -> Iterator[Path]:
    """The image files in `folder` and the folders below it, lazily: each folder's files before
    its sub-folders, so that a caller that stops at the first one (has_image) lists a flat class
    folder once. The one walk of a class folder, for the parse-time check and the job alike, so
    that the two agree on which classes have images.

    Links to folders below `folder` are not followed (links to files are, and `folder` itself
    may be a link). Without them a folder tree cannot hold a cycle, so the walk ends on any tree
    (`ln -s . a` in a class folder made a walk that followed links run for ever); it is also
    what the job's listing (Path.rglob) always did, so no existing dataset changes. Following
    them with a set of visited real paths would cost a stat per folder and still visit a folder
    reached by two links twice over. Unreadable folders hold no images, as for rglob.
    """
    pending = [os.fspath(folder)]
    while pending:
        subfolders = []
        try:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        subfolders.append(entry.path)
                    elif Path(entry.name).suffix.lower() in IMAGE_EXTENSIONS and entry.is_file():
                        yield Path(entry.path)
        except OSError:  # missing or unreadable: no images
            continue
        pending.extend(reversed(subfolders))  # depth first, in listing order


def scan_image_folder(root: Path) -> tuple[list[str], list[Path], np.ndarray]:
    folders = class_dirs(image_folder_root(str(root)))
    paths: list[Path] = []
    fine: list[int] = []
    for class_index, class_dir in enumerate(folders):
        files = sorted(image_files(class_dir))
        paths.extend(files)
        fine.extend([class_index] * len(files))
    if not paths:
        raise FacetvizError(f"dataset.root: no images found in class sub-folders of {root}")
    return [d.name for d in folders], paths, np.asarray(fine, dtype=np.int64)


@contextmanager
def open_bounded(path: Path, side: int) -> Iterator[Image.Image]:
    """`Image.open` for images of at most PIL's MAX_IMAGE_PIXELS once decoded, `side` being the
    shorter side the caller resizes to.

    PIL only warns between that limit (89 megapixels) and twice it, and would decode such an
    image whole (3 bytes a pixel, per DataLoader worker): a decompression bomb, or a scan no
    model input needs. A JPEG there is decoded reduced instead, by 2, 4 or 8 as its shorter side
    stays at least `side` (Image.draft: the decoder skips the detail, at a fraction of the cost);
    an image still above the limit is refused (DecompressionBombError, as PIL refuses above
    twice it), which dataset.on_unreadable decides about like any unreadable image.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # decided on below
        image = Image.open(path)
    try:
        limit = Image.MAX_IMAGE_PIXELS
        if limit and image.width * image.height > limit:
            size = image.size
            image.draft(None, (side, side))  # JPEG only; a no-op for other formats
            if image.width * image.height > limit:
                raise Image.DecompressionBombError(
                    f"{size[0]} x {size[1]} px is {size[0] * size[1] / 1e6:.3g} megapixels, more "
                    f"than the {limit / 1e6:.3g} megapixels decoded at most (PIL.Image."
                    "MAX_IMAGE_PIXELS, against decompression bombs); only a JPEG whose shorter "
                    "side is at least twice dataset.resize is decoded reduced"
                )
        yield image
    finally:
        image.close()


class ImageFolderData(FacetDataset):
    def __init__(self, settings: DatasetSettings, split: str, seed: int) -> None:
        root = image_folder_root(settings.root)
        names, paths, fine = scan_image_folder(root)
        indices = np.arange(len(paths))
        if split != "all":
            indices = holdout_split(len(paths), settings.holdout, seed)[split]
        indices = indices[subsample(len(indices), settings.max_images, seed)]
        self.resize = settings.resize_side
        super().__init__(
            LabelSpace.build(names, settings.label_map),
            fine[indices],
            indices,
            settings.input_size,
            settings.input_channels,
            {"kind": "image_folder", "root": str(root), "split": split, "resize": self.resize},
        )
        self._paths = [paths[i] for i in self.indices]
        self.on_unreadable = settings.unreadable_policy

    def source(self, position: int) -> str:
        return str(self._paths[position])

    def _load(self, position: int) -> torch.Tensor:
        path = self._paths[position]
        try:
            with open_bounded(path, self.resize) as image:
                image = image.convert("L" if self.channels == 1 else "RGB")
                scale = self.resize / min(image.size)
                size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
                image = image.resize(size, Image.BILINEAR)
                left = (image.width - self.image_size) // 2
                top = (image.height - self.image_size) // 2
                image = image.crop((left, top, left + self.image_size, top + self.image_size))
                array = np.asarray(image, dtype=np.float32) / 255.0
        # PIL raises OSError for most damage, SyntaxError or ValueError for some broken headers
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
            raise UnreadableImage(path, err) from err
        tensor = torch.from_numpy(array)
        return tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1).contiguous()


# --- selection helpers ---------------------------------------------------------------------


def subsample(n: int, max_images: int | None, seed: int) -> np.ndarray:
    """A seeded, sorted subset of range(n) of at most `max_images` (all when None)."""
    if not max_images or max_images >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_images, replace=False))


def holdout_split(n: int, share: float, seed: int) -> dict[str, np.ndarray]:
    """Seeded split of range(n) into 'fit' and 'holdout' (for training on an ImageFolder)."""
    order = np.random.default_rng(seed + 1).permutation(n)
    n_holdout = max(1, round(n * share)) if share > 0 else 0
    return {"fit": np.sort(order[n_holdout:]), "holdout": np.sort(order[:n_holdout])}


# fashion_scenes joins from data/scene_data.py (imported by the package), which builds on
# FashionMNISTData
DATASETS: dict[str, type[FacetDataset]] = {
    "fashion_mnist": FashionMNISTData,
    "image_folder": ImageFolderData,
}


def open_dataset(
    settings: DatasetSettings, split: str | None = None, seed: int = 0
) -> FacetDataset:
    """The configured dataset; `split` defaults to the one the config visualizes.

    Fashion-MNIST's splits (and its scenes') are train and test; an ImageFolder's are all, fit
    and holdout.
    """
    return DATASETS[settings.kind](settings, split or settings.visualized_split, seed)
