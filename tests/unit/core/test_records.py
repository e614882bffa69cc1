"""Typed HDF5 records: one dataclass per file format, written and read by one pair."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import neuron

from facetviz.core.errors import FacetvizError
from facetviz.core.records import read_record, write_record
from facetviz.core.settings import Neuron
from facetviz.facets.record import FacetRecord
from facetviz.synthesis.record import SynthesisRecord


@dataclass(frozen=True)
class Example:
    unit: Neuron
    names: list[str]
    options: dict
    count: int
    share: float
    flag: bool
    label: str
    values: np.ndarray


EXAMPLE = Example(
    unit=neuron("tops", "classifier.5", 1, "label"),
    names=["a", "b"],
    options={"k": [1, 2], "none": None},
    count=3,
    share=0.25,
    flag=True,
    label="tsne",
    values=np.arange(6, dtype=np.float32).reshape(2, 3),
)


def test_a_record_reads_back_as_written(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "r.h5", "w") as handle:
        write_record(handle, EXAMPLE)
        assert set(handle) == {"values"}  # arrays are datasets, the rest attributes
    back = read_record(Example, tmp_path / "r.h5", "example")
    assert back.unit == EXAMPLE.unit and back.names == EXAMPLE.names
    assert back.options == EXAMPLE.options
    assert (back.count, back.share, back.flag, back.label) == (3, 0.25, True, "tsne")
    assert isinstance(back.flag, bool) and isinstance(back.count, int)
    np.testing.assert_array_equal(back.values, EXAMPLE.values)
    assert back.values.dtype == np.float32


def test_a_missing_field_names_the_file_and_the_stage_to_rerun(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "r.h5", "w") as handle:
        write_record(handle, EXAMPLE)
        del handle["values"]
        del handle.attrs["flag"]
    with pytest.raises(FacetvizError, match=r"r.h5 lacks flag, values.*rerun the 'example'.*"
                       r"snakemake --forcerun example"):  # fmt: skip
        read_record(Example, tmp_path / "r.h5", "example")
    with pytest.raises(FacetvizError, match="does not exist: run the 'example' stage first"):
        read_record(Example, tmp_path / "none.h5", "example")


def test_the_facet_and_synthesis_files_are_records(small_run: Path, small_synthesis) -> None:
    facets = FacetRecord.read(small_run / "facets" / "tops.h5")
    assert facets.neuron.name == "tops" and facets.facet_count == 3
    assert facets.majority_names() == [facets.fine_names[c] for c in facets.majority]
    assert len(facets.best_real_activation()) == 3
    result = SynthesisRecord.read(small_run / "synthesis" / "tops")
    assert result.neuron == facets.neuron and result.method == "mfv"


def test_an_older_synthesis_output_says_which_stage_to_rerun(
    small_run: Path, small_synthesis, tmp_path: Path
) -> None:
    folder = tmp_path / "tops"
    folder.mkdir()
    (folder / "images.h5").write_bytes(
        (small_run / "synthesis" / "tops" / "images.h5").read_bytes()
    )
    with h5py.File(folder / "images.h5", "a") as handle:
        del handle["activation_init"]
    with pytest.raises(FacetvizError, match="lacks activation_init.*'synthesize' stage"):
        SynthesisRecord.read(folder)
