"""The run's figures, each written as PNG and PDF (`out_paths`, the format from the suffix).

- facets figure (the paper's Figure 1): per neuron, its facet images in rank order above each
  facet's mean image and its real images nearest the centroid, with facet sizes;
- embedding figure: a neuron's images in 2-D, coloured by facet;
- methods figure: rows = neurons, columns = synthesis methods, each neuron's largest facet;
- overview and hidden-units figures: rows of facet images, one row per neuron;
- metrics figure: facet recovery per neuron and synthesis quality per method, as bars.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from matplotlib.offsetbox import AnnotationBbox, OffsetImage  # noqa: E402

from facetviz.core.io import atomic_path, read_json  # noqa: E402
from facetviz.core.settings import Neuron  # noqa: E402
from facetviz.facets.record import FacetRecord  # noqa: E402
from facetviz.synthesis.record import SynthesisRecord  # noqa: E402

if TYPE_CHECKING:  # the figure jobs that draw no dataset images need no torch (1.5 s each)
    from facetviz.data.datasets import FacetDataset

THUMBNAIL_POINTS = 44  # mean images drawn about 0.6 inch wide, whatever their size


def _show(axis, image: np.ndarray) -> None:
    """Draw a [C, H, W] image in [0, 1] without ticks."""
    if image.shape[0] == 1:
        axis.imshow(image[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        axis.imshow(np.clip(image.transpose(1, 2, 0), 0, 1), interpolation="nearest")
    axis.set_xticks([])
    axis.set_yticks([])


def _row_label(axis, neuron: Neuron) -> None:
    """A grid row's name and where the unit sits, left of the row."""
    label = f"{neuron.name}\n{neuron.label}"
    axis.set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")


Paths = Sequence[str | Path]


def save(fig, out_paths: Paths) -> None:
    """Write the figure in every format asked for (PNG for screens, PDF for papers)."""
    try:
        for out_path in out_paths:
            with atomic_path(out_path) as tmp:
                fig.savefig(
                    tmp,
                    format=Path(out_path).suffix.lstrip(".") or "png",
                    dpi=110,
                    bbox_inches="tight",
                )
    finally:
        plt.close(fig)


def unit_label(neuron: Neuron) -> str:
    """A neuron's name with where it sits: `bell_pepper (classifier.6[945])`, `sneaker
    (features.7 · probe sneaker)`."""
    return f"{neuron.name} ({neuron.label})"


def facets_figure(
    facets_path: str | Path,
    synthesis_dir: str | Path,
    dataset: FacetDataset,
    out_paths: Paths,
    examples: int = 4,
) -> None:
    """Row 1: the synthesized facet images; row 2: their mean-image starts; then real examples."""
    facets = FacetRecord.read(facets_path)
    synthesis = SynthesisRecord.read(synthesis_dir)
    k = facets.facet_count
    nearest = nearest_real_images(facets, dataset, examples)
    majority = facets.majority_names()
    rows = 2 + examples
    fig, axes = plt.subplots(rows, k, figsize=(1.3 * k, 1.4 * rows), squeeze=False)
    for facet in range(k):
        _show(axes[0, facet], synthesis.images[facet])
        axes[0, facet].set_title(
            f"#{facet + 1} n={facets.sizes[facet]}\n"
            f"a={synthesis.activation_final[facet]:.1f}"
            + (f"\n{majority[facet]}" if majority else ""),
            fontsize=7,
        )
        _show(axes[1, facet], synthesis.init[facet])
        real = nearest[facet]
        for row in range(examples):
            if row < len(real):
                _show(axes[2 + row, facet], real[row])
            else:
                axes[2 + row, facet].axis("off")
    axes[0, 0].set_ylabel("facet image", fontsize=7)
    axes[1, 0].set_ylabel("mean image", fontsize=7)
    if examples:
        axes[2, 0].set_ylabel("real images", fontsize=7)
    fig.suptitle(f"{unit_label(facets.neuron)}: {k} facets, largest first", fontsize=9)
    save(fig, out_paths)


def nearest_real_images(
    facets: FacetRecord, dataset: FacetDataset, examples: int
) -> list[np.ndarray]:
    """Per facet, its `examples` real images nearest the centroid, [n, C, H, W] in [0, 1]."""
    rows = [facets.dataset_indices[row[row >= 0][:examples]] for row in facets.nearest]
    return [dataset.pixels(dataset.positions_of(indices)).numpy() for indices in rows]


