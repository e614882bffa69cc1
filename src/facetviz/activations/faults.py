"""What can go wrong during the forward pass, caught where it happens: images that
cannot be read (`dataset.on_unreadable: skip` leaves them out and records every one of them)
and layer outputs that turn NaN or infinite (the pass stops, naming the layer and the images).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from facetviz.core.errors import FacetvizError
from facetviz.core.progress import log
from facetviz.data.datasets import FacetDataset, SkipUnreadable
from facetviz.model.fit import loader

SKIPPED_ATTR = "skipped_images"
SKIPPED_COUNT_ATTR = "skipped_count"
FLOAT16_CODES = "codes (float16)"


def require_finite_batch(
    dataset: FacetDataset, index: torch.Tensor, first_row: int, tensors: dict[str, torch.Tensor]
) -> None:
    """Stop the pass at a batch whose layer outputs (or float16 codes) are NaN or infinite,
    naming the layer and the images. One host sync per batch, as the writes need anyway."""
    bad = {name: ~torch.isfinite(t.reshape(len(t), -1)).all(1) for name, t in tensors.items()}
    if not bool(torch.stack(list(bad.values())).any()):
        return
    name, rows = next((name, rows.cpu()) for name, rows in bad.items() if rows.any())
    images = [dataset.source(int(p)) for p in dataset.positions_of(index[rows].tolist())]
    what = f"the model's output at layer {name!r} is"
    fix = "Check the model and its weights (model.weights): they make non-finite values."
    if name == FLOAT16_CODES:
        what = "the codes of facets.layer exceed float16's range (65504), so they are"
        fix = "The codes are stored as float16: pick a facets.layer whose values are smaller."
    raise FacetvizError(
        f"activations: {what} NaN or infinite for {len(images)} of the {len(rows)} images of the "
        f"batch from row {first_row} of the pass: {listing(images)}. Nothing was written. {fix}"
    )


def listing(items: list[Any], most: int = 10) -> str:
    """The first `most` items, comma-separated, and how many more there are."""
    text = ", ".join(str(item) for item in items[:most])
    return text + (f" and {len(items) - most} more" if len(items) > most else "")


def skipped_images(handle: h5py.File) -> list[str]:
    """The files a pass (or shard) left out as unreadable; [] for files from before skipping."""
    return json.loads(handle.attrs.get(SKIPPED_ATTR, "[]"))


def record_skipped(attrs: h5py.AttributeManager, paths: list[str]) -> None:
    attrs[SKIPPED_ATTR] = json.dumps(paths)
    attrs[SKIPPED_COUNT_ATTR] = len(paths)


class Skips:
    """The images a pass leaves out because they cannot be read (dataset.on_unreadable: skip).

    `batches` drops them; `write_rows` writes the labels and indices of the images read and
    lists every skipped file in the attributes. With on_unreadable: error nothing is dropped:
    the first unreadable image stops the pass.
    """

    def __init__(self, dataset: FacetDataset, rows: range) -> None:
        self.dataset = dataset
        self.positions = np.arange(rows.start, rows.stop)
        self.read: list[np.ndarray] = []  # dataset indices of the images read, batch by batch

    def batches(
        self, images: Dataset, batch_size: int, workers: int
    ) -> Iterator[tuple[torch.Tensor, ...]]:
        if self.dataset.on_unreadable == "skip":
            images = SkipUnreadable(images, self.dataset.image_shape)
        for batch in loader(images, batch_size, workers):
            keep = batch[3] >= 0  # SkipUnreadable's placeholders have index -1
            if not bool(keep.all()):
                batch = [part[keep] for part in batch]
            self.read.append(batch[3].numpy())
            if len(batch[3]):
                yield tuple(batch)

    def write_rows(self, out: h5py.File) -> None:
        seen = np.concatenate(self.read) if self.read else np.empty(0, np.int64)
        read = np.isin(self.dataset.indices[self.positions], seen)
        skipped = [self.dataset.source(int(p)) for p in self.positions[~read]]
        if not read.any():
            raise FacetvizError(
                f"none of the {len(skipped)} images could be read (dataset.on_unreadable: skip), "
                f"e.g. {listing(skipped, 3)}: check dataset.root"
            )
        if skipped:  # the datasets were sized for every image: keep the rows written
            _shrink(out, int(read.sum()))
            log.warning(
                "left out %d of %d images as unreadable (dataset.on_unreadable: skip; each is "
                "logged above): listed in the %r attribute of the activations file",
                len(skipped),
                len(read),
                SKIPPED_ATTR,
            )
        out["labels"] = self.dataset.labels[self.positions[read]]
        out["fine_labels"] = self.dataset.fine_labels[self.positions[read]]
        out["indices"] = self.dataset.indices[self.positions[read]]
        record_skipped(out.attrs, skipped)


def _shrink(item: h5py.Dataset | h5py.Group, rows: int) -> None:
    """Resize a dataset (or every dataset below a group) to its first `rows` rows."""
    if isinstance(item, h5py.Group):
        for child in item.values():
            _shrink(child, rows)
    else:
        item.resize(rows, axis=0)
