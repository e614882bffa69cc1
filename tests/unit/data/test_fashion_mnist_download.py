"""Fashion-MNIST's download is safe in parallel and checks what it gets: jobs take turns under a
lock in the download folder, each file is written under a temporary name, checked against its
MD5 and only then renamed, a partial or corrupt file counts as absent, and dataset.download:
false forbids any download.

There is no network here: `fetch` is replaced by a copy from a fake mirror of small synthetic
IDX files, and the MD5s by those files' own.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO, dataset_settings, synthetic_fashion_images, write_idx

import facetviz.data.fashion_mnist as fashion_mnist
from facetviz.core.errors import ConfigError, FacetvizError
from facetviz.data.checks import check_dataset
from facetviz.data.datasets import open_dataset
from facetviz.data.fashion_mnist import (
    LOCK_FILE,
    check_fashion_mnist_available,
    find_fashion_mnist,
    read_idx,
)

FILES = {
    "train-images-idx3-ubyte.gz": "train images",
    "train-labels-idx1-ubyte.gz": "train labels",
    "t10k-images-idx3-ubyte.gz": "test images",
    "t10k-labels-idx1-ubyte.gz": "test labels",
}
CHUNK = 4096


def _md5(path: Path) -> str:
    return hashlib.new("md5", path.read_bytes()).hexdigest()


def _published(folder: Path) -> Path:
    """The four files as a mirror publishes them (gzipped IDX), small and synthetic."""
    folder.mkdir()
    for split, n, seed in (("train", 300, 0), ("t10k", 60, 1)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", synthetic_fashion_images(labels, seed))
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", labels)
    return folder


class Mirror:
    """A fake mirror: `fetch` copies its file in chunks (slowly, so that downloads overlap) and
    logs each call to a file, which processes share; `kill_after` bytes of `kill_file` it
    kills its own process (SIGKILL), as a lost node would."""

    def __init__(self, files: Path, log: Path) -> None:
        self.files, self.log = files, log
        self.kill_file: str | None = None
        self.kill_after = 0
        self.garble = False

    def fetch(self, url: str, destination: Path) -> None:
        name = url.rsplit("/", 1)[-1]
        with open(self.log, "a") as log:
            log.write(f"{os.getpid()} {name} {destination.name}\n")
        data = (self.files / name).read_bytes()
        if self.garble:
            data = data[: len(data) // 2]  # a mirror that sends a cut-off file
        with open(destination, "wb") as handle:
            for start in range(0, len(data), CHUNK):
                handle.write(data[start : start + CHUNK])
                handle.flush()
                if name == self.kill_file and start >= self.kill_after:
                    os.kill(os.getpid(), signal.SIGKILL)
                time.sleep(0.002)

    def calls(self) -> list[list[str]]:
        return (
            [line.split() for line in self.log.read_text().splitlines()]
            if self.log.exists()
            else []
        )


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Mirror:
    """No Debian copy, an empty download folder, and the fake mirror in place of the network."""
    files = _published(tmp_path / "mirror")
    fake = Mirror(files, tmp_path / "fetches.log")
    (tmp_path / "debian").mkdir()
    monkeypatch.setattr(fashion_mnist, "DEBIAN_FASHION_MNIST", tmp_path / "debian")
    monkeypatch.setattr(fashion_mnist, "DOWNLOAD_DIR", tmp_path / "download")
    monkeypatch.setattr(fashion_mnist, "download_md5s", lambda: {n: _md5(files / n) for n in FILES})
    monkeypatch.setattr(fashion_mnist, "download_mirrors", lambda: ["fake://mirror/"])
    monkeypatch.setattr(fashion_mnist, "fetch", fake.fetch)
    return fake


def _assert_one_good_copy(folder: Path, mirror: Mirror) -> None:
    """The four files, each the mirror's own, and nothing else but the lock file."""
    assert sorted(p.name for p in folder.iterdir()) == sorted([*FILES, LOCK_FILE])
    for name in FILES:
        assert _md5(folder / name) == _md5(mirror.files / name), name


def test_a_download_is_checked_and_renamed_into_place(mirror: Mirror) -> None:
    folder = find_fashion_mnist(None)
    assert folder == fashion_mnist.DOWNLOAD_DIR
    _assert_one_good_copy(folder, mirror)
    calls = mirror.calls()
    assert sorted(name for _pid, name, _temp in calls) == sorted(FILES)
    # each went to a temporary name first, never to its own
    assert all(
        temp.startswith(f".{name}.") and temp.endswith(".partial") for _, name, temp in calls
    )
    assert len(open_dataset(dataset_settings(), split="test")) == 60
    # a second look finds it, and downloads nothing
    assert find_fashion_mnist(None) == folder and len(mirror.calls()) == 4


def _download_in_a_process(start: float) -> None:
    time.sleep(max(0.0, start - time.time()))  # both start at once
    find_fashion_mnist(None)


