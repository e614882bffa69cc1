"""One synthesis job: every facet of a neuron optimized as one batch, written as PNGs + HDF5."""

from __future__ import annotations

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


def synthesize_neuron(
    network: Network,
    facets_path: str | Path,
    settings: dict[str, Any],
    seed: int,
    out_dir: str | Path,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    facets = read_facets(facets_path)
    neuron = facets["neuron"]
    network.to(device)
    init = torch.from_numpy(facets["mean_images"]).to(device)
    target = Unit(neuron["layer"], neuron["unit"], neuron.get("spatial", "center"))
    objective = batch_objective(network, [target] * len(init))
    ascent = AscentSettings(
        **{key: settings[key] for key in ("steps", "step_size", "tv_weight", "jitter")}
    )
    log.info(
        "%s: optimizing %d facet images, %d steps, on %s",
        neuron["name"],
        len(init),
        ascent.steps,
        device,
    )
    images, trace = ascend(objective, init, ascent, seed)
    with torch.no_grad():
        start_values = objective(init).cpu().numpy()
        final_values = objective(images).cpu().numpy()
    images_np = images.cpu().numpy()
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        for facet, image in enumerate(images_np):
            to_pil(image).save(tmp / f"facet_{facet:02d}.png")
        with h5py.File(tmp / "images.h5", "w") as out:
            out["images"] = images_np
            out["init"] = facets["mean_images"]
            out["trace"] = trace.numpy()
            out["activation_init"] = start_values
            out["activation_final"] = final_values
    log.info(
        "%s: activation from mean images %s -> after synthesis %s",
        neuron["name"],
        " ".join(f"{v:.2f}" for v in start_values),
        " ".join(f"{v:.2f}" for v in final_values),
    )
    return {"activation_init": start_values.tolist(), "activation_final": final_values.tolist()}
