"""Datasets: IDX reading, label spaces, Fashion-MNIST discovery and loading, ImageFolder trees."""

from __future__ import annotations

import gzip
import shutil
import struct
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import dataset_settings, make_image_folder, write_idx
from PIL import Image

import facetviz.data.datasets as data
import facetviz.data.fashion_mnist as fashion_mnist
from facetviz.core.errors import ConfigError, FacetvizError
from facetviz.core.settings import DatasetSettings
from facetviz.data.checks import input_spec
from facetviz.data.datasets import (
    FASHION_MNIST_CLASSES,
    LabelSpace,
    find_fashion_mnist,
    holdout_split,
    open_dataset,
    read_idx,
)

COARSE_MAP = {
    "footwear": ["Sandal", "Sneaker", "Ankle boot"],
    "tops": ["T-shirt/top", "Pullover", "Coat", "Shirt"],
    "trouser-dress": ["Trouser", "Dress"],
    "bag": ["Bag"],
}


def fashion_cfg(root, **changes) -> DatasetSettings:
    """Fashion-MNIST in `root` (None: where the stage looks for it), the schema's defaults."""
    return dataset_settings(root=str(root) if root is not None else None, **changes)


def folder_cfg(root, **changes) -> DatasetSettings:
    return fashion_cfg(root, kind="image_folder", **changes)


def unknown_kind(root) -> DatasetSettings:
    """A kind that the schema would refuse, past it."""
    return replace(fashion_cfg(root), kind="cifar")


# --- read_idx --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_read_idx_roundtrip_images(tmp_path, name):
    array = np.random.default_rng(0).integers(0, 256, size=(5, 7, 3)).astype(np.uint8)
    write_idx(tmp_path / name, array)
    back = read_idx(tmp_path / name)
    assert back.dtype == np.uint8
    assert back.shape == (5, 7, 3)
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize("name", ["labels-idx1-ubyte", "labels-idx1-ubyte.gz"])
def test_read_idx_roundtrip_labels(tmp_path, name):
    labels = np.array([3, 0, 9, 9, 1], dtype=np.uint8)
    write_idx(tmp_path / name, labels)
    np.testing.assert_array_equal(read_idx(tmp_path / name), labels)


def test_read_idx_gz_file_is_really_gzipped(tmp_path):
    write_idx(tmp_path / "x.gz", np.zeros((2, 2), dtype=np.uint8))
    with gzip.open(tmp_path / "x.gz", "rb") as handle:
        assert handle.read()[:4] == b"\x00\x00\x08\x02"


@pytest.mark.parametrize(
    "header",
    [
        struct.pack(">HBB", 0, 0x0D, 1) + struct.pack(">I", 4),  # float32 data, not ubyte
        struct.pack(">HBB", 0x1F8B, 0x08, 1) + struct.pack(">I", 4),  # a gzip file named plainly
    ],
)
def test_read_idx_rejects_wrong_magic(tmp_path, header):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(header + bytes(4))
    with pytest.raises(FacetvizError, match="not an unsigned-byte IDX file"):
        read_idx(path)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_rejects_truncated_data(tmp_path, suffix):
    full = tmp_path / "full"
    write_idx(full, np.ones((4, 5, 5), dtype=np.uint8))
    raw = full.read_bytes()[:-7]  # header intact, the last 7 pixels missing
    path = tmp_path / f"cut-idx3-ubyte{suffix}"
    if suffix:
        with gzip.open(path, "wb") as handle:
            handle.write(raw)
    else:
        path.write_bytes(raw)
    with pytest.raises(FacetvizError, match="truncated: expected 100 values"):
        read_idx(path)


def test_read_idx_rejects_truncated_gzip_stream(tmp_path):
    # An interrupted download of a .gz file: the gzip stream itself ends early.
    write_idx(tmp_path / "x.gz", np.ones((20, 28, 28), dtype=np.uint8))
    cut = tmp_path / "cut-idx3-ubyte.gz"
    cut.write_bytes((tmp_path / "x.gz").read_bytes()[:-8])
    with pytest.raises(FacetvizError, match="cut-idx3-ubyte.gz"):
        read_idx(cut)