def embedding_figure(facets_path: str | Path, out_paths: Paths) -> None:
    """The 2-D embedding of a neuron's images coloured by facet, each facet's mean image drawn
    at its centroid: the figure to see facets at a glance."""
    facets = FacetRecord.read(facets_path)
    view, assignment = facets.embedding, facets.assignment
    k = facets.facet_count
    colours = plt.get_cmap("tab10" if k <= 10 else "tab20")
    majority = facets.majority_names()
    fig, axis = plt.subplots(figsize=(7.5, 7.5))
    dropped = assignment < 0
    if dropped.any():
        axis.scatter(*view[dropped].T, s=4, c="lightgrey", label=f"dropped ({dropped.sum()})")
    for facet in range(k):
        members = assignment == facet
        label = f"#{facet + 1} n={members.sum()}" + (f" {majority[facet]}" if majority else "")
        axis.scatter(*view[members].T, s=4, color=colours(facet % colours.N), label=label)
    for facet, (centre, image) in enumerate(
        zip(facets.embedding_centroids, facets.mean_images, strict=True)
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
    space = "t-SNE" if facets.space == "tsne" else "first two PCA components"
    axis.set_title(
        f"{unit_label(facets.neuron)}: {len(view)} images, {space}; "
        "mean image of each facet at its centroid",
        fontsize=9,
    )
    save(fig, out_paths)


def _first_rows(names: Sequence[str], title: str, max_rows: int | None) -> tuple[list[str], str]:
    """A grid figure shows at most `max_rows` neurons (a 1,000-row figure is unreadable and
    beyond what a PNG can hold); its title says so. index.html shows every neuron."""
    if max_rows is None or len(names) <= max_rows:
        return list(names), title
    return list(names[:max_rows]), f"{title}\nfirst {max_rows} of {len(names)} neurons"


def overview_figure(
    names: Sequence[str],
    synthesis_dirs: Paths,
    out_paths: Paths,
    max_facets: int | None = None,
    title: str = "facet images per neuron (largest facet first)",
    max_rows: int | None = None,
) -> None:
    """One row per neuron: its facet images, largest facet first (at most `max_facets`)."""
    if len(synthesis_dirs) != len(names):
        raise ValueError(f"{len(synthesis_dirs)} synthesis folders for {len(names)} neurons")
    names, title = _first_rows(names, title, max_rows)
    synthesis = [SynthesisRecord.read(d) for d in synthesis_dirs[: len(names)]]
    k = max(len(s.images[:max_facets]) for s in synthesis)
    fig, axes = plt.subplots(len(names), k, figsize=(1.1 * k, 1.2 * len(names)), squeeze=False)
    for row, neuron in enumerate(synthesis):
        images = neuron.images[:max_facets]
        for col in range(k):
            if col < len(images):
                _show(axes[row, col], images[col])
            else:
                axes[row, col].axis("off")
        _row_label(axes[row, 0], neuron.neuron)
    fig.suptitle(title, fontsize=9)
    save(fig, out_paths)


def methods_figure(
    names: Sequence[str],
    synthesis_dirs: Mapping[str, Paths],
    out_paths: Paths,
    max_rows: int | None = None,
) -> None:
    """Rows = neurons, columns = methods: each neuron's largest facet, synthesized by each method
    from the same seed. `synthesis_dirs[method]` follows `names`."""
    methods = list(synthesis_dirs)
    for method in methods:
        if len(synthesis_dirs[method]) != len(names):
            raise ValueError(f"{method}: {len(synthesis_dirs[method])} folders for {len(names)}")
    names, title = _first_rows(
        names, "each neuron's largest facet by method\n(a: the unit's activation)", max_rows
    )
    fig, axes = plt.subplots(
        len(names), len(methods), figsize=(1.25 * len(methods), 1.35 * len(names)), squeeze=False
    )
    for col, method in enumerate(methods):
        axes[0, col].set_title(method, fontsize=8)
        for row, folder in enumerate(synthesis_dirs[method][: len(names)]):
            synthesis = SynthesisRecord.read(folder)
            _show(axes[row, col], synthesis.images[0])
            axes[row, col].set_xlabel(f"a={synthesis.activation_final[0]:.1f}", fontsize=6)
            if col == 0:
                _row_label(axes[row, 0], synthesis.neuron)
    fig.suptitle(title, fontsize=9)
    save(fig, out_paths)


RECOVERY_SCORES = ("purity", "nmi", "coverage")
QUALITY_SCORES = ("fidelity", "transferability")


def metrics_figure(
    facet_table: str | Path, synthesis_metrics: str | Path | None, out_paths: Paths
) -> None:
    """Bars: how well each neuron's facets recover its fine classes (from the facet table), and
    each method's synthesis quality by the oracle (from `synthesis/metrics.json`, if any)."""
    with open(facet_table, newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["used"] == "True" and r["purity"]]
    summary = (
        read_json(synthesis_metrics, "synthesis_metrics")["summary"] if synthesis_metrics else {}
    )
    panels = 1 + 2 * bool(summary)
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.4), squeeze=False)
    axes = axes[0]
    _bars(
        axes[0],
        [r["neuron"] for r in rows],
        {score: [float(r[score]) for r in rows] for score in RECOVERY_SCORES},
        top=1.0,
    )
    axes[0].set_title("facet recovery against fine labels", fontsize=9)
    if not rows:
        axes[0].text(0.5, 0.5, "no fine labels in this dataset", ha="center", va="center")
    if summary:
        methods = list(summary)

        def scores(key: str) -> list[float]:
            return [np.nan if summary[m][key] is None else summary[m][key] for m in methods]

        _bars(axes[1], methods, {key: scores(key) for key in QUALITY_SCORES}, top=1.0)
        axes[1].set_title("synthesis quality (oracle), multi-facet units", fontsize=9)
        _bars(
            axes[2],
            methods,
            {
                "activation ratio (median)": scores("activation_ratio_median"),
                "fine classes shown (mean)": scores("mean_diversity"),
            },
        )
        axes[2].axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
        axes[2].set_title("activation vs best real image; diversity", fontsize=9)
    save(fig, out_paths)


def _bars(
    axis, groups: Sequence[str], series: Mapping[str, Sequence[float]], top: float | None = None
) -> None:
    """Grouped bars: one group per name, one bar per series; the legend above the bars."""
    width = 0.8 / max(len(series), 1)
    positions = np.arange(len(groups))
    for i, (label, values) in enumerate(series.items()):
        axis.bar(positions + (i - (len(series) - 1) / 2) * width, values, width, label=label)
    values = [v for column in series.values() for v in column if np.isfinite(v)]
    top = top if top is not None else max(values, default=1.0)
    axis.set_ylim(0, 1.25 * top)  # room for the legend
    axis.set_xticks(positions, groups, rotation=30, ha="right", fontsize=7)
    axis.tick_params(axis="y", labelsize=7)
    axis.legend(fontsize=7, loc="upper center", ncol=len(series), frameon=False)
