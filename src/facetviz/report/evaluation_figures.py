"""The evaluation's figures (from `evaluation/summary.json`), each in PNG and PDF:

- Pareto figure: per method, the unit's activation relative to its best real image against
  fidelity and against plausibility, with 95 % intervals over seeds; references in grey;
- path figure: the processing-path score by depth of the visualized network, per method, against
  the real images' range.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from facetviz.core.io import read_json  # noqa: E402
from facetviz.measure.similarity import MARGIN  # noqa: E402
from facetviz.report.figures import Paths, save  # noqa: E402
from facetviz.synthesis.methods import REFERENCES  # noqa: E402


def _point(value: Mapping[str, Any]) -> tuple[float, tuple[float, float]]:
    """Mean and its error bar (distances to the interval's ends)."""
    return value["mean"], (value["mean"] - value["low"], value["high"] - value["mean"])


# references in greys, each with its own marker, so that no method shares their colour
REFERENCE_STYLE = {"mean_image": ("0.15", "s"), "nearest_real": ("0.45", "D"),
                   "g_centroid": ("0.65", "^")}  # fmt: skip


def styles(methods: Sequence[str]) -> dict[str, tuple[Any, str]]:
    """Method -> (colour, marker): methods in tab10's colours, references in greys."""
    colours = plt.get_cmap("tab10")
    ranked = [m for m in methods if m not in REFERENCES]
    return {
        m: REFERENCE_STYLE.get(m, ("0.3", "s")) if m in REFERENCES
        else (colours(ranked.index(m) % 10), "o")
        for m in methods
    }  # fmt: skip


def _pareto_panel(axis, methods: Mapping[str, Any], key: str, label: str) -> None:
    style = styles(list(methods))
    for method, result in methods.items():
        if result["activation_ratio_median"] is None or result[key] is None:
            continue
        x, x_err = _point(result["activation_ratio_median"])
        y, y_err = _point(result[key])
        colour, marker = style[method]
        axis.errorbar(
            x, y, xerr=[[x_err[0]], [x_err[1]]], yerr=[[y_err[0]], [y_err[1]]],
            fmt=marker, color=colour, markersize=8 if method in REFERENCES else 6, capsize=3,
            label=method,
        )  # fmt: skip
    axis.axvline(1.0, color="grey", linewidth=0.8, linestyle="--")
    axis.set_xlabel("activation / best real image of the facet (median)", fontsize=8)
    axis.set_ylabel(label, fontsize=8)
    axis.tick_params(labelsize=7)


def pareto_figure(summary_path: str | Path, out_paths: Paths) -> None:
    summary = read_json(summary_path, "evaluation")
    methods = summary["methods"]
    seeds = next(iter(methods.values()))["seeds"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    _pareto_panel(axes[0], methods, "fidelity", "fidelity (oracle: the facet's fine class)")
    _pareto_panel(axes[1], methods, "plausibility", "plausibility (cosine to the facet's reals)")
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(
        f"activation against facet identity, multi-facet class units; 95 % intervals over "
        f"{seeds} seed{'s' if seeds != 1 else ''}; grey: references (no optimization)",
        fontsize=9,
    )
    save(fig, out_paths)


def path_figure(summary_path: str | Path, out_paths: Sequence[str | Path]) -> None:
    summary = read_json(summary_path, "evaluation")
    layers = summary["path_layers"]
    fig, axis = plt.subplots(figsize=(7.5, 4.2))
    depth = range(len(layers))
    axis.axhspan(-1.0, 0.0, color="lightgrey", alpha=0.6, label="real images: 5th pct to median")
    axis.axhline(-1.0 - MARGIN, color="grey", linewidth=0.8, linestyle=":",
                 label="flag: leaves the real range")  # fmt: skip
    style = styles(list(summary["methods"]))
    for method, result in summary["methods"].items():
        profile = result["path_profile"]
        colour, marker = style[method]
        axis.plot(
            depth, profile["mean"], marker=marker, markersize=4,
            linestyle="--" if method in REFERENCES else "-", color=colour,
            label=f"{method} ({_share(result['path_leaves'])} leave)",
        )  # fmt: skip
        axis.fill_between(depth, profile["low"], profile["high"], color=colour, alpha=0.12)
    axis.set_xticks(list(depth), layers, rotation=30, ha="right", fontsize=7)
    axis.set_ylabel("similarity to the facet's real images\n(0: their median, -1: 5th pct)",
                    fontsize=8)  # fmt: skip
    axis.set_yscale("symlog", linthresh=2)
    axis.tick_params(axis="y", labelsize=7)
    axis.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    axis.set_title("processing path by depth (Geirhos et al. 2023), multi-facet class units",
                   fontsize=9)  # fmt: skip
    save(fig, out_paths)


def _share(value: Mapping[str, Any] | None) -> str:
    return "-" if value is None else f"{value['mean']:.0%}"
