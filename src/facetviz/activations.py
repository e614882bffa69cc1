"""One streaming forward pass over the dataset into one HDF5 file.

Layout of the file:
  codes                 [N, D] float16   the facet layer's output, flattened (chunked, compressed)
  layers/<layer>/<rule> [N, units] float32   every target layer, per spatial rule
                        (fc layers: rule 'value'; conv layers: 'center', 'max' and 'mean')
  labels, fine_labels, indices  [N] int64
  attrs: model, dataset, preprocessing, facet_layer, target_layers, class and fine-class names,
         facetviz version (JSON strings where structured)
Whole layers are stored, not single units, so adding a neuron in a stored layer reuses the file.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from facetviz import __version__
from facetviz.data import FacetDataset
from facetviz.errors import FacetvizError
from facetviz.io import atomic_path, open_h5, require_h5_keys
from facetviz.models import SPATIAL_RULES, Network, capture, unit_count, unit_values
from facetviz.progress import Progress, log
from facetviz.train import loader

CHUNK_BYTES = 1 << 20
STAGE = "activations"


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
) -> None:
    """Run every image through `network` once; write codes and target layers to `out_path`."""
    n = len(dataset)
    if n == 0:
        raise FacetvizError("the dataset has no images (check dataset.label_map and max_images)")
    network.to(device).module.eval()
    target_layers = list(dict.fromkeys(target_layers))
    progress = Progress("activations", n, "images")
    with (
        atomic_path(out_path) as tmp,
        h5py.File(tmp, "w") as out,
        BackgroundWriter() as writer,
        capture(network.module, [facet_layer, *target_layers]) as outputs,
        torch.inference_mode(),
    ):
        written = 0
        targets: dict[str, h5py.Dataset] = {}
        for pixels, _labels, _fine, _index in loader(dataset, batch_size, workers):
            network(pixels.to(device))
            if written == 0:
                codes, targets = _create_datasets(out, outputs, facet_layer, target_layers, n)
            stop = written + len(pixels)
            code_batch = outputs[facet_layer].flatten(1).to(torch.float16)
            writer.put(codes, written, stop, code_batch.cpu().numpy())
            for key, target in targets.items():
                layer, rule = key.rsplit("/", 1)
                values = unit_values(outputs[layer], "center" if rule == "value" else rule)
                writer.put(target, written, stop, values.float().cpu().numpy())
            written = stop
            progress.update(len(pixels))
        writer.finish()
        out["labels"] = dataset.labels
        out["fine_labels"] = dataset.fine_labels
        out["indices"] = dataset.indices
        out.attrs.update(
            {
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
        )
    log.info(
        "activations: %d images in %.1f s (%.0f images/s)",
        n,
        progress.elapsed,
        n / max(progress.elapsed, 1e-9),
    )


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
                f"layers/{key}", shape=(n, units), dtype="float32", chunks=(rows, units)
            )
    return codes, targets


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

    def unit(self, layer: str, unit: int, spatial: str) -> np.ndarray:
        """The activation of one unit on every image."""
        group = self.file.get(f"layers/{layer}")
        if group is None:
            raise FacetvizError(
                f"layer {layer!r} is not in {self.file.filename}: rerun the activations stage"
            )
        rule = "value" if "value" in group else spatial
        return group[rule][:, unit]

    def codes(self, rows: np.ndarray) -> np.ndarray:
        """Codes of the given rows, in the order given, as float32."""
        # h5py reads only sorted, unique indices
        unique, inverse = np.unique(rows, return_inverse=True)
        return self.file["codes"][unique].astype(np.float32)[inverse]

    def attrs(self) -> dict[str, Any]:
        return dict(self.file.attrs)

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> Activations:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
