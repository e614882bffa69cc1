"""index.html from names that hold markup: they must show as text, and nothing in them may run.

The hostile names come in where a user's data puts them. An ImageFolder's class folders are
its fine classes, which the page shows as each facet's majority class; a folder name on Linux
may hold anything but `/` (and NUL), so these carry `<img onerror>`, `<svg onload>`, `<script>`,
both quotes, `&` and text that looks like an entity, but no closing tag. The oracle's class of
each image, read from synthesis/metrics.json, is a fine class too; there the whole
`<script>...</script>` is fed. Neuron names match the schema's `^[A-Za-z0-9_.-]+$`, so a neuron
can only bring `.`, `-` and `_` (into the page's ids and links); the run name likewise. The
records are made by the real stages (forward pass, facets, mfv) on a small ImageFolder with a
random embedded CNN, then the page is loaded in headless Chromium.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from conftest import EMBEDDED, dataset_settings, facet_settings, make_image_folder, method, neuron
from test_workflow import chromium, headless

from facetviz.activations.extract import extract
from facetviz.data.datasets import open_dataset
from facetviz.facets.discover import discover
from facetviz.facets.record import FacetRecord
from facetviz.model.networks import load_network
from facetviz.report.index_page import write_index
from facetviz.synthesis.job import synthesize_batch

TITLE = "facetviz: hostile"
# fine classes (folder names): each would change the title if the page let it run
IMG = """<img src=x onerror="document.title='PWNED'"> & "1" """.strip()
SVG = """<svg onload="document.title='PWNED'"> <script> it's & "2" &lt;b&gt; &amp;"""
FOLDERS = [IMG, SVG]  # sorted: class 0 and class 1
# the oracle's class: a file, so here the name may hold a closing tag
SCRIPT = """<script>document.title='PWNED'</script> & "3" 'x'"""
# classes (dataset.label_map's keys, config strings): one per folder, so that each class unit's
# facets show their folder as the majority fine class. The page does not show class names.
CLASSES = {
    f"</p><script>document.title='PWNED'</script> & \"{i}\"": [f] for i, f in enumerate(FOLDERS)
}
NEURONS = ["hostile.-_1", "hostile.-_2"]  # the most the name pattern allows


class Page(HTMLParser):
    """The text, the elements and the title of a page as Chromium left it."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self._in_title = False
        self.title = ""
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_title:
            self.title += data

    def elements(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def load(tmp_path: Path, page: Path) -> Page:
    """The DOM after the page's scripts ran (and any injected one would have)."""
    browser = chromium()
    result = headless(
        browser, tmp_path / "profile", "--virtual-time-budget=10000", "--dump-dom", page.as_uri()
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return Page(result.stdout)


@pytest.fixture(scope="module")
def hostile_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """index.html of two class units over folders with hostile names, made by the real stages."""
    folder = tmp_path_factory.mktemp("hostile")
    root = make_image_folder(folder / "images", {FOLDERS[0]: 8, FOLDERS[1]: 8, "plain": 8})
    label_map = {**CLASSES, "plain": ["plain"]}
    settings = dataset_settings(
        kind="image_folder", root=str(root), channels=1, image_size=28, label_map=label_map
    )
    dataset = open_dataset(settings, "all", 0)
    assert dataset.label_space.fine_names == (*FOLDERS, "plain")
    assert dataset.label_space.class_names == tuple(label_map)
    torch.manual_seed(0)
    network = load_network(EMBEDDED, (1, 28, 28), 3, None)
    extract(network, dataset, "classifier.3", ["classifier.5"], folder / "activations.h5", 32)
    facets = [folder / "facets" / f"{name}.h5" for name in NEURONS]
    clustering = facet_settings(k=2, m=2, pca_dims=4, top_n=8, min_size=1)
    units = []
    for unit, (name, path) in enumerate(zip(NEURONS, facets, strict=True)):
        class_unit = neuron(name, "classifier.5", unit, "label")
        discover(
            folder / "activations.h5",
            dataset,
            class_unit,
            clustering,
            0,
            path,
            path.with_suffix(".json"),
        )
        predicted = [SCRIPT] * FacetRecord.read(path).facet_count  # the oracle's class per facet
        units.append({"method": "mfv", "neuron": name, "predicted": predicted})
    synthesize_batch(method("mfv", network), facets, "classifier.3", 0, folder / "mfv")
    metrics = folder / "metrics.json"
    metrics.write_text(json.dumps({"summary": {}, "units": units}))
    out = folder / "index.html"
    dirs = [folder / "mfv" / name for name in NEURONS]
    write_index("hostile", facets, {"mfv": dirs}, dataset, out, 2, metrics)
    return out


@pytest.mark.browser
def test_hostile_names_render_as_text_and_run_nothing(hostile_page: Path, tmp_path: Path):
    source = hostile_page.read_text()
    for name in (IMG, SVG, SCRIPT):
        assert name not in source, "a name reached the page unescaped"
    page = load(tmp_path, hostile_page)
    assert page.title == TITLE, "an injected script changed the title"
    body = page.elements("body")
    assert body and body[0].get("data-checked") == "true", "the page's own script did not run"
    text = "".join(page.text)
    for name in (IMG, SVG, SCRIPT):
        assert name in text, f"{name!r} is not shown as text"
    assert len(page.elements("script")) == 1  # the page's own
    assert page.elements("svg") == []
    assert all(attrs.get("src", "").startswith("data:image/") for attrs in page.elements("img"))
    assert not any("onerror" in attrs or "onload" in attrs for _tag, attrs in page.tags)
    sections = page.elements("section")
    assert [s["data-neuron"] for s in sections] == NEURONS
    assert [s["id"] for s in sections] == NEURONS
    links = [attrs["href"] for attrs in page.elements("a")]
    assert links == [f"#{name}" for name in NEURONS]


@pytest.mark.browser
def test_the_payloads_run_where_a_page_does_not_escape_them(tmp_path: Path):
    """The check above can see an injection: the same names written raw change the title."""
    for payload in (IMG, SVG.split(" <script>")[0], SCRIPT):
        raw = tmp_path / "raw.html"
        head = f"<!DOCTYPE html><html><head><title>{TITLE}</title></head>"
        raw.write_text(f"{head}<body><p>{payload}</p></body></html>")
        assert load(tmp_path, raw).title == "PWNED", payload
