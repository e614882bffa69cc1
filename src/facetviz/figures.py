"""Figures: per neuron, its facet images above the real images of each facet; a run overview."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from facetviz.data import FacetDataset  # noqa: E402
from facetviz.facets import read_facets  # noqa: E402
from facetviz.io import atomic_path, open_h5  # noqa: E402


def _show(axis, image: np.ndarray) -> None:
    """Draw a [C, H, W] image in [0, 1] without ticks."""
    if image.shape[0] == 1:
        axis.imshow(image[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        axis.imshow(np.clip(image.transpose(1, 2, 0), 0, 1), interpolation="nearest")
    axis.set_xticks([])
    axis.set_yticks([])


def _read_synthesis(synthesis_dir: str | Path) -> dict[str, np.ndarray]:
    with open_h5(Path(synthesis_dir) / "images.h5", "synthesize") as handle:
        return {key: handle[key][:] for key in handle}


def _save(fig, out_path: str | Path) -> None:
    try:
        with atomic_path(out_path) as tmp:
            fig.savefig(
                tmp, format=Path(out_path).suffix.lstrip(".") or "png", dpi=110, bbox_inches="tight"
            )
    finally:
        plt.close(fig)


def neuron_figure(
    facets_path: str | Path,
    synthesis_dir: str | Path,
    dataset: FacetDataset,
    out_path: str | Path,
    examples: int = 4,
) -> None:
    """Row 1: the synthesized facet images; row 2: their mean-image starts; then real examples."""
    facets = read_facets(facets_path)
    synthesis = _read_synthesis(synthesis_dir)
    neuron = facets["neuron"]
    k = len(facets["sizes"])
    nearest_indices = [
        facets["dataset_indices"][row[row >= 0][:examples]] for row in facets["nearest"]
    ]
    rows = 2 + examples
    fig, axes = plt.subplots(rows, k, figsize=(1.3 * k, 1.4 * rows), squeeze=False)
    for facet in range(k):
        _show(axes[0, facet], synthesis["images"][facet])
        axes[0, facet].set_title(
            f"#{facet + 1} n={facets['sizes'][facet]}\n"
            f"a={synthesis['activation_final'][facet]:.1f}",
            fontsize=7,
        )
        _show(axes[1, facet], synthesis["init"][facet])
        real = dataset.pixels(dataset.positions_of(nearest_indices[facet])).numpy()
        for row in range(examples):
            if row < len(real):
                _show(axes[2 + row, facet], real[row])
            else:
                axes[2 + row, facet].axis("off")
    axes[0, 0].set_ylabel("facet image", fontsize=7)
    axes[1, 0].set_ylabel("mean image", fontsize=7)
    if examples:
        axes[2, 0].set_ylabel("real images", fontsize=7)
    unit = f"{neuron['layer']}[{neuron['unit']}]"
    fig.suptitle(f"{neuron['name']} ({unit}): {k} facets, largest first", fontsize=9)
    _save(fig, out_path)


def overview_figure(
    names: Sequence[str], synthesis_dirs: Sequence[str | Path], out_path: str | Path
) -> None:
    """One row per neuron: its facet images, largest facet first."""
    images = [_read_synthesis(d)["images"] for d in synthesis_dirs]
    k = max(len(i) for i in images)
    fig, axes = plt.subplots(len(names), k, figsize=(1.1 * k, 1.2 * len(names)), squeeze=False)
    for row, (name, neuron_images) in enumerate(zip(names, images, strict=True)):
        for col in range(k):
            if col < len(neuron_images):
                _show(axes[row, col], neuron_images[col])
            else:
                axes[row, col].axis("off")
        axes[row, 0].set_ylabel(name, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle("facet images per neuron (largest facet first)", fontsize=9)
    _save(fig, out_path)
