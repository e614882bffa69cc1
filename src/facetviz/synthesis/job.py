"""One synthesis job: every facet of a batch of neurons optimized with one method as one tensor,
each image with its own objective, written per neuron as PNGs + HDF5."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from PIL import Image

from facetviz.facets import read_facets
from facetviz.io import atomic_path
from facetviz.models import Network
from facetviz.progress import log
from facetviz.synthesis.methods import Task, method_settings, run_method
from facetviz.synthesis.objectives import Unit, batch_objective


def to_pil(image: np.ndarray) -> Image.Image:
    """[C, H, W] in [0, 1] -> an 8-bit grayscale or RGB image."""
    array = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
    return (
        Image.fromarray(array[0], "L")
        if array.shape[0] == 1
        else Image.fromarray(array.transpose(1, 2, 0), "RGB")
    )


def image_seed(seed: int, neuron: str, facet: int) -> int:
    """A seed per facet image from the run's seed and the neuron's name: an image's random draws
    do not depend on which other neurons share its job."""
    digest = hashlib.sha256(f"{seed}/{neuron}/{facet}".encode()).digest()
    return int.from_bytes(digest[:7], "little")


def _chunks(sizes: Sequence[int], batch_size: int) -> list[list[int]]:
    """Consecutive neurons grouped so that a group has at most `batch_size` images (a neuron's
    images stay together: the diversity term compares them)."""
    chunks: list[list[int]] = [[]]
    images = 0
    for neuron, size in enumerate(sizes):
        if chunks[-1] and images + size > batch_size:
            chunks.append([])
            images = 0
        chunks[-1].append(neuron)
        images += size
    return chunks


def synthesize_batch(
    network: Network,
    facets_paths: Sequence[str | Path],
    method: str,
    settings: dict[str, Any],
    seed: int,
    out_dir: str | Path,
    device: torch.device | str = "cpu",
) -> dict[str, dict[str, list[float]]]:
    """Synthesize every facet of the given neurons with `method`; write `out_dir/<neuron>/`.

    `settings` is the config's `synthesis` section plus `facet_layer`. Images are optimized
    `batch_size` at a time; each image has its own seed, so its result does not depend on the
    neurons it shares a job or a batch with.
    """
    method_cfg = method_settings(method, settings.get(method))
    facets = [read_facets(path) for path in facets_paths]
    network.to(device).module.eval()
    for parameter in network.module.parameters():
        parameter.requires_grad_(False)  # gradients are for the pixels only
    results: dict[str, dict[str, list[float]]] = {}
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        sizes = [len(f["mean_images"]) for f in facets]
        for chunk in _chunks(sizes, settings.get("batch_size", 256)):
            results.update(
                _synthesize_chunk(
                    network, [facets[i] for i in chunk], method, method_cfg, settings, seed,
                    tmp, device,
                )
            )  # fmt: skip
    return results


def _facet_anchors(
    facets: list[dict[str, Any]], device: torch.device | str
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """For mfv's facet-keeping term: each image's facet centroid code (None where a facet file
    predates code_centroids; the term says so) and its unit's mean activation over the images
    that were clustered."""
    scales = [
        np.full(len(f["mean_images"]), f["unit_values"][f["assignment"] >= 0].mean())
        for f in facets
    ]
    unit_scales = torch.from_numpy(np.concatenate(scales).astype(np.float32)).to(device)
    if any("code_centroids" not in facet for facet in facets):
        return None, unit_scales
    codes = torch.from_numpy(np.concatenate([f["code_centroids"] for f in facets]))
    return codes.to(device), unit_scales


def _synthesize_chunk(
    network: Network,
    facets: list[dict[str, Any]],
    method: str,
    method_cfg: dict[str, Any],
    settings: dict[str, Any],
    seed: int,
    out_dir: Path,
    device: torch.device | str,
) -> dict[str, dict[str, list[float]]]:
    units, groups, seeds, class_units, start = [], [], [], [], 0
    for facet in facets:
        neuron = facet["neuron"]
        count = len(facet["mean_images"])
        units += [Unit(neuron["layer"], neuron["unit"], neuron.get("spatial", "center"))] * count
        seeds += [image_seed(seed, neuron["name"], index) for index in range(count)]
        class_units += [neuron.get("select") == "label"] * count
        groups.append(slice(start, start + count))
        start += count
    facet_codes, unit_scales = _facet_anchors(facets, device)
    task = Task(
        units=units,
        mean_images=torch.from_numpy(np.concatenate([f["mean_images"] for f in facets])).to(device),
        groups=groups,
        generators=[torch.Generator().manual_seed(s) for s in seeds],
        facet_layer=settings["facet_layer"],
        class_units=class_units,
        facet_codes=facet_codes,
        unit_scales=unit_scales,
    )
    names = [f["neuron"]["name"] for f in facets]
    log.info(
        "%s: %d facet images of %d neurons (%s) as one batch on %s",
        method,
        len(units),
        len(facets),
        ", ".join(names),
        device,
    )
    result, start_images = run_method(
        method,
        network,
        task,
        method_cfg,
        settings.get("steps_scale", 1.0),
        bool(settings.get("mixed_precision", False)),
    )
    activation = batch_objective(network, units)
    with torch.no_grad():
        start_values = activation(start_images).cpu().numpy()
        final_values = activation(result.images).cpu().numpy()
    images = result.images.cpu().numpy()
    starts = start_images.cpu().numpy()
    trace = result.trace.numpy()
    results = {}
    for facet, group, name in zip(facets, groups, names, strict=True):
        folder = out_dir / name
        folder.mkdir()
        for index, image in enumerate(images[group]):
            to_pil(image).save(folder / f"facet_{index:02d}.png")
        with h5py.File(folder / "images.h5", "w") as out:
            out["images"] = images[group]
            out["init"] = starts[group]
            out["trace"] = trace[:, group]
            out["activation_init"] = start_values[group]
            out["activation_final"] = final_values[group]
            out.attrs["method"] = method
            out.attrs["neuron"] = json.dumps(facet["neuron"])
        log.info(
            "%s %s: activation at start %s -> after synthesis %s",
            method,
            name,
            " ".join(f"{v:.2f}" for v in start_values[group]),
            " ".join(f"{v:.2f}" for v in final_values[group]),
        )
        results[name] = {
            "activation_init": start_values[group].tolist(),
            "activation_final": final_values[group].tolist(),
        }
    return results
