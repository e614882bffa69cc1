"""Fashion-MNIST's IDX files: where they are (a configured folder, Debian's package, a download)
and how to read them. `data.FashionMNISTData` makes the dataset of them."""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from facetviz.core.errors import ConfigError, DiskFullError, FacetvizError
from facetviz.core.io import atomic_path
from facetviz.core.progress import log

# Label order of the IDX files (label 5 is Sandal, 6 is Shirt).
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_PACKAGE = "dataset-fashion-mnist"
DOWNLOAD_DIR = Path("data/fashion-mnist")  # relative: under the run's working directory
LOCK_FILE = ".download.lock"  # in the download folder: one download at a time
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as err:  # a cut-off or corrupt download
        raise FacetvizError(f"{path} cannot be read ({err}): corrupt or partial download?") from err
    if len(data) < 4:
        raise FacetvizError(f"{path} is truncated: no IDX header")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise FacetvizError(f"{path} is not an unsigned-byte IDX file (corrupt download?)")
    if len(data) < 4 + 4 * ndim:
        raise FacetvizError(f"{path} is truncated: incomplete IDX header")
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(dims)):
        raise FacetvizError(f"{path} is truncated: expected {int(np.prod(dims))} values")
    return array.reshape(dims)


def idx_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    return None


def _missing_idx_files(folder: Path) -> list[str]:
    return [stem for pair in IDX_FILES.values() for stem in pair if not idx_file(folder, stem)]


def _has_fashion_mnist(folder: Path) -> bool:
    return not _missing_idx_files(folder)


def check_fashion_mnist_root(folder: Path) -> None:
    """Raise ConfigError naming dataset.root unless `folder` holds the four IDX files."""
    missing = _missing_idx_files(folder)
    if not missing:
        return
    problem = f"lacks {', '.join(missing)}" if folder.is_dir() else "does not exist"
    every = ", ".join(stem for pair in IDX_FILES.values() for stem in pair)
    raise ConfigError(
        f"dataset.root: {folder} {problem}. It must be the folder with Fashion-MNIST's four IDX "
        f"files ({every}, optionally .gz); or leave dataset.root out to use Debian's copy in "
        f"{DEBIAN_FASHION_MNIST} (apt-get install dataset-fashion-mnist)."
    )


def find_fashion_mnist(root: str | None, download: bool = True) -> Path:
    """The folder with Fashion-MNIST's IDX files: the configured one, Debian's, an earlier
    download, or a new download into DOWNLOAD_DIR where `download` (dataset.download) allows."""
    if root:
        check_fashion_mnist_root(Path(root))
        return Path(root)
    found = _local_copy()
    if found is not None:
        return found
    if not download:
        raise FacetvizError(_not_found_message("dataset.download: false forbids downloading it"))
    try:
        return download_fashion_mnist(DOWNLOAD_DIR)
    except OSError as err:  # the folder or its lock file cannot be made (read-only, no rights)
        raise FacetvizError(_not_found_message(f"it cannot be downloaded there ({err})")) from err


def check_fashion_mnist_available(download: bool) -> None:
    """At parse time, without a configured root: with dataset.download false, a copy must be
    there (Debian's or an earlier download). Files are only listed here; the job checks them."""
    if download or _local_copy(verify=False) is not None:
        return
    raise ConfigError(_not_found_message("dataset.download: false forbids downloading it"))


def _local_copy(verify: bool = True) -> Path | None:
    """Debian's copy, else a whole earlier download (ours, or torchvision's own layout).

    Debian's files are the package manager's and are taken as they are. A download folder's
    files are checked (`verify`): a download cut off before this check existed, or a file
    copied there in part, counts as absent, so that it is downloaded again.
    """
    if _has_fashion_mnist(DEBIAN_FASHION_MNIST):
        return DEBIAN_FASHION_MNIST
    for folder in (DOWNLOAD_DIR, DOWNLOAD_DIR / "FashionMNIST" / "raw"):
        files = [idx_file(folder, stem) for pair in IDX_FILES.values() for stem in pair]
        if all(f is not None and (not verify or _intact(f)) for f in files):
            return folder
    return None


