"""docs/python.md's example (README: "Use the stages from Python") runs as written, on small
data: the same code, with the repository's paths made absolute, the small Fashion-MNIST as the
dataset and random weights instead of a trained model (the example reads `make run`'s
checkpoint)."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import pytest
from conftest import REPO

EXAMPLE = REPO / "docs" / "python.md"


def python_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", EXAMPLE.read_text(), flags=re.DOTALL)
    assert len(blocks) == 1, "docs/python.md should hold one Python example"
    return blocks[0]


def on_small_data(code: str, fashion_dir: Path) -> str:
    """The example with each path it reads swapped for a test's; every swap must apply, so a
    changed example fails here rather than running something else."""
    swaps = {
        '"config/config.yaml"': repr(str(REPO / "config" / "config.yaml")),
        '"workflow/schemas/config.schema.yaml"': repr(
            str(REPO / "workflow" / "schemas" / "config.schema.yaml")
        ),
        '"results/default/model/model.pt"': "None",
        "data = DatasetSettings": f"config['dataset']['root'] = {str(fashion_dir)!r}\n"
        "data = DatasetSettings",
    }
    for old, new in swaps.items():
        assert old in code, f"docs/python.md's example no longer contains {old}"
        code = code.replace(old, new)
    return code


@pytest.mark.usefixtures("one_thread")
def test_the_readmes_python_example_runs(
    tmp_path: Path, fashion_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(on_small_data(python_example(), fashion_dir), "docs/python.md", "exec"), {})
    with h5py.File(tmp_path / "footwear.h5", "r") as facets:
        facet_count = len(facets["cluster_ids"])
    images = sorted((tmp_path / "mfv-footwear").rglob("facet_*.png"))
    assert facet_count >= 2
    assert len(images) == facet_count, "one synthesized image per facet"
