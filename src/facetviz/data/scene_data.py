"""The `fashion_scenes` dataset: Fashion-MNIST's images and labels, each garment drawn into a
colour scene by `scenes.SceneMaker`. It joins `datasets.DATASETS` when the package is imported.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from facetviz.core.settings import DatasetSettings
from facetviz.data.datasets import DATASETS, FashionMNISTData
from facetviz.data.scenes import SceneLayout, SceneMaker

# Rendered scenes are kept for the next epoch up to this many bytes per dataset (60,000 scenes
# at 40 px take 288 MB): rendering one costs about 0.1 ms, reading it back almost nothing.
SCENE_CACHE_BYTES = 1 << 30
SCENE_CHUNK = 512  # scenes rendered together: large enough that numpy's per-call cost vanishes


class FashionScenesData(FashionMNISTData):
    """Fashion-MNIST's images and labels, each garment tinted, scaled and placed on a textured
    RGB canvas of `dataset.image_size` px (`scenes.SceneMaker`). A scene depends on
    (dataset.scene_seed, split, image index) only, so the subset that `seed` draws
    (dataset.max_images) changes which scenes are loaded, never what one looks like.

    Scenes render in batches: a DataLoader's batch at once (`__getitems__`), and `pixels`.
    """

    def __init__(self, settings: DatasetSettings, split: str, seed: int) -> None:
        super().__init__(settings, split, seed)
        scale = settings.garment_scale_range
        self.scenes = SceneMaker(self.image_size, scale, settings.scenes_seed, split)
        self.description.update(
            kind="fashion_scenes", scene_seed=settings.scenes_seed, garment_scale=list(scale)
        )
        self.scenes_shape = (3, self.image_size, self.image_size)  # uint8 RGB, whatever channels
        shape = (len(self.indices), *self.scenes_shape)
        self._cached = int(np.prod(shape)) <= SCENE_CACHE_BYTES
        # np.empty: memory is only taken as scenes are written into it
        self._rendered = np.empty(shape if self._cached else (0,), dtype=np.uint8)
        self._is_rendered = np.zeros(len(self.indices), dtype=bool)

    def layout(self, position: int) -> SceneLayout:
        """Where the garment of the image at `position` lies on its canvas."""
        return self.scenes.layout(int(self.indices[position]))

    def scenes_at(self, positions: Sequence[int]) -> np.ndarray:
        """uint8 [n, 3, canvas, canvas]: the scenes at these positions, rendered together."""
        positions = np.asarray(positions, dtype=np.int64)
        if not self._cached:
            return self._render(positions)
        missing = np.unique(positions[~self._is_rendered[positions]])
        self._rendered[missing] = self._render(missing)
        self._is_rendered[missing] = True
        return self._rendered[positions]

    def _render(self, positions: np.ndarray) -> np.ndarray:
        """Scenes in chunks of SCENE_CHUNK: a batch's float32 intermediates stay small."""
        scenes = np.empty((len(positions), *self.scenes_shape), dtype=np.uint8)
        for start in range(0, len(positions), SCENE_CHUNK):
            chunk = positions[start : start + SCENE_CHUNK]
            scenes[start : start + len(chunk)] = self.scenes.render(
                self._images[chunk], self.indices[chunk]
            )
        return scenes

    def _as_input(self, scenes: np.ndarray) -> torch.Tensor:
        images = torch.from_numpy(scenes.astype(np.float32) / 255.0)
        if images.shape[1] != self.channels:  # dataset.channels: 1 asks for gray scenes
            images = images.mean(1, keepdim=True)
        return images

    def __getitems__(self, positions: list[int]) -> list[tuple[torch.Tensor, int, int, int]]:
        """A DataLoader's batch (torch calls this instead of __getitem__ per item)."""
        images = self._as_input(self.scenes_at(positions))
        return [
            (image, int(self.labels[p]), int(self.fine_labels[p]), int(self.indices[p]))
            for image, p in zip(images, positions, strict=True)
        ]

    def pixels(self, positions: Sequence[int]) -> torch.Tensor:
        if len(positions) == 0:
            return torch.empty((0, *self.image_shape))
        return self._as_input(self.scenes_at(positions))

    def _load(self, position: int) -> torch.Tensor:
        return self._as_input(self.scenes_at([position]))[0]


DATASETS["fashion_scenes"] = FashionScenesData