def test_read_idx_rejects_truncated_header(tmp_path):
    full = tmp_path / "full"
    write_idx(full, np.ones((4, 5, 5), dtype=np.uint8))
    cut = tmp_path / "cut-idx3-ubyte"
    cut.write_bytes(full.read_bytes()[:7])  # the dimension list is cut off
    with pytest.raises(FacetvizError, match="cut-idx3-ubyte"):
        read_idx(cut)


# --- LabelSpace --------------------------------------------------------------------------------


def test_label_space_without_map_is_identity():
    for label_map in (None, {}):
        space = LabelSpace.build(["a", "b", "c"], label_map)
        assert space.class_names == ("a", "b", "c")
        assert space.fine_names == ("a", "b", "c")
        assert space.fine_to_class == (0, 1, 2)
        assert space.has_fine_labels is False


def test_label_space_merges_classes_in_map_key_order():
    space = LabelSpace.build(["a", "b", "c", "d", "e"], {"z": ["d", "a"], "y": ["b"], "x": ["e"]})
    assert space.class_names == ("z", "y", "x")  # key order, not sorted
    assert space.fine_names == ("a", "b", "c", "d", "e")
    assert space.fine_to_class == (0, 1, -1, 0, 2)  # c is in no group
    assert space.has_fine_labels is True


def test_label_space_unknown_fine_class():
    with pytest.raises(ConfigError, match=r"dataset\.label_map\.g2: 'nope'") as err:
        LabelSpace.build(["a", "b"], {"g1": ["a"], "g2": ["nope"]})
    assert "Known classes: a, b" in str(err.value)


def test_label_space_class_listed_twice():
    with pytest.raises(ConfigError, match=r"dataset\.label_map: 'a' is listed under two"):
        LabelSpace.build(["a", "b"], {"g1": ["a"], "g2": ["b", "a"]})


def test_label_space_class_listed_twice_in_one_group():
    with pytest.raises(ConfigError, match=r"dataset\.label_map"):
        LabelSpace.build(["a", "b"], {"g1": ["a", "a"]})


# --- Fashion-MNIST ---------------------------------------------------------------------------


def test_open_fashion_mnist_items(fashion_dir):
    dataset = open_dataset(fashion_cfg(fashion_dir))
    assert len(dataset) == 400  # default split: train
    assert dataset.image_shape == (1, 28, 28)
    assert dataset.num_classes == 10
    assert dataset.label_space.class_names == FASHION_MNIST_CLASSES
    images = read_idx(fashion_dir / "train-images-idx3-ubyte.gz")
    labels = read_idx(fashion_dir / "train-labels-idx1-ubyte.gz")
    for position in (0, 1, 57, 399):
        pixels, label, fine, index = dataset[position]
        assert pixels.shape == (1, 28, 28)
        assert pixels.dtype == torch.float32
        assert float(pixels.min()) >= 0.0 and float(pixels.max()) <= 1.0
        assert index == position
        assert label == fine == int(labels[index])
        np.testing.assert_allclose(pixels[0].numpy(), images[index] / 255.0, atol=1e-6)
    assert float(dataset[0][0].max()) == pytest.approx(220 / 255)  # the bright bar


def test_open_fashion_mnist_test_split(fashion_dir):
    dataset = open_dataset(fashion_cfg(fashion_dir, split="test"))
    assert len(dataset) == 100
    assert dataset.description["split"] == "test"
    # an explicit split argument wins over the config's
    assert len(open_dataset(fashion_cfg(fashion_dir, split="test"), split="train")) == 400


def test_open_fashion_mnist_unknown_split(fashion_dir):
    with pytest.raises(ConfigError, match="dataset.split"):
        open_dataset(fashion_cfg(fashion_dir, split="holdout"))


def test_open_fashion_mnist_resized_to_model_input(fashion_dir):
    dataset = open_dataset(fashion_cfg(fashion_dir, image_size=32, channels=3))
    pixels = dataset[3][0]
    assert pixels.shape == (3, 32, 32)
    assert torch.equal(pixels[0], pixels[2])  # gray replicated into every channel
    assert float(pixels.min()) >= 0.0 and float(pixels.max()) <= 1.0


