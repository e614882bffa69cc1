"""Atomic outputs and safe reading of the files stages hand to each other."""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py

from facetviz.core.errors import DiskFullError, FacetvizError
from facetviz.core.progress import log

# Below this much free space, a failed write is taken for a full disk even when the library that
# failed does not say so (torch.save reports only "unexpected pos").
NEARLY_FULL_BYTES = 1 << 20
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_FULL_MESSAGES = ("No space left on device", "Disk quota exceeded", "errno = 28", "errno = 122")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it becomes `path` only if the block completes.

    An interrupted or failing job therefore never leaves a file (or folder) that looks finished.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    # A folder of this writer's own: a second writer of the same output outside Snakemake's lock
    # (a stage run by hand, the Python API) must not delete or overwrite this one's file. What
    # a writer killed outright (SIGKILL) left is removed here instead, once its process is gone.
    _remove_leftovers(final)
    tmp = temp_path(final)
    try:
        tmp.parent.mkdir()
        yield tmp
        # on the disk before the rename: after a power loss the final name holds the whole
        # file, or the previous one, or nothing; never an empty or partial file
        _sync(tmp)
        if final.is_dir():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _sync_folder(final.parent)  # makes the rename itself durable
    except Exception as err:
        if isinstance(err, FacetvizError) or not (is_disk_full(err) or _nearly_full(final.parent)):
            raise
        _remove(tmp.parent)  # first, so that the message reports the space the file held
        raise DiskFullError(disk_full_message(final)) from err
    finally:
        _remove(tmp.parent)


# This machine's name as it appears in temporary names (letters, digits, `_`, `-`; short).
_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:24] or "host"
# .<final name>.<host>.<pid>.<random>.partial (a writer's folder); the old fixed name too
_TEMP = re.compile(
    r"\.(?P<name>.+?)(\.(?P<host>[A-Za-z0-9_-]+)\.(?P<pid>\d+)\.[0-9a-f]{8})?\.partial",
    re.DOTALL,
)


def temp_path(final: Path, pid: int | None = None) -> Path:
    """Where process `pid` (this one by default) writes `final` before the rename.

    A folder of the writer's own beside `final` (host, process, a random part), holding
    `.<name>.partial`: the file's own name stays what it always was, since torch.save writes
    it into the archive (`.model.pt/data.pkl`), and a unique name would change every checkpoint's
    bytes. `partial_files` finds both as `.*.partial`.
    """
    pid = os.getpid() if pid is None else pid
    folder = f".{final.name}.{_HOST}.{pid}.{secrets.token_hex(4)}.partial"
    return final.parent / folder / f".{final.name}.partial"


def _remove_leftovers(final: Path) -> None:
    """Remove the temporary files of `final` whose writer has died (a job killed outright).

    A leftover of a live process, or of another machine (whose processes cannot be seen from
    here), is kept: its writer may still be running. The old fixed name is always a leftover.
    """
    prefix = f".{final.name}."
    with os.scandir(final.parent) as entries:
        names = [e.name for e in entries if e.name.startswith(prefix)]
    for name in names:
        match = _TEMP.fullmatch(name)
        if match is None or match["name"] != final.name:
            continue  # another output's file, e.g. of `name.x`
        if match["pid"] is not None and match["host"] != _HOST:
            log.warning("kept %s: written on %s, where it may still run; delete it if not",
                        final.parent / name, match["host"])  # fmt: skip
        elif match["pid"] is None or not _alive(int(match["pid"])):
            _remove(final.parent / name)


def _alive(pid: int) -> bool:
    """Whether process `pid` of this machine still runs (a zombie does not)."""
    if pid == os.getpid() or os.name != "posix":
        return True  # this process's other threads; elsewhere signal 0 would end the process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, owned by another user
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): signal 0 is all there is
    return stat.rpartition(")")[2].split()[0] != "Z"


def _sync(path: Path) -> None:
    """Flush `path` to the disk: a file, or every file and folder of a folder output."""
    if path.is_dir() and not path.is_symlink():
        for folder, _folders, files in os.walk(path, topdown=False):  # files, then their folder
            for name in files:
                _fsync(Path(folder, name))
            _sync_folder(Path(folder))
    else:
        _fsync(path)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _sync_folder(folder: Path) -> None:
    """Flush a folder's entries, where the OS allows. Best effort: the files are already on the
    disk, so a folder that cannot be synced risks losing a rename, never a file's content."""
    try:
        descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # Windows cannot open a folder
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some filesystems refuse fsync on a folder (EINVAL)
    finally:
        os.close(descriptor)


def is_disk_full(err: BaseException) -> bool:
    """Whether `err`, or an error it was raised from, says the disk (or a quota) is full.

    h5py reports it as an OSError or, while closing a file, a RuntimeError whose message holds
    HDF5's "errno = 28"; Python's own writes as OSError(ENOSPC).
    """
    seen: BaseException | None = err
    while seen is not None:
        if getattr(seen, "errno", None) in _FULL_ERRNOS:
            return True
        if any(text in str(seen) for text in _FULL_MESSAGES):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _nearly_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < NEARLY_FULL_BYTES
    except OSError:
        return False


def disk_full_message(path: str | Path) -> str:
    """What to tell the user when `path` could not be written for lack of space."""
    path = Path(path)
    try:
        usage = shutil.disk_usage(path.parent)
        space = f"{_size(usage.free)} free of {_size(usage.total)}"
    except OSError:
        space = "free space unknown"
    return (
        f"No space left on device while writing {path} (the filesystem of {path.parent}: "
        f"{space}). Nothing was kept under that name. Free some space (or point results/ at a "
        "larger disk) and run the same command again: finished jobs are not redone."
    )


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024:
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} TB"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def write_json(path: str | Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path, stage: str = "facets") -> Any:
    """A JSON output of an earlier stage, with an error that says what to rerun."""
    path = Path(path)
    if not path.exists():
        raise FacetvizError(f"{path} does not exist: run the '{stage}' stage first.")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise FacetvizError(
            f"{path} is not valid JSON ({err}): delete it and rerun the '{stage}' stage."
        ) from err


def open_h5(path: str | Path, stage: str) -> h5py.File:
    """Open an HDF5 input read-only (writing would bump its mtime and rerun everything after it).

    `stage` names the rule that makes the file, so the error can say what to rerun.
    """
    path = Path(path)
    if not path.exists():
        raise FacetvizError(f"{path} does not exist: run the '{stage}' stage first.")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise FacetvizError(
            f"{path} is not a readable HDF5 file ({err}). It is corrupt or truncated: "
            f"delete it and rerun (snakemake reruns the '{stage}' stage that makes it)."
        ) from err


def require_h5_keys(handle: h5py.File, keys: list[str], stage: str) -> None:
    missing = [key for key in keys if key not in handle]
    if missing:
        raise FacetvizError(
            f"{handle.filename} lacks {', '.join(missing)}: it was written by another version or "
            f"is incomplete. Delete it and rerun the '{stage}' stage."
        )
