"""One synthesis job: every facet of a batch of neurons optimized by one method as one tensor,
each image with its own objective and seed, written per neuron as a `SynthesisRecord`."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from facetviz.core.errors import FacetvizError
from facetviz.core.io import atomic_path
from facetviz.core.progress import log
from facetviz.facets.record import FacetRecord
from facetviz.synthesis.methods import Method, Task
from facetviz.synthesis.objectives import Forward, Projection, Unit, units
from facetviz.synthesis.record import SynthesisRecord
from facetviz.synthesis.render import Result

Activations = dict[str, dict[str, list[float]]]


def image_seed(seed: int, neuron: str, facet: int) -> int:
    """A seed per facet image from the run's seed and the neuron's name: an image's random draws
    do not depend on which other neurons share its job."""
    digest = hashlib.sha256(f"{seed}/{neuron}/{facet}".encode()).digest()
    return int.from_bytes(digest[:7], "little")


def chunks(sizes: Sequence[int], batch_size: int) -> list[list[int]]:
    """Consecutive neurons grouped so that a group has at most `batch_size` images (a neuron's
    images stay together: the diversity term compares them)."""
    groups: list[list[int]] = [[]]
    images = 0
    for neuron, size in enumerate(sizes):
        if groups[-1] and images + size > batch_size:
            groups.append([])
            images = 0
        groups[-1].append(neuron)
        images += size
    return groups


def target_of(facet: FacetRecord) -> Unit | Projection:
    """What the neuron's images maximize: its unit, or its readout (model/readout.py)."""
    neuron, readout = facet.neuron, facet.readout_of()
    if readout is None:
        return Unit(neuron.layer, neuron.unit, neuron.spatial)
    return Projection(neuron.layer, readout, neuron.spatial)


def build_task(
    facets: Sequence[FacetRecord], seed: int, facet_layer: str, device: torch.device | str
) -> Task:
    """The task of these neurons' facets, in order, every image with its own generator."""
    units_, seeds, class_units, groups, scales = [], [], [], [], []
    for facet in facets:
        neuron, count, start = facet.neuron, facet.facet_count, len(units_)
        units_ += [target_of(facet)] * count
        seeds += [image_seed(seed, neuron.name, index) for index in range(count)]
        class_units += [neuron.is_class_unit] * count
        scales += [facet.unit_scale()] * count
        groups.append(slice(start, start + count))

    def stacked(arrays: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.concatenate(arrays)).to(device)

    return Task(
        units=units_,
        mean_images=stacked([f.mean_images for f in facets]),
        groups=groups,
        generators=[torch.Generator().manual_seed(s) for s in seeds],
        facet_layer=facet_layer,
        class_units=class_units,
        centroid_codes=stacked([f.code_centroids for f in facets]),
        unit_scales=torch.tensor(scales, dtype=torch.float32, device=device),
        nearest_images=stacked([f.nearest_images for f in facets]),
        records=list(facets),
    )


def synthesize_batch(
    method: Method,
    facets_paths: Sequence[str | Path],
    facet_layer: str,
    seed: int,
    out_dir: str | Path,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
) -> Activations:
    """Synthesize every facet of the given neurons with `method`; write `out_dir/<neuron>/`.

    Images are optimized `batch_size` at a time; each image has its own seed, so its random
    draws do not depend on the neurons it shares a job or a batch with.
    """
    facets = [FacetRecord.read(path) for path in facets_paths]
    network = method.context.network
    network.to(device).module.eval()
    for parameter in network.module.parameters():
        parameter.requires_grad_(False)  # gradients are for the images (or codes) only
    results: Activations = {}
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        for chunk in chunks([f.facet_count for f in facets], batch_size):
            part = [facets[i] for i in chunk]
            task = build_task(part, seed, facet_layer, device)
            log.info(
                "%s: %d facet images of %d neurons (%s) as one batch on %s",
                method.name,
                len(task.units),
                len(part),
                ", ".join(f.neuron.name for f in part),
                device,
            )
            result, start = method.run(task)
            check_finite(result, part, task, method.name)
            results.update(write_results(method, part, task, result, start, tmp))
    return results


def check_finite(result: Result, facets: Sequence[FacetRecord], task: Task, method: str) -> None:
    """Refuse a result with NaN or Inf (a model that overflows, a custom module): no image of
    such a job is written, and the error names the neuron, the facet, the method and the step."""
    bad = result.first_nonfinite()
    if bad is None:
        return
    image, step = bad
    position = next(i for i, group in enumerate(task.groups) if group.start <= image < group.stop)
    facet = image - task.groups[position].start
    when = "in the final image" if step >= len(result.trace) else f"at step {step}"
    raise FacetvizError(
        f"{method}: neuron {facets[position].neuron.name}, facet {facet}: the objective or the "
        f"image became non-finite (NaN or Inf) {when}. No image of this job was written. Check "
        "the model for overflow (e.g. synthesis.mixed_precision on CUDA) or lower the method's "
        "step size or learning rate."
    )


def write_results(
    method: Method,
    facets: Sequence[FacetRecord],
    task: Task,
    result: Result,
    start: torch.Tensor,
    out_dir: Path,
) -> Activations:
    """One `SynthesisRecord` per neuron under `out_dir`; returns the activations per neuron."""
    forward, objective = Forward(method.context.network), units(task.units)
    with torch.no_grad():
        start_values = forward(objective, start).cpu().numpy()
        final_values = forward(objective, result.images).cpu().numpy()
    images, starts, trace = result.images.cpu().numpy(), start.cpu().numpy(), result.trace.numpy()
    chains = result.samples if result.samples is not None else torch.empty(0, *images.shape)
    samples = chains.cpu().numpy()
    activations: Activations = {}
    for facet, group in zip(facets, task.groups, strict=True):
        name = facet.neuron.name
        SynthesisRecord(
            method=method.name,
            neuron=facet.neuron,
            images=images[group],
            init=starts[group],
            trace=trace[:, group],
            activation_init=start_values[group],
            activation_final=final_values[group],
            samples=samples[:, group],
        ).write(out_dir / name)
        log.info(
            "%s %s: activation at start %s -> after synthesis %s",
            method.name,
            name,
            " ".join(f"{v:.2f}" for v in start_values[group]),
            " ".join(f"{v:.2f}" for v in final_values[group]),
        )
        activations[name] = {
            "activation_init": start_values[group].tolist(),
            "activation_final": final_values[group].tolist(),
        }
    return activations
