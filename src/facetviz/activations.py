"""One streaming forward pass over the dataset into one HDF5 file.

Layout of the file:
  codes                 [N, D] float16   the facet layer's output, flattened (chunked, compressed)
  layers/<layer>/<rule> [N, units] float32   every target layer, per spatial rule
                        (fc layers: rule 'value'; conv layers: 'center', 'max' and 'mean')
  labels, fine_labels, indices  [N] int64
  attrs: model, dataset, preprocessing, facet_layer, target_layers, class and fine-class names,
         facetviz version (JSON strings where structured); skipped_images (JSON list of the
         files left out as unreadable, dataset.on_unreadable: skip) and skipped_count
Whole layers are stored, not single units, so adding a neuron in a stored layer reuses the file.

For datasets too large for one job the pass runs in shards (contiguous ranges of the dataset,
`extract(..., shard=(i, count))`), each written in this layout plus a `shard` attribute, and
`join_shards` copies them into one file that is indistinguishable from an unsharded one.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from facetviz import __version__
from facetviz.data import FacetDataset, SkipUnreadable
from facetviz.errors import FacetvizError
from facetviz.io import atomic_path, open_h5, require_h5_keys
from facetviz.models import SPATIAL_RULES, Network, capture, unit_count, unit_values
from facetviz.progress import Progress, log
from facetviz.train import loader

CHUNK_BYTES = 1 << 20
STAGE = "activations"
SHARD_ATTR = "shard"
SKIPPED_ATTR = "skipped_images"
SKIPPED_COUNT_ATTR = "skipped_count"
# attributes that differ between the shards of one pass (the join merges the skipped ones)
PER_SHARD_ATTRS = (SHARD_ATTR, SKIPPED_ATTR, SKIPPED_COUNT_ATTR)


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
    skips = _Skips(dataset, rows)
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
            _require_finite_batch(dataset, index, written, {**outputs, FLOAT16_CODES: code_batch})
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


class BackgroundWriter:
    """Writes array slices into HDF5 datasets on a thread, overlapping the next forward pass.

    The queue is bounded, so at most `depth` pending batches are held in memory. A failed write
    is raised in the caller at its next `put` or at `finish`.
    """

    def __init__(self, depth: int = 8) -> None:
        self._queue: queue.Queue[tuple[h5py.Dataset, int, int, np.ndarray] | None] = queue.Queue(
            maxsize=depth
        )
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="facetviz-h5-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:  # after a failure, drain without writing
                target, start, stop, values = item
                try:
                    target[start:stop] = values
                except BaseException as err:  # noqa: BLE001 - re-raised in the caller
                    self._error = err

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, target: h5py.Dataset, start: int, stop: int, values: np.ndarray) -> None:
        self._raise_if_failed()
        self._queue.put((target, start, stop, values))

    def finish(self) -> None:
        """Wait until every write is done; raise the first write error."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._raise_if_failed()

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        # on an error in the caller, stop the thread before the file closes under it
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


def _create_datasets(
    out: h5py.File,
    outputs: dict[str, torch.Tensor],
    facet_layer: str,
    target_layers: list[str],
    n: int,
) -> tuple[h5py.Dataset, dict[str, h5py.Dataset]]:
    """Create the datasets sized from the first batch; return handles to write through."""
    code_dim = int(np.prod(outputs[facet_layer].shape[1:]))
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


def join_shards(shard_paths: Sequence[str | Path], out_path: str | Path) -> None:
    """Copy the shards of one forward pass, in order, into one activations file at `out_path`."""
    shards = [open_h5(path, "activations_shard") for path in shard_paths]
    try:
        _check_shards(shards)
        first = shards[0]
        total = sum(len(shard["labels"]) for shard in shards)
        keys: list[str] = []
        first.visititems(
            lambda key, item: keys.append(key) if isinstance(item, h5py.Dataset) else None
        )
        progress = Progress("activations join", total, "rows")
        with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as out:
            for key in keys:
                source = first[key]
                target = out.create_dataset(
                    key,
                    shape=(total, *source.shape[1:]),
                    dtype=source.dtype,
                    chunks=source.chunks and (min(source.chunks[0], total), *source.chunks[1:]),
                    compression=source.compression,
                    compression_opts=source.compression_opts,
                    shuffle=source.shuffle,
                )
                start = 0
                for shard in shards:
                    part = shard[key]
                    step = part.chunks[0] * 16 if part.chunks else len(part)
                    for offset in range(0, len(part), max(step, 1)):
                        block = part[offset : offset + step]
                        target[start + offset : start + offset + len(block)] = block
                    start += len(part)
                if key == "codes":
                    progress.update(total)
            out.attrs.update({k: v for k, v in first.attrs.items() if k not in PER_SHARD_ATTRS})
            _record_skipped(out.attrs, [path for shard in shards for path in skipped_images(shard)])
    finally:
        for shard in shards:
            shard.close()
    log.info("activations join: %d shards, %d images", len(shards), total)


