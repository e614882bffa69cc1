"""Fashion-MNIST's IDX files: where they are (a configured folder, Debian's package, a download)
and how to read them. `data.FashionMNISTData` makes the dataset of them."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from facetviz.core.errors import ConfigError, FacetvizError

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
DOWNLOAD_DIR = Path("data/fashion-mnist")
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


def find_fashion_mnist(root: str | None) -> Path:
    """The folder with Fashion-MNIST's IDX files: the configured one, Debian's, or a download."""
    if root:
        check_fashion_mnist_root(Path(root))
        return Path(root)
    for folder in (DEBIAN_FASHION_MNIST, DOWNLOAD_DIR, DOWNLOAD_DIR / "FashionMNIST" / "raw"):
        if _has_fashion_mnist(folder):
            return folder
    try:
        from torchvision.datasets import FashionMNIST

        FashionMNIST(str(DOWNLOAD_DIR), train=True, download=True)
        FashionMNIST(str(DOWNLOAD_DIR), train=False, download=True)
    except Exception as err:  # no network, or the mirror is down
        raise FacetvizError(
            "Fashion-MNIST not found. Either (1) install Debian's package as root: "
            "`apt-get install dataset-fashion-mnist` (files in /usr/share/datasets/fashion-mnist), "
            "(2) set dataset.root to a folder holding the four IDX files, or (3) run where a "
            f"network is reachable so torchvision can download it into {DOWNLOAD_DIR}/. "
            f"(Download failed: {err})"
        ) from err
    return DOWNLOAD_DIR / "FashionMNIST" / "raw"