def test_two_processes_downloading_at_once_leave_one_good_copy(mirror: Mirror) -> None:
    """As the `train` and `oracle` jobs of two training seeds may: they take turns under the
    lock, the first downloads, the others find its files."""
    context = multiprocessing.get_context("fork")  # the children keep the fake mirror
    start = time.time() + 0.5
    workers = [context.Process(target=_download_in_a_process, args=(start,)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    _assert_one_good_copy(fashion_mnist.DOWNLOAD_DIR, mirror)
    calls = mirror.calls()
    assert sorted(name for _pid, name, _temp in calls) == sorted(FILES)  # each file once
    assert len({pid for pid, _name, _temp in calls}) == 1  # by one process


def _killed_download() -> None:
    find_fashion_mnist(None)


def test_a_killed_download_is_not_taken_as_present(mirror: Mirror) -> None:
    mirror.kill_file, mirror.kill_after = "train-images-idx3-ubyte.gz", 2 * CHUNK
    worker = multiprocessing.get_context("fork").Process(target=_killed_download)
    worker.start()
    worker.join(60)
    assert worker.exitcode == -signal.SIGKILL
    folder = fashion_mnist.DOWNLOAD_DIR
    left = [p.name for p in folder.iterdir()]
    assert "train-images-idx3-ubyte.gz" not in left  # only the temporary file holds it
    assert any(n.startswith(".train-images-idx3-ubyte.gz.") for n in left), left
    assert fashion_mnist._local_copy() is None
    with pytest.raises(FacetvizError, match="dataset.download: false"):
        find_fashion_mnist(None, download=False)  # not present
    # the next job downloads it again, and the killed one's temporary file goes
    mirror.kill_file = None
    assert find_fashion_mnist(None) == folder
    _assert_one_good_copy(folder, mirror)


@pytest.mark.parametrize("damage", ["cut off", "garbage", "empty"])
def test_a_corrupt_file_under_its_final_name_is_downloaded_again(mirror: Mirror, damage) -> None:
    folder = fashion_mnist.DOWNLOAD_DIR
    folder.mkdir()
    for name in FILES:
        (folder / name).write_bytes((mirror.files / name).read_bytes())
    broken = folder / "train-labels-idx1-ubyte.gz"
    whole = broken.read_bytes()
    broken.write_bytes({"cut off": whole[:-10], "garbage": b"x" * len(whole), "empty": b""}[damage])
    assert find_fashion_mnist(None) == folder
    assert [name for _pid, name, _temp in mirror.calls()] == [broken.name]  # only that one
    _assert_one_good_copy(folder, mirror)


def test_a_partly_unpacked_earlier_download_counts_as_absent(mirror: Mirror) -> None:
    """torchvision's own layout (FashionMNIST/raw, unpacked), as an earlier version left it;
    a file cut off there is seen by the size its IDX header gives."""
    raw = fashion_mnist.DOWNLOAD_DIR / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in FILES:
        write_idx(raw / name.removesuffix(".gz"), read_idx(mirror.files / name))
    assert find_fashion_mnist(None) == raw and mirror.calls() == []
    images = raw / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-1])
    assert find_fashion_mnist(None) == fashion_mnist.DOWNLOAD_DIR
    assert len(mirror.calls()) == 4


def test_a_mirror_that_sends_a_wrong_file_keeps_nothing(mirror: Mirror) -> None:
    mirror.garble = True
    with pytest.raises(FacetvizError, match="MD5") as err:
        find_fashion_mnist(None)
    assert "the download of train-images-idx3-ubyte.gz failed" in str(err.value)
    assert [p.name for p in fashion_mnist.DOWNLOAD_DIR.iterdir()] == [LOCK_FILE]


def test_a_download_folder_that_cannot_be_made_is_named(
    mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a-file").write_text("")
    monkeypatch.setattr(fashion_mnist, "DOWNLOAD_DIR", tmp_path / "a-file" / "fashion-mnist")
    with pytest.raises(FacetvizError, match="it cannot be downloaded there") as err:
        find_fashion_mnist(None)
    assert "a-file/fashion-mnist/" in str(err.value) and "dataset-fashion-mnist" in str(err.value)
    assert mirror.calls() == []


def test_download_false_forbids_any_download(mirror: Mirror) -> None:
    folder = fashion_mnist.DOWNLOAD_DIR
    with pytest.raises(FacetvizError) as err:
        find_fashion_mnist(None, download=False)
    message = str(err.value)
    for fragment in ("dataset.download: false", str(folder), "dataset-fashion-mnist"):
        assert fragment in message
    assert mirror.calls() == [] and not folder.exists()
    # the job's dataset reads the setting
    with pytest.raises(FacetvizError, match="dataset.download: false"):
        open_dataset(dataset_settings(download=False))
    # at parse time, before any job: a ConfigError naming the key, folder and package
    settings = dataset_settings(download=False)
    with pytest.raises(ConfigError, match="dataset.download: false") as err:
        check_dataset(settings)
    assert str(folder) in str(err.value) and "apt-get install dataset-fashion-mnist" in str(
        err.value
    )
    check_fashion_mnist_available(True)  # allowed: the first job downloads it
    check_dataset(dataset_settings())
    # with a copy there, false is fine
    find_fashion_mnist(None)
    assert find_fashion_mnist(None, download=False) == folder
    check_dataset(settings)


def test_the_schemas_download_default_is_the_codes() -> None:
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    download = schema["properties"]["dataset"]["properties"]["download"]
    assert "default" not in download  # so that older runs' params stay the same: nothing reruns
    settings = dataset_settings()
    assert settings.download is None and settings.download_allowed is download["x-default"]
    assert dataset_settings(download=False).download_allowed is False
