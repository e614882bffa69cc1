"""The run's browsable page, `results/<run>/index.html`: every neuron with its facets.

Per facet: its rank and size, the mean activation of its real images, its majority fine class
where the dataset has fine labels, the image each method synthesized with the unit's activation
on it (and the oracle's class, where the run measured synthesis), and the facet's real images
nearest the centroid. The page is one file with no outside references: images are inline PNG
(data URIs, at most THUMBNAIL_PIXELS a side), so it opens from anywhere, offline.

A small script marks each neuron's section with how many of its images the browser decoded
(`data-images`, `data-decoded`): the browser test reads them back.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from facetviz.core.io import atomic_path, read_json
from facetviz.core.progress import log
from facetviz.data.datasets import FacetDataset
from facetviz.facets.record import FacetRecord
from facetviz.report.figures import nearest_real_images, unit_label
from facetviz.synthesis.methods import REFERENCES
from facetviz.synthesis.record import SynthesisRecord, to_pil

THUMBNAIL_PIXELS = 128  # larger images are shrunk: a 1,000-unit page stays loadable
SHOWN_PIXELS = 84  # on screen, small images are enlarged without smoothing

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; }
nav a { margin-right: 0.8em; }
table { border-collapse: collapse; margin-top: 0.5em; }
td, th { border: 1px solid #ddd; padding: 3px 6px; text-align: center; font-size: 0.85em; }
th { background: #f4f4f4; }
img { width: SHOWNpx; height: auto; image-rendering: pixelated; display: block; margin: auto; }
td.real { white-space: nowrap; }
td.real img { display: inline-block; margin: 1px; width: 56px; }
.small { color: #666; font-size: 0.8em; }
.warning { border: 2px solid #c60; background: #fff4e5; padding: 0.6em 1em; margin: 1em 0; }
""".replace("SHOWN", str(SHOWN_PIXELS))

# Counts, per neuron, the images the browser has decoded: the test of the page reads them back.
SCRIPT = """
window.addEventListener("load", () => {
  for (const section of document.querySelectorAll("section.neuron")) {
    const images = section.querySelectorAll("img");
    const decoded = [...images].filter((image) => image.complete && image.naturalWidth > 0);
    section.dataset.images = images.length;
    section.dataset.decoded = decoded.length;
  }
  document.body.dataset.checked = "true";
});
"""


def data_uri(image: np.ndarray) -> str:
    """A [C, H, W] image in [0, 1] as an inline PNG (grayscale) or JPEG (colour, 5-10x smaller
    for photographs: a page of many ImageNet units stays small enough to open)."""
    picture = to_pil(image)
    picture.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
    buffer = io.BytesIO()
    kind = "png" if picture.mode == "L" else "jpeg"
    picture.save(buffer, format=kind, **({"optimize": True} if kind == "png" else {"quality": 85}))
    return f"data:image/{kind};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _image(image: np.ndarray, alt: str) -> str:
    return f'<img src="{data_uri(image)}" alt="{html.escape(alt)}">'


def _oracle_classes(metrics: Mapping[str, Any] | None) -> dict[tuple[str, str], list[str]]:
    """(method, neuron) -> the oracle's class of each facet image, where measured."""
    if not metrics:
        return {}
    return {(unit["method"], unit["neuron"]): unit["predicted"] for unit in metrics["units"]}


QUALITY_COLUMNS = {
    "fidelity": "fidelity",
    "transferability": "transferability",
    "activation_ratio_median": "activation ratio (median)",
    "mean_diversity": "fine classes shown (mean)",
    "plausibility": "plausibility",
    "plausible": "within the reals' range",
    "kid": "KID",
    "path_leaves": "off the processing path",
}


def _metrics_table(metrics: Mapping[str, Any]) -> str:
    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    def row(method: str, values: Mapping[str, Any]) -> str:
        name = html.escape(method) + (" <span class='small'>(reference)</span>"
                                      if method in REFERENCES else "")  # fmt: skip
        cells = "".join(f"<td>{number(values[key])}</td>" for key in QUALITY_COLUMNS)
        return f"<tr><td>{name}</td>{cells}</tr>"

    heads = "".join(f"<th>{html.escape(label)}</th>" for label in QUALITY_COLUMNS.values())
    rows = "".join(row(method, values) for method, values in metrics["summary"].items())
    return (
        "<h2>Synthesis quality</h2><p class='small'>By the oracle, a separately trained "
        "classifier of the fine classes, over the multi-facet class units, beside the references "
        "that need no optimization (docs/results.md in the repository).</p>"
        f"<table><tr><th>method</th>{heads}</tr>{rows}</table>"
    )