def _check_shards(shards: list[h5py.File]) -> None:
    """Refuse shards that are not the complete, contiguous output of one configuration."""
    first = shards[0]
    same = {k: v for k, v in first.attrs.items() if k not in PER_SHARD_ATTRS}
    layout = {key: (first[key].shape[1:], first[key].dtype) for key in ("codes", "labels")}
    expected_start = 0
    for position, shard in enumerate(shards):
        name = shard.filename
        if SHARD_ATTR not in shard.attrs:
            raise FacetvizError(f"{name} is not a shard of the activations stage: delete it")
        info = json.loads(shard.attrs[SHARD_ATTR])
        if info["index"] != position or info["count"] != len(shards):
            raise FacetvizError(
                f"{name} is shard {info['index']} of {info['count']}, expected {position} of "
                f"{len(shards)}: delete the shard files and rerun"
            )
        start, stop = info["rows"]
        read = stop - start - len(skipped_images(shard))
        if start != expected_start or read != len(shard["labels"]):
            raise FacetvizError(
                f"{name} holds rows {start}-{stop}, not the rows that follow the previous shard "
                f"(from {expected_start}): the dataset changed between shards; rerun them all"
            )
        expected_start = stop
        others = {k: v for k, v in shard.attrs.items() if k not in PER_SHARD_ATTRS}
        shapes = {key: (shard[key].shape[1:], shard[key].dtype) for key in layout}
        if others != same or shapes != layout:
            raise FacetvizError(
                f"{name} was made with other settings than {first.filename}: "
                "delete the shard files and rerun"
            )


class Activations:
    """Read-only view of an activations file."""

    def __init__(self, path: str | Path) -> None:
        self.file = open_h5(path, STAGE)
        require_h5_keys(self.file, ["codes", "labels", "fine_labels", "indices", "layers"], STAGE)
        attrs = self.file.attrs
        self.labels = self.file["labels"][:]
        self.fine_labels = self.file["fine_labels"][:]
        self.indices = self.file["indices"][:]
        self.class_names: list[str] = json.loads(attrs["class_names"])
        self.fine_names: list[str] = json.loads(attrs["fine_names"])
        self.has_fine_labels = bool(attrs["has_fine_labels"])
        self.skipped_count = int(attrs.get(SKIPPED_COUNT_ATTR, 0))

    def unit(self, layer: str, unit: int, spatial: str) -> np.ndarray:
        """The activation of one unit on every image."""
        group = self.file.get(f"layers/{layer}")
        if group is None:
            raise FacetvizError(
                f"layer {layer!r} is not in {self.file.filename}: rerun the activations stage"
            )
        rule = "value" if "value" in group else spatial
        values = group[rule][:, unit]
        self._refuse_non_finite(
            values, np.arange(len(values)), f"the values of {layer!r} unit {unit}"
        )
        return values

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
            f"{_listing(rows.tolist())} (dataset indices {_listing(self.indices[rows].tolist())}). "
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


FLOAT16_CODES = "codes (float16)"


def _require_finite_batch(
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
        f"batch from row {first_row} of the pass: {_listing(images)}. Nothing was written. {fix}"
    )


def _listing(items: list[Any], most: int = 10) -> str:
    """The first `most` items, comma-separated, and how many more there are."""
    text = ", ".join(str(item) for item in items[:most])
    return text + (f" and {len(items) - most} more" if len(items) > most else "")


def skipped_images(handle: h5py.File) -> list[str]:
    """The files a pass (or shard) left out as unreadable; [] for files from before skipping."""
    return json.loads(handle.attrs.get(SKIPPED_ATTR, "[]"))


def _record_skipped(attrs: h5py.AttributeManager, paths: list[str]) -> None:
    attrs[SKIPPED_ATTR] = json.dumps(paths)
    attrs[SKIPPED_COUNT_ATTR] = len(paths)


class _Skips:
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
                f"e.g. {_listing(skipped, 3)}: check dataset.root"
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
        _record_skipped(out.attrs, skipped)


def _shrink(item: h5py.Dataset | h5py.Group, rows: int) -> None:
    """Resize a dataset (or every dataset below a group) to its first `rows` rows."""
    if isinstance(item, h5py.Group):
        for child in item.values():
            _shrink(child, rows)
    else:
        item.resize(rows, axis=0)
