"""A forward pass in shards (contiguous ranges of the dataset, for datasets of millions of images
on a cluster), joined into one activations file indistinguishable from an unsharded one."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import h5py

from facetviz.activations.extract import SHARD_ATTR
from facetviz.activations.faults import (
    SKIPPED_ATTR,
    SKIPPED_COUNT_ATTR,
    record_skipped,
    skipped_images,
)
from facetviz.core.errors import FacetvizError
from facetviz.core.io import atomic_path, open_h5
from facetviz.core.progress import Progress, log

# attributes that differ between the shards of one pass (the join merges the skipped ones)
PER_SHARD_ATTRS = (SHARD_ATTR, SKIPPED_ATTR, SKIPPED_COUNT_ATTR)


def join_shards(shard_paths: Sequence[str | Path], out_path: str | Path) -> None:
    """Copy the shards of one forward pass, in order, into one activations file at `out_path`."""
    shards: list[h5py.File] = []
    try:
        for path in shard_paths:  # one by one, so that a shard that fails to open closes the rest
            shards.append(open_h5(path, "activations_shard"))
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
            record_skipped(out.attrs, [path for shard in shards for path in skipped_images(shard)])
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