def _prior_warnings(generator_metrics: Sequence[str | Path]) -> str:
    """A warning box for each training tree whose generator failed its check (priors.check),
    with the message the generator_metrics job logged; nothing where every one passed."""
    boxes = []
    for path in generator_metrics:
        check = read_json(path, "generator-metrics").get("check") or {"passed": True}
        if not check["passed"]:
            tree = Path(path).parent.parent  # <tree>/priors/generator.json
            boxes.append(
                f"<div class='warning' role='alert' data-check='{html.escape(str(tree))}'>"
                f"<strong>Warning: the learned prior of {html.escape(str(tree))} failed its "
                f"check.</strong> {html.escape(check['message'])}</div>"
            )
    return "".join(boxes)


def _neuron_section(
    facets: FacetRecord,
    images: Mapping[str, SynthesisRecord],
    real: Sequence[np.ndarray],
    oracle: Mapping[tuple[str, str], list[str]],
) -> str:
    neuron = facets.neuron
    name = neuron.name
    majority = facets.majority_names()
    head = "<th>facet</th><th>images</th><th>mean activation</th>"
    head += "<th>majority fine class</th>" if majority else ""
    head += "".join(f"<th>{html.escape(method)}</th>" for method in images)
    head += "<th>real images nearest the centroid</th>"
    rows = []
    for facet, size in enumerate(facets.sizes):
        cells = [f"#{facet + 1}", str(int(size)), f"{facets.mean_activation[facet]:.2f}"]
        if majority:
            cells.append(html.escape(majority[facet]))
        for method, result in images.items():
            caption = f"a={result.activation_final[facet]:.2f}"
            predicted = oracle.get((method, name))
            if predicted:
                caption += f"<br>oracle: {html.escape(predicted[facet])}"
            alt = f"{name} facet {facet + 1} by {method}"
            picture = _image(result.images[facet], alt)
            cells.append(f"{picture}<span class='small'>{caption}</span>")
        examples = "".join(
            _image(picture, f"{name} facet {facet + 1} real image") for picture in real[facet]
        )
        row = "".join(f"<td>{cell}</td>" for cell in cells) + f"<td class='real'>{examples}</td>"
        rows.append(f"<tr>{row}</tr>")
    selected = "images of its class" if neuron.is_class_unit else "top images"
    return (
        f'<section class="neuron" id="{html.escape(name)}" data-neuron="{html.escape(name)}">'
        f"<h2>{html.escape(unit_label(neuron))}</h2>"
        f"<p class='small'>{len(facets.assignment)} {selected} clustered into "
        f"{facets.facet_count} facets (largest first); a = the unit's activation on the "
        "synthesized image.</p>"
        f"<table><tr>{head}</tr>{''.join(rows)}</table></section>"
    )


def write_index(
    run: str,
    facets_paths: Sequence[str | Path],
    synthesis_dirs: Mapping[str, Sequence[str | Path]],
    dataset: FacetDataset,
    out_path: str | Path,
    examples: int = 4,
    synthesis_metrics: str | Path | None = None,
    generator_metrics: Sequence[str | Path] = (),
) -> None:
    """Write the page; `synthesis_dirs[method]` follows `facets_paths` (one folder per neuron).
    `generator_metrics`: each training tree's generator.json, whose failed check is shown."""
    metrics = read_json(synthesis_metrics, "synthesis_metrics") if synthesis_metrics else None
    oracle = _oracle_classes(metrics)
    sections, names = [], []
    for position, facets_path in enumerate(facets_paths):
        facets = FacetRecord.read(facets_path)
        images = {
            method: SynthesisRecord.read(dirs[position]) for method, dirs in synthesis_dirs.items()
        }
        real = nearest_real_images(facets, dataset, examples)
        sections.append(_neuron_section(facets, images, real, oracle))
        names.append(facets.neuron.name)
        log.info("index: %s (%d/%d)", names[-1], position + 1, len(facets_paths))
    navigation = " ".join(f'<a href="#{html.escape(n)}">{html.escape(n)}</a>' for n in names)
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>facetviz: {html.escape(run)}</title><style>{STYLE}</style></head><body>"
        f"<h1>facetviz run &ldquo;{html.escape(run)}&rdquo;</h1>"
        f"<p>{len(names)} neurons; methods: {html.escape(', '.join(synthesis_dirs))}. "
        "Figures in PNG and PDF are in <code>figures/</code> beside this page.</p>"
        f"{_prior_warnings(generator_metrics)}<nav>{navigation}</nav>"
        f"{_metrics_table(metrics) if metrics else ''}"
        f"{''.join(sections)}<script>{SCRIPT}</script></body></html>"
    )
    with atomic_path(out_path) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    log.info("wrote %s (%.1f MB)", out_path, Path(out_path).stat().st_size / 1e6)
