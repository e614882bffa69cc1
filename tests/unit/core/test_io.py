"""Atomic outputs and read-only inputs with clear errors."""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest

from facetviz.core.errors import FacetvizError
from facetviz.core.io import atomic_path, open_h5, read_json, write_json


def test_atomic_path_only_publishes_a_completed_block(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_path(out) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with atomic_path(out) as tmp:
        tmp.write_text("whole")
    assert out.read_text() == "whole"
    assert list(tmp_path.iterdir()) == [out]


def test_leftover_of_a_killed_job_is_removed_by_its_rerun(tmp_path: Path) -> None:
    """SIGKILL skips every cleanup: the rerun of the same job must not keep the leftover."""
    out = tmp_path / "facets.h5"
    with atomic_path(out) as tmp:
        tmp.write_text("first run")
        leftover = tmp
    out.unlink()
    leftover.write_text("from a job killed mid-write")  # what a killed job leaves
    (tmp_path / "folder").mkdir()
    with atomic_path(out) as tmp:
        assert not tmp.exists()
        tmp.write_text("done")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["facets.h5", "folder"]


def test_atomic_path_replaces_a_folder(tmp_path: Path) -> None:
    out = tmp_path / "batch"
    (out / "stale").mkdir(parents=True)
    with atomic_path(out) as tmp:
        (tmp / "fresh").mkdir(parents=True)
    assert [p.name for p in out.iterdir()] == ["fresh"]


def test_open_h5_errors_name_the_stage(tmp_path: Path) -> None:
    with pytest.raises(FacetvizError, match="run the 'activations' stage first"):
        open_h5(tmp_path / "missing.h5", "activations")
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(FacetvizError, match="corrupt or truncated.*'activations'"):
        open_h5(corrupt, "activations")
    with h5py.File(tmp_path / "ok.h5", "w") as handle:
        handle["x"] = [1, 2]
    with open_h5(tmp_path / "ok.h5", "activations") as handle:
        assert handle.mode == "r"


def test_read_json(tmp_path: Path) -> None:
    write_json(tmp_path / "a.json", {"b": [1, 2]})
    assert read_json(tmp_path / "a.json") == {"b": [1, 2]}
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(FacetvizError, match="not valid JSON.*rerun the 'facets' stage"):
        read_json(tmp_path / "bad.json")
    with pytest.raises(FacetvizError, match="does not exist"):
        read_json(tmp_path / "none.json")
