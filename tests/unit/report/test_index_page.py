"""The run's browsable page: one self-contained file with every neuron's facets."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from facetviz.data.datasets import FacetDataset
from facetviz.report.index_page import QUALITY_COLUMNS, write_index

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_index_page_shows_every_facet_of_every_neuron(
    small_run: Path, coarse_fashion: FacetDataset, small_synthesis, tmp_path: Path
) -> None:
    dirs = [small_run / "synthesis" / "tops", small_run / "synthesis" / "ch2"]
    facets = [small_run / "facets" / "tops.h5", small_run / "facets" / "ch2.h5"]
    metrics = tmp_path / "metrics.json"
    oracle_says = ["Coat", "Shirt", "Pullover"]
    metrics.write_text(
        json.dumps(
            {
                "summary": {
                    method: dict.fromkeys(QUALITY_COLUMNS, 0.5) for method in ("mfv", "mean_image")
                },
                "units": [{"method": "mfv", "neuron": "tops", "predicted": oracle_says}],
            }
        )
    )
    out = tmp_path / "index.html"
    write_index("small", facets, {"mfv": dirs, "copy": dirs}, coarse_fashion, out, 2, metrics)
    page = out.read_text()
    assert page.count('<section class="neuron"') == 2
    # tops: 3 facets x (2 methods + 2 real images); ch2: 2 facets x 4
    tops, ch2 = page.split('<section class="neuron"')[1:]
    assert tops.count("<img ") == 3 * 4 and ch2.count("<img ") == 2 * 4
    assert all(f"oracle: {name}" in tops for name in oracle_says)
    assert "oracle:" not in ch2
    assert "http" not in page and 'src="data:image/png;base64,' in page  # nothing outside
    for uri in page.split('src="')[1:]:
        encoded = uri.split('"')[0].removeprefix("data:image/png;base64,")
        assert base64.b64decode(encoded)[:8] == PNG_MAGIC
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html", "metrics.json"]
    # the quality table has the references beside the methods, with every column
    table = page.split("<h2>Synthesis quality</h2>")[1].split("</table>")[0]
    assert "mean_image <span class='small'>(reference)</span>" in table
    assert all(html.escape(label) in table for label in QUALITY_COLUMNS.values())
