"""The one walk of a class folder (datasets.image_files): the parse-time check (has_image) and
the job's listing (scan_image_folder) agree on what a folder holds, neither follows links to
folders, so a folder that links to itself ends the walk at once, and the check stops at the
first image (cheap for ImageNet's 1,000 folders). Also the parse-time check of dataset.resize.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import dataset_settings, make_image_folder

import facetviz.data.datasets as data
from facetviz.core.errors import ConfigError
from facetviz.data.checks import check_dataset, has_image
from facetviz.data.datasets import IMAGE_EXTENSIONS, image_files, scan_image_folder


def _looping_folder(folder: Path) -> Path:
    """A class folder with no image and two links to itself (`ln -s . a; ln -s . b`): a walk
    that follows links visits 2^depth paths, without end."""
    folder.mkdir(parents=True)
    os.symlink(".", folder / "a")
    os.symlink(".", folder / "b")
    (folder / "notes.txt").write_text("no images")
    return folder


def _mixed_tree(tmp_path: Path) -> Path:
    """Classes with images in nested folders, hidden files, a link to an image (followed, as
    rglob does) and a link to a folder of images (not followed)."""
    root = make_image_folder(tmp_path / "tree", {"a": 3, "b": 2, "c": 2})
    outside = make_image_folder(tmp_path / "outside", {"x": 2})
    (root / "a" / "deep" / "deeper").mkdir(parents=True)
    (root / "a" / "img_000.jpg").rename(root / "a" / "deep" / "deeper" / "moved.JPG")
    (root / "a" / ".hidden.png").write_bytes((root / "a" / "img_001.png").read_bytes())
    os.symlink(outside / "x" / "img_000.jpg", root / "b" / "linked.jpg")
    os.symlink(outside / "x", root / "c" / "linked-folder")
    os.symlink(root / "c", root / "c" / "deep-loop")  # a link back up: not followed
    return root


def _rglob_listing(folder: Path) -> list[Path]:
    """What the job listed before the one walk (Path.rglob), for comparison."""
    return sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
    )


def test_a_folder_that_links_to_itself_ends_the_walk_at_once(tmp_path: Path) -> None:
    loop = _looping_folder(tmp_path / "train" / "d")
    start = time.monotonic()
    assert list(image_files(loop)) == []
    assert has_image(loop) is False
    assert time.monotonic() - start < 1.0
    # with a class of images beside it, the job lists those and none of the loop's
    make_image_folder(tmp_path / "train", {"a": 2})
    names, paths, fine = scan_image_folder(tmp_path / "train")
    assert names == ["a", "d"] and len(paths) == 2 and fine.tolist() == [0, 0]


def test_a_selected_class_folder_that_loops_is_refused_naming_it(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "train", {"a": 2, "b": 2})
    loop = _looping_folder(root / "d")
    settings = dataset_settings(kind="image_folder", root=str(root))
    with pytest.raises(ConfigError, match="class 'd' has no images") as err:
        check_dataset(settings, {2: "neurons[0] (x).class"})
    assert f"{loop} holds no image files" in str(err.value)
    assert "links to folders inside it are not followed" in str(err.value)


def test_the_check_and_the_job_see_the_same_images(tmp_path: Path) -> None:
    root = _mixed_tree(tmp_path)
    names, paths, _fine = scan_image_folder(root)
    for name in names:
        walked = sorted(image_files(root / name))
        assert walked == [p for p in paths if p.parent.is_relative_to(root / name)]
        assert walked == _rglob_listing(root / name)  # what the job listed before: unchanged
        assert has_image(root / name) == bool(walked)
    assert root / "a" / "deep" / "deeper" / "moved.JPG" in paths
    assert root / "a" / ".hidden.png" in paths
    assert root / "b" / "linked.jpg" in paths
    assert not any("linked-folder" in str(p) or "deep-loop" in str(p) for p in paths)


def test_a_class_folder_that_is_itself_a_link_is_walked(tmp_path: Path) -> None:
    outside = make_image_folder(tmp_path / "outside", {"x": 3})
    root = make_image_folder(tmp_path / "train", {"a": 1})
    os.symlink(outside / "x", root / "x")  # a tree of links to class folders is common
    names, paths, fine = scan_image_folder(root)
    assert names == ["a", "x"] and fine.tolist() == [0, 1, 1, 1]
    assert has_image(root / "x")


def test_the_check_stops_at_the_first_image(tmp_path: Path, monkeypatch) -> None:
    """ImageNet's class folders are flat: the check lists one folder per class, and none of
    the folders below one that holds an image."""
    root = make_image_folder(tmp_path / "train", {"a": 2})
    for i in range(50):
        (root / "a" / f"sub{i:02d}").mkdir()
    listed = []
    scandir = os.scandir

    def counting(path):
        listed.append(path)
        return scandir(path)

    monkeypatch.setattr(data.os, "scandir", counting)
    assert has_image(root / "a") and listed == [str(root / "a")]


def test_missing_or_unreadable_folders_hold_no_images(tmp_path: Path) -> None:
    assert list(image_files(tmp_path / "missing")) == []
    assert has_image(tmp_path / "missing") is False
    (tmp_path / "file.jpg").write_bytes(b"x")
    assert list(image_files(tmp_path / "file.jpg")) == []  # not a folder


# --- dataset.resize ------------------------------------------------------------------------


def test_resize_below_the_image_size_is_refused(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "train", {"a": 1})
    folder = {"kind": "image_folder", "root": str(root)}
    with pytest.raises(ConfigError, match="dataset.resize: 100 px is smaller") as err:
        check_dataset(dataset_settings(**folder, resize=100))
    assert "224 px (the default of image_folder)" in str(err.value)
    assert "padded with black" in str(err.value)
    with pytest.raises(ConfigError, match=r"dataset.image_size, 64 px \(as set\)"):
        check_dataset(dataset_settings(**folder, image_size=64, resize=63))
    check_dataset(dataset_settings(**folder, image_size=64, resize=64))  # equal: no padding
    check_dataset(dataset_settings(**folder, image_size=64))  # the default: 73


def test_resize_of_fashion_mnist_is_not_checked(fashion_dir: Path) -> None:
    # Fashion-MNIST ignores dataset.resize (its images are resized to image_size whole)
    check_dataset(dataset_settings(root=str(fashion_dir), resize=8))