def _not_found_message(why: str) -> str:
    return (
        f"Fashion-MNIST is in neither {DEBIAN_FASHION_MNIST} nor {DOWNLOAD_DIR}/ (a partial or "
        f"corrupt download there counts as none), and {why}. Either "
        f"(1) install Debian's package as root: `apt-get install {DEBIAN_PACKAGE}` (its files go "
        f"to {DEBIAN_FASHION_MNIST}), (2) set dataset.root to a folder holding the four IDX "
        "files, or (3) let the first job download it into "
        f"{DOWNLOAD_DIR}/ (dataset.download: true, where a network is reachable)."
    )


# --- the download: one job at a time, each file checked before it takes its name ------------


def download_md5s() -> dict[str, str]:
    """File name -> MD5 of the four gzipped IDX files, as torchvision lists them: what a
    download must match before it takes its name."""
    from torchvision.datasets import FashionMNIST

    return {name: md5 for name, md5 in FashionMNIST.resources}


def download_mirrors() -> list[str]:
    from torchvision.datasets import FashionMNIST

    return list(FashionMNIST.mirrors)


def fetch(url: str, destination: Path) -> None:
    """Download `url` into the file `destination` (the one function that reaches the network;
    tests replace it)."""
    from torchvision.datasets.utils import download_url

    download_url(url, str(destination.parent), destination.name)


def download_fashion_mnist(folder: Path) -> Path:
    """Download Fashion-MNIST's four .gz files into `folder`; return it.

    Safe when several jobs start at once (`train` and `oracle` of every training seed): they
    take turns under a lock in the folder, and each one downloads only what is not there yet,
    so the first downloads and the others find its files. Each file is written under a
    temporary name (core.io.atomic_path), checked against its MD5, and only then renamed, so a
    killed download never leaves a file under a final name; a file that fails the check is
    downloaded again.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder):
        for name, md5 in download_md5s().items():
            stem = name.removesuffix(".gz")
            present = idx_file(folder, stem)
            if present is not None and _intact(present):
                continue
            (folder / stem).unlink(missing_ok=True)  # a broken unpacked file would be read first
            _download_file(folder / name, md5)
    return folder


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on LOCK_FILE in `folder` while the block runs. lockf takes a POSIX
    record lock, which NFS passes on to the server, so jobs on a cluster's nodes take turns
    too; the kernel drops it when its process dies, so a killed job leaves nothing locked. The
    file itself stays: removing it would let two jobs lock two different files."""
    with open(folder / LOCK_FILE, "a") as handle:  # "a" creates it and never truncates it
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            log.info("waiting for another job's download of Fashion-MNIST into %s", folder)
            fcntl.lockf(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(handle, fcntl.LOCK_UN)


def _download_file(path: Path, md5: str) -> None:
    """Download `path`'s file from the first mirror that gives it whole (its MD5)."""
    failures: list[str] = []
    error: Exception | None = None
    for mirror in download_mirrors():
        url = f"{mirror}{path.name}"
        log.info("downloading %s into %s", url, path.parent)
        try:
            with atomic_path(path) as temp:
                fetch(url, temp)
                got = _md5(temp)
                if got != md5:  # a cut-off or altered file: not kept
                    raise FacetvizError(f"MD5 {got}, expected {md5}")
            return
        except DiskFullError:
            raise  # no mirror helps: the stage says how much space there is
        except Exception as err:  # no network, a mirror down, a wrong file: try the next
            failures.append(f"{url}: {err}")
            error = err
    raise FacetvizError(
        _not_found_message(f"the download of {path.name} failed ({'; '.join(failures)})")
    ) from error


def _intact(path: Path) -> bool:
    """Whether a downloaded file is whole: a .gz has torchvision's MD5, an unpacked IDX file
    (torchvision's own layout) the size its header gives."""
    try:
        if path.suffix == ".gz":
            return _md5(path) == download_md5s().get(path.name)
        with open(path, "rb") as handle:
            header = handle.read(4)
            ndim = header[3] if len(header) == 4 else 0
            dims = struct.unpack(f">{ndim}I", handle.read(4 * ndim))
        return path.stat().st_size == 4 + 4 * ndim + int(np.prod(dims, dtype=np.int64))
    except (OSError, struct.error):
        return False


def _md5(path: Path) -> str:
    digest = hashlib.new("md5", usedforsecurity=False)  # a checksum, not security
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
