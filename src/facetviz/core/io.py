"""Atomic outputs and safe reading of the files stages hand to each other."""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py

from facetviz.core.errors import DiskFullError, FacetvizError

# Below this much free space, a failed write is taken for a full disk even when the library that
# failed does not say so (torch.save reports only "unexpected pos").
NEARLY_FULL_BYTES = 1 << 20
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_FULL_MESSAGES = ("No space left on device", "Disk quota exceeded", "errno = 28", "errno = 122")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; it becomes `path` only if the block completes.

    An interrupted or failing job therefore never leaves a file (or folder) that looks finished.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    # A fixed name, so a job killed outright (SIGKILL, node failure) leaves a leftover that the
    # rerun of the same job removes; Snakemake never runs two jobs for one output at once.
    tmp = final.with_name(f".{final.name}.partial")
    _remove(tmp)
    try:
        yield tmp
        if final.is_dir():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except Exception as err:
        if isinstance(err, FacetvizError) or not (is_disk_full(err) or _nearly_full(final.parent)):
            raise
        _remove(tmp)  # first, so that the message reports the space the partial file held
        raise DiskFullError(disk_full_message(final)) from err
    finally:
        _remove(tmp)


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
