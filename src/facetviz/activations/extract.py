"""One streaming forward pass over the dataset into one HDF5 file.

Layout of the file:
  codes                 [N, D] float16   the facet layer's output, flattened (chunked, compressed)
  layers/<layer>/<rule> [N, units] float32   every target layer, per spatial rule
                        (fc layers: rule 'value'; conv layers: 'center', 'max' and 'mean')
  labels, fine_labels, indices  [N] int64
  attrs: model, dataset, preprocessing, facet_layer, code_shape (the facet layer's output per
         image before flattening, e.g. [C, H, W]: what facets.pool pools over), target_layers,
         class and fine-class names, facetviz version (JSON strings where structured);
         skipped_images (JSON list of the files left out as unreadable, dataset.on_unreadable:
         skip) and skipped_count
Whole layers are stored, not single units, so adding a neuron in a stored layer reuses the file.

For datasets too large for one job the pass runs in shards (contiguous ranges of the dataset,
`extract(..., shard=(i, count))`), each written in this layout plus a `shard` attribute, and
`activation_shards.join_shards` copies them into one file indistinguishable from an unsharded
one. What can go wrong during the pass is caught in `activation_faults`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Subset

from facetviz import __version__
from facetviz.activations.faults import (
    FLOAT16_CODES,
    SKIPPED_COUNT_ATTR,
    Skips,
    listing,
    require_finite_batch,
)
from facetviz.activations.writer import BackgroundWriter
from facetviz.core.errors import FacetvizError
from facetviz.core.io import atomic_path, open_h5, require_h5_keys
from facetviz.core.progress import Progress, log
from facetviz.data.datasets import FacetDataset
from facetviz.model.networks import SPATIAL_RULES, Network, capture, unit_count, unit_values

CHUNK_BYTES = 1 << 20
STAGE = "activations"
CODE_SHAPE_ATTR = "code_shape"
SHARD_ATTR = "shard"


def shard_rows(n: int, index: int, count: int) -> range:
    """The i-th of `count` contiguous, near-equal ranges of `n` rows."""
    if not 0 <= index < count:
        raise FacetvizError(f"shard {index} does not exist: there are {count} shards (0-based)")
    if count > n:
        raise FacetvizError(
            f"activations.shards is {count} but the dataset has only {n} images: use at most {n}"
        )
    return range(index * n // count, (index + 1) * n // count)


def _rules_for(output: torch.Tensor) -> tuple[str, ...]:
    return SPATIAL_RULES if output.ndim == 4 else ("value",)


def extract(
    network: Network,
    dataset: FacetDataset,
    facet_layer: str,
    target_layers: Sequence[str],
    out_path: str | Path,
    batch_size: int = 256,
    workers: int = 0,
    device: torch.device | str = "cpu",
    shard: tuple[int, int] | None = None,
) -> None:
    """Run every image through `network` once; write codes and target layers to `out_path`.

    With `shard=(i, count)` only the i-th of `count` contiguous ranges of the dataset is run.
    """
    if len(dataset) == 0:
        raise FacetvizError("the dataset has no images (check dataset.label_map and max_images)")
    rows = shard_rows(len(dataset), *shard) if shard else range(len(dataset))
    network.to(device).module.eval()
    target_layers = list(dict.fromkeys(target_layers))
    name = f"activations shard {shard[0] + 1}/{shard[1]}" if shard else "activations"
    progress = Progress(name, len(rows), "images")
    skips = Skips(dataset, rows)
    images = dataset if shard is None else Subset(dataset, rows)
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as out:
        batches = skips.batches(images, batch_size, workers)
        _forward_pass(
            network, dataset, batches, facet_layer, target_layers, out, len(rows), device,
            progress,
        )  # fmt: skip
        skips.write_rows(out)
        if shard:
            out.attrs[SHARD_ATTR] = json.dumps(
                {"index": shard[0], "count": shard[1], "rows": [rows.start, rows.stop]}
            )
        out.attrs.update(_attributes(network, dataset, facet_layer, target_layers))
    log.info(
        "%s: %d images in %.1f s (%.0f images/s)",
        name,
        len(rows),
        progress.elapsed,
        len(rows) / max(progress.elapsed, 1e-9),
    )


def _forward_pass(
    network: Network,
    dataset: FacetDataset,
    batches: Iterator,
    facet_layer: str,
    target_layers: list[str],
    out: h5py.File,
    n: int,
    device: torch.device | str,
    progress: Progress,
) -> None:
    """Stream every batch through the network into the file's datasets (made at the first
    batch, when the layers' sizes are known); writes overlap the next forward pass. A batch
    with NaN or Inf stops it, naming the layer and the images."""
    with (
        BackgroundWriter() as writer,
        capture(network.module, [facet_layer, *target_layers]) as outputs,
        torch.inference_mode(),
    ):
        written = 0
        targets: dict[str, h5py.Dataset] = {}
        for pixels, _labels, _fine, index in batches:
            network(pixels.to(device))
            code_batch = outputs[facet_layer].flatten(1).to(torch.float16)
            require_finite_batch(dataset, index, written, {**outputs, FLOAT16_CODES: code_batch})
            if written == 0:
                codes, targets = _create_datasets(out, outputs, facet_layer, target_layers, n)
            stop = written + len(pixels)
            writer.put(codes, written, stop, code_batch.cpu().numpy())
            for key, target in targets.items():
                layer, rule = key.rsplit("/", 1)
                values = unit_values(outputs[layer], "center" if rule == "value" else rule)
                writer.put(target, written, stop, values.float().cpu().numpy())
            written = stop
            progress.update(len(pixels))
        writer.finish()


def _attributes(
    network: Network, dataset: FacetDataset, facet_layer: str, target_layers: list[str]
) -> dict[str, Any]:
    """What made the file: model, dataset, preprocessing, layers, class names, version."""
    return {
        "facetviz_version": __version__,
        "facet_layer": facet_layer,
        "target_layers": json.dumps(target_layers),
        "model": json.dumps(network.description),
        "dataset": json.dumps(dataset.description),
        "preprocessing": json.dumps(
            {
                "input_shape": list(dataset.image_shape),
                "mean": list(network.mean),
                "std": list(network.std),
                "pixel_range": [0, 1],
            }
        ),
        "class_names": json.dumps(list(dataset.label_space.class_names)),
        "fine_names": json.dumps(list(dataset.label_space.fine_names)),
        "has_fine_labels": dataset.label_space.has_fine_labels,
    }


def _create_datasets(
    out: h5py.File,
    outputs: dict[str, torch.Tensor],
    facet_layer: str,
    target_layers: list[str],
    n: int,
) -> tuple[h5py.Dataset, dict[str, h5py.Dataset]]:
    """Create the datasets sized from the first batch; return handles to write through. The
    codes' shape before flattening is recorded beside them (read back by `Activations`)."""
    code_shape = [int(size) for size in outputs[facet_layer].shape[1:]]
    out.attrs[CODE_SHAPE_ATTR] = json.dumps(code_shape)
    code_dim = int(np.prod(code_shape))
    rows = int(min(n, max(1, CHUNK_BYTES // (2 * code_dim))))
    codes = out.create_dataset(
        "codes",
        shape=(n, code_dim),
        maxshape=(None, code_dim),  # fewer rows when unreadable images are skipped
        dtype="float16",
        chunks=(rows, code_dim),
        compression="gzip",
        compression_opts=1,
        shuffle=True,
    )
    targets: dict[str, h5py.Dataset] = {}
    for layer in target_layers:
        units = unit_count(outputs[layer].shape[1:])
        rows = int(min(n, max(1, CHUNK_BYTES // (4 * units))))
        for rule in _rules_for(outputs[layer]):
            key = f"{layer}/{rule}"
            targets[key] = out.create_dataset(
                f"layers/{key}",
                shape=(n, units),
                maxshape=(None, units),
                dtype="float32",
                chunks=(rows, units),
            )
    return codes, targets


class Activations:
    """Read-only view of an activations file."""

    def __init__(self, path: str | Path) -> None:
        self.file = open_h5(path, STAGE)
        try:
            self._read_index()
        except BaseException:
            # nobody holds a view whose checks failed, so nobody else could close its file
            self.file.close()
            raise

    def _read_index(self) -> None:
        """Check the file's layout and read what every caller needs: labels, indices, names."""
        require_h5_keys(self.file, ["codes", "labels", "fine_labels", "indices", "layers"], STAGE)
        attrs = self.file.attrs
        self.labels = self.file["labels"][:]
        self.fine_labels = self.file["fine_labels"][:]
        self.indices = self.file["indices"][:]
        self.class_names: list[str] = json.loads(attrs["class_names"])
        self.fine_names: list[str] = json.loads(attrs["fine_names"])
        self.has_fine_labels = bool(attrs["has_fine_labels"])
        self.skipped_count = int(attrs.get(SKIPPED_COUNT_ATTR, 0))
        self.code_shape = self._code_shape()

    def _code_shape(self) -> tuple[int, ...] | None:
        """The facet layer's output per image before flattening: as recorded, or for a file
        from before it was recorded, a conv map [C, s, s] where the facet layer is also a
        stored conv layer (its C channels) and C*s*s is the code's size; else None."""
        recorded = self.file.attrs.get(CODE_SHAPE_ATTR)
        if recorded is not None:
            return tuple(json.loads(recorded))
        facet_layer = self.file.attrs.get("facet_layer")
        layer = self.file.get(f"layers/{facet_layer}") if facet_layer else None
        if layer is None or "mean" not in layer:  # not stored, or not a conv map
            return None
        channels, size = layer["mean"].shape[1], self.file["codes"].shape[1]
        side = math.isqrt(size // channels)
        return (channels, side, side) if channels * side * side == size else None

    def unit(self, layer: str, unit: int, spatial: str) -> np.ndarray:
        """The activation of one unit on every image."""
        values = self._layer(layer, spatial)[:, unit]
        self._refuse_non_finite(
            values, np.arange(len(values)), f"the values of {layer!r} unit {unit}"
        )
        return values

    def layer_values(self, layer: str, spatial: str) -> np.ndarray:
        """[N, units] every unit of `layer` (conv layers read by `spatial`) on every image."""
        values = self._layer(layer, spatial)[:]
        self._refuse_non_finite(values, np.arange(len(values)), f"the values of {layer!r}")
        return values

    def _layer(self, layer: str, spatial: str) -> h5py.Dataset:
        group = self.file.get(f"layers/{layer}")
        if group is None:
            raise FacetvizError(
                f"layer {layer!r} is not in {self.file.filename}: rerun the activations stage"
            )
        return group["value" if "value" in group else spatial]

    def codes(self, rows: np.ndarray) -> np.ndarray:
        """Codes of the given rows, in the order given, as float32."""
        # h5py reads only sorted, unique indices
        unique, inverse = np.unique(rows, return_inverse=True)
        codes = self.file["codes"][unique].astype(np.float32)[inverse]
        self._refuse_non_finite(codes, np.asarray(rows), "the codes")
        return codes

    def _refuse_non_finite(self, values: np.ndarray, rows: np.ndarray, what: str) -> None:
        """Refuse NaN or infinite activations (a file from before the activations stage checked
        them, or edited), naming the rows, rather than cluster or select by them."""
        bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
        if not bad.any():
            return
        rows = rows[bad]
        raise FacetvizError(
            f"{self.file.filename}: {what} are NaN or infinite in {len(rows)} rows: "
            f"{listing(rows.tolist())} (dataset indices {listing(self.indices[rows].tolist())}). "
            "These activations cannot be clustered: delete the file and rerun the activations "
            "stage, which stops at the first batch whose activations are not finite."
        )

    def attrs(self) -> dict[str, Any]:
        return dict(self.file.attrs)

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> Activations:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
