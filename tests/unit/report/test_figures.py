"""The run's figures: facets, embedding, overview, methods and metrics, in PNG and PDF."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from facetviz.core.errors import FacetvizError
from facetviz.data.datasets import FacetDataset
from facetviz.report.figures import (
    embedding_figure,
    facets_figure,
    methods_figure,
    metrics_figure,
    overview_figure,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PDF_MAGIC = b"%PDF-"


def test_facets_figure_in_png_and_pdf(
    small_run: Path, coarse_fashion: FacetDataset, small_synthesis
) -> None:
    out = [small_run / "figures" / "tops.png", small_run / "figures" / "tops.pdf"]
    facets_figure(
        small_run / "facets" / "tops.h5",
        small_run / "synthesis" / "tops",
        coarse_fashion,
        out,
        examples=3,
    )
    assert out[0].read_bytes()[:8] == PNG_MAGIC
    assert out[1].read_bytes()[:5] == PDF_MAGIC
    with Image.open(out[0]) as png:
        width, height = png.size
    assert height > width  # 5 rows (facet, mean, 3 examples) of 3 facets
    assert sorted(p.name for p in out[0].parent.iterdir()) == ["tops.pdf", "tops.png"]
    summary = json.loads((small_run / "facets" / "tops.json").read_text())
    assert len(summary["facets"]) == 3


@pytest.mark.parametrize("neuron", ["tops", "ch2"])
def test_embedding_figure(small_run: Path, neuron: str, tmp_path: Path) -> None:
    out = tmp_path / f"{neuron}.png"
    embedding_figure(small_run / "facets" / f"{neuron}.h5", [out])
    assert out.read_bytes()[:8] == PNG_MAGIC
    with Image.open(out) as png:
        assert min(png.size) > 400
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{neuron}.png"]
    with pytest.raises(FacetvizError, match="run the 'facets' stage first"):
        embedding_figure(tmp_path / "missing.h5", [tmp_path / "never.png"])
    assert not (tmp_path / "never.png").exists()


def test_overview_figure(small_run: Path, small_synthesis, tmp_path: Path) -> None:
    dirs = [small_run / "synthesis" / "tops", small_run / "synthesis" / "ch2"]
    one, two, top = tmp_path / "one.png", tmp_path / "overview.png", tmp_path / "top.png"
    overview_figure(["tops"], dirs[:1], [one])
    overview_figure(["tops", "ch2"], dirs, [two])  # 3 and 2 facets: the short row is padded
    overview_figure(["tops", "ch2"], dirs, [top], max_facets=1, title="hidden units")
    capped = tmp_path / "capped.png"
    overview_figure(["tops", "ch2"], dirs, [capped], max_rows=1)
    for path in (one, two, top, capped):
        assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(one) as a, Image.open(two) as b, Image.open(top) as c:
        assert b.size[1] > a.size[1]
        assert c.size[0] < b.size[0]  # one column instead of three
    with Image.open(capped) as d, Image.open(two) as b:
        assert d.size[1] < b.size[1]  # one row, and a title line saying "first 1 of 2"
    with pytest.raises(ValueError, match="1 synthesis folders for 2 neurons"):
        overview_figure(["tops", "ch2"], dirs[:1], [tmp_path / "never.png"])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["capped.png", "one.png", "overview.png", "top.png"]


def test_methods_figure_has_a_column_per_method(
    small_run: Path, small_synthesis, tmp_path: Path
) -> None:
    dirs = [small_run / "synthesis" / "tops", small_run / "synthesis" / "ch2"]
    narrow, wide = tmp_path / "one.png", tmp_path / "three.png"
    methods_figure(["tops", "ch2"], {"mfv": dirs}, [narrow])
    methods_figure(["tops", "ch2"], {"mfv": dirs, "a": dirs, "b": dirs}, [wide, tmp_path / "3.pdf"])
    with Image.open(narrow) as a, Image.open(wide) as b:
        assert b.size[0] > 1.2 * a.size[0]  # two more columns
    assert (tmp_path / "3.pdf").read_bytes()[:5] == PDF_MAGIC
    with pytest.raises(ValueError, match="1 folders for 2"):
        methods_figure(["tops", "ch2"], {"mfv": dirs[:1]}, [tmp_path / "never.png"])
    assert not (tmp_path / "never.png").exists()


def test_metrics_figure_with_and_without_synthesis_metrics(tmp_path: Path) -> None:
    table = tmp_path / "table.csv"
    table.write_text(
        "neuron,used,purity,nmi,coverage\n"
        "tops,True,0.8,0.4,1.0\ntops,False,0.7,0.3,1.0\nimagenet-unit,True,,,\n"
    )
    only_facets = tmp_path / "facets.png"
    metrics_figure(table, None, [only_facets])
    summary = {
        method: {
            "fidelity": 0.5,
            "transferability": 0.9,
            "activation_ratio_median": 1.2,
            "mean_diversity": None if method == "plain" else 2.0,  # unmeasured: no bar
        }
        for method in ("mfv", "plain")
    }
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"summary": summary, "units": []}))
    both = tmp_path / "both.png"
    metrics_figure(table, metrics, [both])
    with Image.open(only_facets) as a, Image.open(both) as b:
        assert b.size[0] > 2 * a.size[0]  # three panels instead of one
    with pytest.raises(FacetvizError, match="run the 'synthesis_metrics' stage first"):
        metrics_figure(table, tmp_path / "missing.json", [tmp_path / "never.png"])


def test_failed_figure_leaves_no_file(
    small_run: Path, coarse_fashion: FacetDataset, small_synthesis, tmp_path: Path
) -> None:
    out = tmp_path / "figure.notaformat"  # matplotlib fails while saving, after drawing
    with pytest.raises(ValueError, match="notaformat"):
        facets_figure(
            small_run / "facets" / "tops.h5",
            small_run / "synthesis" / "tops",
            coarse_fashion,
            [out],
        )
    with pytest.raises(FacetvizError, match="run the 'synthesize' stage first"):
        facets_figure(
            small_run / "facets" / "tops.h5",
            tmp_path / "missing",
            coarse_fashion,
            [tmp_path / "fig.png"],
        )
    assert list(tmp_path.iterdir()) == []
