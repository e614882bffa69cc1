"""Atomic outputs and read-only inputs with clear errors."""

from __future__ import annotations

import errno
import logging
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import pytest

from facetviz.core.errors import DiskFullError, FacetvizError
from facetviz.core.io import atomic_path, open_h5, read_json, temp_path, write_json


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


def dead_pid() -> int:
    """The process id of a process that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", ""])
    process.wait()
    return process.pid


def test_leftover_of_a_killed_job_is_removed_by_its_rerun(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGKILL skips every cleanup: the rerun of the same job must not keep the leftover, but
    must keep the file of a writer that still runs (here, or on another machine)."""
    out = tmp_path / "facets.h5"

    def leftover(pid: int, final: Path = out) -> Path:
        """What a writer leaves when it is killed mid-write: its folder, a partial file in it."""
        tmp = temp_path(final, pid)
        tmp.parent.mkdir()
        tmp.write_text(f"from process {pid}")
        return tmp.parent

    leftover(dead_pid())
    (tmp_path / ".facets.h5.partial").write_text("the fixed name of earlier versions")
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as running:
        live = leftover(running.pid)
        elsewhere = tmp_path / ".facets.h5.othernode.1.0123abcd.partial"
        elsewhere.mkdir()
        other_output = leftover(dead_pid(), tmp_path / "facets.h5.json")
        (tmp_path / "folder").mkdir()
        with caplog.at_level(logging.WARNING), atomic_path(out) as tmp:
            assert not tmp.exists()
            tmp.write_text("done")
        running.kill()
    kept = {out.name, "folder", live.name, elsewhere.name, other_output.name}
    assert {p.name for p in tmp_path.iterdir()} == kept
    assert "written on othernode" in caplog.text


def test_checkpoints_keep_their_bytes(tmp_path: Path) -> None:
    """torch.save names the archive's records after the file it writes (`.model.pt/data.pkl`
    for `.model.pt.partial`): the temporary file keeps that name, so that a checkpoint is the
    same bytes whichever process wrote it, and as before temporary names were unique."""
    import torch

    state = {"weight": torch.arange(6.0).reshape(2, 3)}
    written = []
    for _writer in range(2):
        with atomic_path(tmp_path / "model.pt") as tmp:
            torch.save(state, tmp)
        written.append((tmp_path / "model.pt").read_bytes())
    torch.save(state, tmp_path / ".model.pt.partial")  # what the fixed name of before wrote
    assert written[0] == written[1] == (tmp_path / ".model.pt.partial").read_bytes()


def test_two_writers_of_one_path_at_once_keep_their_own_files(tmp_path: Path) -> None:
    """Two threads write one output at the same time: neither removes the other's temporary
    file, both finish, and the output is one writer's whole content."""
    out = tmp_path / "out.txt"
    texts = {"a": "a" * 200_000, "b": "b" * 200_000}
    both_inside = threading.Barrier(2, timeout=20)
    errors: list[BaseException] = []

    def write(text: str) -> None:
        try:
            with atomic_path(out) as tmp, open(tmp, "w") as handle:
                handle.write(text[:1000])
                handle.flush()
                both_inside.wait()  # both temporary files exist, half written
                handle.write(text[1000:])
                handle.flush()
                both_inside.wait()
                assert tmp.read_text() == text, "the other writer changed this one's file"
        except BaseException as err:  # noqa: BLE001 - reported by the test below
            errors.append(err)

    threads = [threading.Thread(target=write, args=(text,)) for text in texts.values()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert out.read_text() in texts.values()
    assert list(tmp_path.iterdir()) == [out]


WRITER = """
import sys, time
from pathlib import Path
from facetviz.core.io import atomic_path
out, text, ready, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
with atomic_path(out) as tmp:
    tmp.write_text(text)
    ready.touch()
    while not go.exists():
        time.sleep(0.01)
    assert tmp.read_text() == text, "another writer changed this writer's file"
"""


def test_two_processes_writing_one_path_at_once_both_finish(tmp_path: Path) -> None:
    """The second writer starts while the first holds its temporary file (a stage run by hand
    beside Snakemake's job); both must finish with their own file intact."""
    out, go = tmp_path / "out" / "table.csv", tmp_path / "go"
    writers = []
    for name in ("first", "second"):
        ready = tmp_path / f"{name}.ready"
        command = [sys.executable, "-c", WRITER, str(out), name * 1000, str(ready), str(go)]
        writers.append(subprocess.Popen(command, stderr=subprocess.PIPE, text=True))
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert writers[-1].poll() is None, writers[-1].communicate()[1]
            assert time.monotonic() < deadline, f"the {name} writer did not start"
            time.sleep(0.01)
    go.touch()
    for writer in writers:
        _, stderr = writer.communicate(timeout=30)
        assert writer.returncode == 0, stderr
    assert out.read_text() in ("first" * 1000, "second" * 1000)
    assert list(out.parent.iterdir()) == [out]


def test_outputs_are_on_the_disk_before_their_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsync of each file before the rename (a power loss cannot leave an empty file under the
    final name), then of the folder that holds the new name."""
    synced: list[tuple[int, bool, bool]] = []  # inode, is a folder, the output exists yet
    output = [tmp_path / "out.txt"]
    fsync = os.fsync

    def recording_fsync(descriptor: int) -> None:
        info = os.fstat(descriptor)
        published = output[0].exists()
        synced.append((info.st_ino, stat.S_ISDIR(info.st_mode), published))
        fsync(descriptor)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    with atomic_path(tmp_path / "out.txt") as tmp:
        tmp.write_text("whole")
    file_inode, folder_inode = (tmp_path / "out.txt").stat().st_ino, tmp_path.stat().st_ino
    assert synced == [(file_inode, False, False), (folder_inode, True, True)]

    synced.clear()
    output[0] = tmp_path / "batch"
    with atomic_path(output[0]) as tmp:
        (tmp / "unit").mkdir(parents=True)
        (tmp / "unit" / "facet_00.png").write_bytes(b"png")
    inside = output[0] / "unit" / "facet_00.png"
    # a folder output: its files and folders, before the rename; then the folder holding it
    before = [(p.stat().st_ino, p.is_dir(), False) for p in (inside, inside.parent, output[0])]
    assert synced == [*before, (folder_inode, True, True)]


def test_a_failed_fsync_keeps_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(descriptor: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with (
        pytest.raises(DiskFullError, match="Nothing was kept"),
        atomic_path(tmp_path / "out.txt") as tmp,
    ):
        tmp.write_text("whole")
    assert list(tmp_path.iterdir()) == []


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
