"""One synthesis job: every facet of a batch of neurons optimized as one tensor, each image with
its own objective, written per neuron as PNGs + HDF5."""

from __future__ import annotations

import hashlib
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
from facetviz.synthesis.objectives import Unit, batch_objective
from facetviz.synthesis.render import AscentSettings, ascend


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


def synthesize_batch(
    network: Network,
    facets_paths: Sequence[str | Path],
    settings: dict[str, Any],
    seed: int,
    out_dir: str | Path,
    device: torch.device | str = "cpu",
) -> dict[str, dict[str, list[float]]]:
    """Synthesize every facet of the given neurons; write `out_dir/<neuron>/` for each."""
    neurons, inits, targets, seeds = [], [], [], []
    for path in facets_paths:
        facets = read_facets(path)
        neuron = facets["neuron"]
        neurons.append((neuron, facets["mean_images"]))
        inits.append(facets["mean_images"])
        unit = Unit(neuron["layer"], neuron["unit"], neuron.get("spatial", "center"))
        targets += [unit] * len(facets["mean_images"])
        seeds += [image_seed(seed, neuron["name"], f) for f in range(len(facets["mean_images"]))]
    network.to(device)
    init = torch.from_numpy(np.concatenate(inits)).to(device)
    objective = batch_objective(network, targets)
    ascent = AscentSettings(
        **{key: settings[key] for key in ("steps", "step_size", "tv_weight", "jitter")}
    )
    log.info(
        "optimizing %d facet images of %d neurons (%s) as one batch, %d steps, on %s",
        len(init),
        len(neurons),
        ", ".join(n["name"] for n, _ in neurons),
        ascent.steps,
        device,
    )
    images, trace = ascend(objective, init, ascent, seeds)
    with torch.no_grad():
        start_values = objective(init).cpu().numpy()
        final_values = objective(images).cpu().numpy()
    images_np = images.cpu().numpy()
    trace_np = trace.numpy()

    results = {}
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        start = 0
        for neuron, mean_images in neurons:
            part = slice(start, start + len(mean_images))
            start = part.stop
            folder = tmp / neuron["name"]
            folder.mkdir()
            for facet, image in enumerate(images_np[part]):
                to_pil(image).save(folder / f"facet_{facet:02d}.png")
            with h5py.File(folder / "images.h5", "w") as out:
                out["images"] = images_np[part]
                out["init"] = mean_images
                out["trace"] = trace_np[:, part]
                out["activation_init"] = start_values[part]
                out["activation_final"] = final_values[part]
            log.info(
                "%s: activation from mean images %s -> after synthesis %s",
                neuron["name"],
                " ".join(f"{v:.2f}" for v in start_values[part]),
                " ".join(f"{v:.2f}" for v in final_values[part]),
            )
            results[neuron["name"]] = {
                "activation_init": start_values[part].tolist(),
                "activation_final": final_values[part].tolist(),
            }
    return results