def test_open_fashion_mnist_with_label_map(fashion_dir):
    dataset = open_dataset(fashion_cfg(fashion_dir, label_map=COARSE_MAP))
    assert dataset.label_space.class_names == ("footwear", "tops", "trouser-dress", "bag")
    assert dataset.num_classes == 4
    assert len(dataset) == 400  # every fine class belongs to a group
    fine_labels = read_idx(fashion_dir / "train-labels-idx1-ubyte.gz")
    group_of = {fine: g for g, members in enumerate(COARSE_MAP.values()) for fine in members}
    seen_labels = set()
    for position in range(0, 400, 7):
        _, label, fine, index = dataset[position]
        assert fine == int(fine_labels[index])
        assert label == group_of[FASHION_MNIST_CLASSES[fine]]
        seen_labels.add(label)
    assert seen_labels == {0, 1, 2, 3}


def test_open_fashion_mnist_leaves_out_fine_classes_in_no_group(fashion_dir):
    label_map = {"shoes": ["Sneaker", "Sandal"], "bag": ["Bag"]}
    dataset = open_dataset(fashion_cfg(fashion_dir, label_map=label_map))
    kept = {FASHION_MNIST_CLASSES.index(n) for n in ("Sneaker", "Sandal", "Bag")}
    all_fine = read_idx(fashion_dir / "train-labels-idx1-ubyte.gz")
    expected = np.flatnonzero(np.isin(all_fine, list(kept)))
    assert 0 < len(expected) < 400
    np.testing.assert_array_equal(dataset.indices, expected)
    assert len(dataset) == len(expected)
    assert set(dataset.fine_labels.tolist()) == kept
    images = read_idx(fashion_dir / "train-images-idx3-ubyte.gz")
    for position in (0, len(expected) // 2, len(expected) - 1):
        pixels, label, fine, index = dataset[position]
        assert fine in kept
        assert fine == int(all_fine[index])
        assert label == (1 if fine == FASHION_MNIST_CLASSES.index("Bag") else 0)
        # the pixels still belong to the image at that index after leaving the others out
        np.testing.assert_allclose(pixels[0].numpy(), images[index] / 255.0, atol=1e-6)


def test_open_fashion_mnist_max_images_is_seeded(fashion_dir):
    cfg = fashion_cfg(fashion_dir, max_images=50)
    first = open_dataset(cfg, seed=3)
    again = open_dataset(cfg, seed=3)
    other = open_dataset(cfg, seed=4)
    assert len(first) == 50
    np.testing.assert_array_equal(first.indices, again.indices)
    assert not np.array_equal(first.indices, other.indices)
    assert len(set(first.indices.tolist())) == 50
    assert np.all(np.diff(first.indices) > 0)
    assert first.indices.min() >= 0 and first.indices.max() < 400
    labels = read_idx(fashion_dir / "train-labels-idx1-ubyte.gz")
    images = read_idx(fashion_dir / "train-images-idx3-ubyte.gz")
    for position in (0, 25, 49):
        pixels, _, fine, index = first[position]
        assert index == first.indices[position]
        assert fine == int(labels[index])
        np.testing.assert_allclose(pixels[0].numpy(), images[index] / 255.0, atol=1e-6)
    assert len(open_dataset(fashion_cfg(fashion_dir, max_images=1000))) == 400


def test_find_fashion_mnist_prefers_configured_root(fashion_dir):
    assert find_fashion_mnist(str(fashion_dir)) == fashion_dir


def test_find_fashion_mnist_root_without_files(tmp_path, fashion_dir):
    (tmp_path / "partial").mkdir()
    shutil.copy(fashion_dir / "train-images-idx3-ubyte.gz", tmp_path / "partial")
    for folder in (tmp_path / "partial", tmp_path / "missing"):
        with pytest.raises(FacetvizError, match="dataset.root") as err:
            find_fashion_mnist(str(folder))
        assert "t10k-labels-idx1-ubyte" in str(err.value)
    with pytest.raises(FacetvizError, match="dataset.root"):
        open_dataset(fashion_cfg(tmp_path / "partial"))


@pytest.fixture
def no_fashion_mnist(tmp_path, monkeypatch):
    """No Debian copy, an empty download folder, and a download that fails (no network)."""
    debian, download = tmp_path / "debian", tmp_path / "download"
    debian.mkdir()
    download.mkdir()
    monkeypatch.setattr(fashion_mnist, "DEBIAN_FASHION_MNIST", debian)
    monkeypatch.setattr(fashion_mnist, "DOWNLOAD_DIR", download)
    calls = []

    def offline(url, destination):
        calls.append((url, destination))
        raise RuntimeError(f"Error downloading {url}: no network")

    monkeypatch.setattr(fashion_mnist, "fetch", offline)
    return debian, download, calls


def test_find_fashion_mnist_not_found_names_all_options(no_fashion_mnist):
    _, download, calls = no_fashion_mnist
    with pytest.raises(FacetvizError) as err:
        find_fashion_mnist(None)
    message = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "dataset.root" in message
    assert "download" in message
    assert str(download) in message
    assert "no network" in message  # the download's own error is passed on
    assert isinstance(err.value.__cause__, RuntimeError)
    assert calls and download in calls[0][1].parents  # into the download folder,
    assert calls[0][1].name != "train-images-idx3-ubyte.gz"  # under a temporary name
    assert calls[0][0].endswith("/train-images-idx3-ubyte.gz")  # from torchvision's mirror
    assert [p.name for p in download.iterdir()] == [".download.lock"]  # no partial file left


def test_open_dataset_without_fashion_mnist_fails_cleanly(no_fashion_mnist):
    with pytest.raises(FacetvizError, match="apt-get install dataset-fashion-mnist"):
        open_dataset(fashion_cfg(None))


def test_find_fashion_mnist_uses_debian_copy_first(no_fashion_mnist, fashion_dir):
    debian, _, calls = no_fashion_mnist
    for source in fashion_dir.iterdir():
        shutil.copy(source, debian)
    assert find_fashion_mnist(None) == debian
    assert calls == []  # nothing downloaded
    assert len(open_dataset(fashion_cfg(None, split="test"))) == 100


def test_find_fashion_mnist_uses_earlier_download(no_fashion_mnist, fashion_dir):
    _, download, calls = no_fashion_mnist
    raw = download / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for source in fashion_dir.iterdir():  # torchvision keeps them unzipped
        write_idx(raw / source.name.removesuffix(".gz"), read_idx(source))
    assert find_fashion_mnist(None) == raw
    assert calls == []


# --- ImageFolder -----------------------------------------------------------------------------


def test_image_folder_classes_from_folder_names(image_folder):
    dataset = open_dataset(folder_cfg(image_folder, image_size=16))
    assert dataset.label_space.class_names == ("n01", "n02", "n03")
    assert len(dataset) == 15
    assert dataset.labels.tolist() == [0] * 6 + [1] * 5 + [2] * 4
    np.testing.assert_array_equal(dataset.fine_labels, dataset.labels)
    assert dataset.indices.tolist() == list(range(15))
    assert dataset.description["split"] == "all"


def test_image_folder_ignores_hidden_folders_and_other_files(tmp_path):
    root = make_image_folder(tmp_path / "tree", {"b": 2, "a": 3, ".cache": 2})
    (root / "a" / "notes.txt").write_text("not an image")
    dataset = open_dataset(folder_cfg(root, image_size=16))
    assert dataset.label_space.class_names == ("a", "b")
    assert len(dataset) == 5


@pytest.mark.parametrize("channels", [1, 3])
def test_image_folder_channels_and_size(image_folder, channels):
    dataset = open_dataset(folder_cfg(image_folder, image_size=16, channels=channels))
    gray_files = 0
    for position in range(len(dataset)):
        pixels, _, _, _ = dataset[position]
        assert pixels.shape == (channels, 16, 16)
        assert pixels.dtype == torch.float32
        assert float(pixels.min()) >= 0.0 and float(pixels.max()) <= 1.0
        if channels == 3 and position in (2, 5, 8, 13):  # the grayscale files (i % 3 == 2)
            gray_files += 1
            assert torch.equal(pixels[0], pixels[1]) and torch.equal(pixels[1], pixels[2])
    assert dataset.pixels([0, 4, 7]).shape == (3, channels, 16, 16)
    assert gray_files == (4 if channels == 3 else 0)


def test_image_folder_default_channels_and_size(image_folder):
    dataset = open_dataset(folder_cfg(image_folder))
    assert dataset.image_shape == (3, 224, 224)
    assert dataset.resize == 256
    assert dataset[2][0].shape == (3, 224, 224)  # a grayscale png, upscaled


def test_image_folder_rgb_colour_survives(image_folder):
    # each class has its own dominant colour channel (n01 red, n02 green, n03 blue)
    dataset = open_dataset(folder_cfg(image_folder, image_size=16, channels=3))
    for position, colour in ((0, 0), (6, 1), (11, 2)):  # RGB jpg files of each class
        means = dataset[position][0].mean(dim=(1, 2))
        assert int(means.argmax()) == colour


def test_image_folder_label_map_keeps_folder_as_fine_label(image_folder):
    label_map = {"late": ["n03"], "early": ["n01", "n02"]}
    cfg = folder_cfg(image_folder, image_size=16, label_map=label_map)
    dataset = open_dataset(cfg)
    assert dataset.label_space.class_names == ("late", "early")
    assert dataset.label_space.fine_names == ("n01", "n02", "n03")
    assert dataset.label_space.has_fine_labels
    assert dataset.fine_labels.tolist() == [0] * 6 + [1] * 5 + [2] * 4
    assert dataset.labels.tolist() == [1] * 11 + [0] * 4
    _, label, fine, index = dataset[7]
    assert (label, fine, index) == (1, 1, 7)


def test_image_folder_label_map_leaves_out_folders(image_folder):
    dataset = open_dataset(folder_cfg(image_folder, image_size=16, label_map={"x": ["n02"]}))
    assert len(dataset) == 5
    assert dataset.indices.tolist() == [6, 7, 8, 9, 10]
    assert dataset[0][1:] == (0, 1, 6)


def test_image_folder_unknown_folder_in_label_map(image_folder):
    with pytest.raises(ConfigError, match=r"dataset\.label_map\.x: 'n04'"):
        open_dataset(folder_cfg(image_folder, label_map={"x": ["n04"]}))


def test_image_folder_images_above_the_pixel_limit(tmp_path, monkeypatch):
    """Above PIL.Image.MAX_IMAGE_PIXELS (lowered here so that 256 x 192 px is above it, and not
    above twice it, where PIL itself refuses): a JPEG is decoded reduced and gives the image a
    whole decode would; a PNG, or a JPEG that cannot be reduced enough, is refused as
    unreadable (so dataset.on_unreadable: skip leaves it out). PIL's warning never shows."""
    y, x = np.mgrid[0:192, 0:256]
    smooth = np.stack([x, y, (x + y) // 2], axis=-1).astype(np.uint8)  # what DCT scaling keeps
    for name in ("a", "b"):
        (tmp_path / "tree" / name).mkdir(parents=True)
    Image.fromarray(smooth).save(tmp_path / "tree" / "a" / "photo.jpg", quality=95)
    Image.fromarray(smooth).save(tmp_path / "tree" / "b" / "scan.png")
    settings = folder_cfg(tmp_path / "tree", image_size=16, resize=32, channels=3)
    whole = open_dataset(settings)[0][0]  # under PIL's default limit: decoded whole
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 30_000)
    dataset = open_dataset(settings)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        reduced = dataset[0][0]
        with pytest.raises(data.UnreadableImage, match=r"scan\.png: 256 x 192 px is 0\.0492 "
                           r"megapixels, more than the 0\.03 megapixels"):  # fmt: skip
            dataset[1]
    assert reduced.shape == whole.shape == (3, 16, 16)
    assert float((reduced - whole).abs().mean()) < 0.02
    placeholder = data.SkipUnreadable(dataset, dataset.image_shape)[1]
    assert placeholder[3] == -1  # skipped, under dataset.on_unreadable: skip
    # a JPEG whose shorter side cannot be halved without going below `resize` stays whole
    too_close = open_dataset(folder_cfg(tmp_path / "tree", image_size=16, resize=100))
    with pytest.raises(data.UnreadableImage, match=r"photo\.jpg: 256 x 192 px"):
        too_close[0]


def test_holdout_split_partitions_and_is_deterministic():
    split = holdout_split(40, 0.25, seed=5)
    fit, holdout = split["fit"].tolist(), split["holdout"].tolist()
    assert len(holdout) == 10 and len(fit) == 30
    assert not set(fit) & set(holdout)
    assert sorted(fit + holdout) == list(range(40))
    again = holdout_split(40, 0.25, seed=5)
    np.testing.assert_array_equal(again["holdout"], split["holdout"])
    assert holdout_split(40, 0.25, seed=6)["holdout"].tolist() != holdout
    assert holdout_split(10, 0.01, seed=0)["holdout"].size == 1  # at least one image held out
    assert holdout_split(10, 0.0, seed=0)["holdout"].size == 0


def test_image_folder_fit_and_holdout_splits(image_folder):
    cfg = folder_cfg(image_folder, image_size=16, holdout=0.2)
    fit = open_dataset(cfg, split="fit", seed=1)
    holdout = open_dataset(cfg, split="holdout", seed=1)
    assert len(holdout) == 3 and len(fit) == 12
    assert not set(fit.indices.tolist()) & set(holdout.indices.tolist())
    assert sorted([*fit.indices.tolist(), *holdout.indices.tolist()]) == list(range(15))
    again = open_dataset(cfg, split="holdout", seed=1)
    np.testing.assert_array_equal(again.indices, holdout.indices)
    everything = open_dataset(cfg, split="all", seed=1)
    for position in range(len(holdout)):
        index = holdout[position][3]
        assert holdout[position][1] == everything[index][1]
        assert torch.equal(holdout[position][0], everything[index][0])


def test_image_folder_needs_root(tmp_path):
    with pytest.raises(ConfigError, match="dataset.root"):
        open_dataset(folder_cfg(None))
    with pytest.raises(FacetvizError, match="dataset.root"):
        open_dataset(folder_cfg(tmp_path / "missing"))
    (tmp_path / "empty" / "n01").mkdir(parents=True)
    with pytest.raises(FacetvizError, match="no images found"):
        open_dataset(folder_cfg(tmp_path / "empty"))


def test_open_dataset_unknown_kind(tmp_path):
    with pytest.raises(ConfigError, match="dataset.kind"):
        open_dataset(unknown_kind(tmp_path))


# --- input_spec ------------------------------------------------------------------------------


def test_input_spec_image_folder_reads_no_images(tmp_path, monkeypatch):
    root = tmp_path / "tree"
    for name in ("n02", "n01", ".hidden"):
        (root / name).mkdir(parents=True)
        (root / name / "img.jpg").write_bytes(b"not a jpeg")  # never opened
    (root / "README").write_text("a file, not a class")

    def no_open(*args, **kwargs):
        raise AssertionError("input_spec opened an image")

    monkeypatch.setattr(data.Image, "open", no_open)
    shape, names = input_spec(folder_cfg(root))
    assert shape == (3, 224, 224)
    assert names == ("n01", "n02")
    shape, names = input_spec(
        folder_cfg(root, image_size=64, channels=1, label_map={"all": ["n01", "n02"]})
    )
    assert shape == (1, 64, 64)
    assert names == ("all",)


def test_input_spec_matches_open_dataset(image_folder):
    cfg = folder_cfg(image_folder, image_size=16, label_map={"b": ["n02"], "a": ["n01", "n03"]})
    dataset = open_dataset(cfg)
    assert input_spec(cfg) == (dataset.image_shape, dataset.label_space.class_names)


def test_input_spec_fashion_mnist_needs_no_files(tmp_path):
    cfg = fashion_cfg(tmp_path / "does-not-exist", label_map=COARSE_MAP)
    assert input_spec(cfg) == ((1, 28, 28), ("footwear", "tops", "trouser-dress", "bag"))
    assert input_spec(fashion_cfg(None, channels=3, image_size=32)) == (
        (3, 32, 32),
        FASHION_MNIST_CLASSES,
    )


def test_input_spec_errors(tmp_path):
    with pytest.raises(ConfigError, match="dataset.root"):
        input_spec(folder_cfg(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="dataset.kind"):
        input_spec(unknown_kind(None))
    with pytest.raises(ConfigError, match=r"dataset\.label_map"):
        input_spec(fashion_cfg(None, label_map={"x": ["Sock"]}))


def test_fashion_mnist_class_order_matches_torchvision():
    # label 5 is Sandal and 6 is Shirt; swapping them once put shirts into "footwear"
    from torchvision.datasets import FashionMNIST

    assert list(FASHION_MNIST_CLASSES) == list(FashionMNIST.classes)
