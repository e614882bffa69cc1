"""Figures: per neuron, its facet images above the real images of each facet; a run overview."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from matplotlib.offsetbox import AnnotationBbox, OffsetImage  # noqa: E402

from facetviz.data import FacetDataset  # noqa: E402
from facetviz.facet_metrics import majority_classes  # noqa: E402
from facetviz.facets import read_facets  # noqa: E402
from facetviz.io import atomic_path, open_h5  # noqa: E402

THUMBNAIL_POINTS = 44  # mean images drawn about 0.6 inch wide, whatever their size


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
    majority = _majority_names(facets)
    rows = 2 + examples
    fig, axes = plt.subplots(rows, k, figsize=(1.3 * k, 1.4 * rows), squeeze=False)
    for facet in range(k):
        _show(axes[0, facet], synthesis["images"][facet])
        axes[0, facet].set_title(
            f"#{facet + 1} n={facets['sizes'][facet]}\n"
            f"a={synthesis['activation_final'][facet]:.1f}"
            + (f"\n{majority[facet]}" if majority else ""),
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


def _majority_names(facets: dict[str, Any]) -> list[str]:
    """Each facet's majority fine class, where the dataset has fine labels."""
    if not facets["has_fine_labels"]:
        return []
    classes = majority_classes(facets["assignment"], facets["fine_labels"])
    return [facets["fine_names"][c] for c in classes]


def embedding_figure(facets_path: str | Path, out_path: str | Path) -> None:
    """The 2-D embedding of a neuron's images coloured by facet, each facet's mean image drawn
    at its centroid: the figure to see facets at a glance."""
    facets = read_facets(facets_path)
    neuron = facets["neuron"]
    view, assignment = facets["embedding"], facets["assignment"]
    k = len(facets["sizes"])
    colours = plt.get_cmap("tab10" if k <= 10 else "tab20")
    majority = _majority_names(facets)
    fig, axis = plt.subplots(figsize=(7.5, 7.5))
    dropped = assignment < 0
    if dropped.any():
        axis.scatter(*view[dropped].T, s=4, c="lightgrey", label=f"dropped ({dropped.sum()})")
    for facet in range(k):
        members = assignment == facet
        label = f"#{facet + 1} n={members.sum()}" + (f" {majority[facet]}" if majority else "")
        axis.scatter(*view[members].T, s=4, color=colours(facet % colours.N), label=label)
    for facet, (centre, image) in enumerate(
        zip(facets["embedding_centroids"], facets["mean_images"], strict=True)
    ):
        picture = image[0] if image.shape[0] == 1 else np.clip(image.transpose(1, 2, 0), 0, 1)
        zoom = THUMBNAIL_POINTS / max(image.shape[1:])
        box = AnnotationBbox(
            OffsetImage(picture, cmap="gray", norm=Normalize(0, 1), zoom=zoom),
            centre,
            frameon=True,
            bboxprops={"edgecolor": colours(facet % colours.N), "linewidth": 2},
            pad=0.1,
        )
        axis.add_artist(box)
    axis.legend(fontsize=7, markerscale=3, loc="upper left", bbox_to_anchor=(1.01, 1))
    axis.set_xticks([])
    axis.set_yticks([])
    space = "t-SNE" if facets["space"] == "tsne" else "first two PCA components"
    unit = f"{neuron['layer']}[{neuron['unit']}]"
    axis.set_title(
        f"{neuron['name']} ({unit}): {len(view)} images, {space}; "
        "mean image of each facet at its centroid",
        fontsize=9,
    )
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
