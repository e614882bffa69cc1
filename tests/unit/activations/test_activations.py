"""The activations stage: one streaming forward pass into one HDF5 file, and its reader."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import dataset_settings, model_settings

from facetviz import __version__
from facetviz.activations.extract import Activations, extract, shard_rows
from facetviz.core.errors import FacetvizError
from facetviz.core.io import open_h5
from facetviz.core.settings import DatasetSettings
from facetviz.data.datasets import FacetDataset, open_dataset, read_idx
from facetviz.model.networks import (
    Network,
    build_architecture,
    capture,
    load_network,
    save_checkpoint,
    unit_values,
)

LABEL_MAP = {
    "footwear": ["Sandal", "Sneaker", "Ankle boot"],
    "tops": ["T-shirt/top", "Pullover", "Coat", "Shirt"],
    "bag": ["Bag"],
}  # Trouser and Dress belong to no class: their images are left out
FACET_LAYER = "classifier.3"
CONV_LAYER = "features.6"
FC_LAYER = "classifier.5"
BATCH = 48  # does not divide the ~320 images


def dataset_cfg(root: Path) -> DatasetSettings:
    return dataset_settings(root=str(root), label_map=LABEL_MAP)


@pytest.fixture(scope="module")
def dataset(fashion_dir: Path) -> FacetDataset:
    return open_dataset(dataset_cfg(fashion_dir), "train", seed=0)


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory):
    """A random embedded CNN, saved as a checkpoint and loaded the way the stage loads it."""
    torch.manual_seed(1)
    module = build_architecture(model_settings(width=8), 1, len(LABEL_MAP))
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_checkpoint(path, module, {"classes": list(LABEL_MAP)})
    return load_network(model_settings(width=8), (1, 28, 28), len(LABEL_MAP), path)


@pytest.fixture(scope="module")
def activations_file(tmp_path_factory: pytest.TempPathFactory, network, dataset) -> Path:
    out = tmp_path_factory.mktemp("activations") / "activations.h5"
    extract(network, dataset, FACET_LAYER, [FC_LAYER, CONV_LAYER, FC_LAYER], out, batch_size=BATCH)
    return out


def direct_outputs(network, dataset: FacetDataset) -> dict[str, torch.Tensor]:
    pixels = dataset.pixels(range(len(dataset)))
    with capture(network.module, [FACET_LAYER, CONV_LAYER, FC_LAYER]) as outputs, torch.no_grad():
        network(pixels)
        return {name: out.clone() for name, out in outputs.items()}


def test_dataset_keeps_the_mapped_classes(dataset: FacetDataset, fashion_dir: Path) -> None:
    fine = read_idx(fashion_dir / "train-labels-idx1-ubyte.gz")
    kept = np.flatnonzero(~np.isin(fine, [1, 3]))  # all but Trouser and Dress
    assert len(dataset) == len(kept) > 300
    assert len(dataset) % BATCH != 0
    np.testing.assert_array_equal(dataset.indices, kept)


def test_codes_layout(activations_file: Path, dataset: FacetDataset) -> None:
    with h5py.File(activations_file, "r") as handle:
        codes = handle["codes"]
        assert codes.dtype == np.float16
        assert codes.shape == (len(dataset), 256)
        assert codes.chunks is not None
        assert codes.compression == "gzip"
        # every row was written, including the last, short batch
        assert np.all(np.isfinite(codes[:]))
        assert np.any(codes[-(len(dataset) % BATCH) :] != 0)


def test_layer_datasets(activations_file: Path, dataset: FacetDataset) -> None:
    n = len(dataset)
    with h5py.File(activations_file, "r") as handle:
        conv = handle[f"layers/{CONV_LAYER}"]
        assert sorted(conv) == ["center", "max", "mean"]
        for rule in ("center", "max", "mean"):
            assert conv[rule].shape == (n, 32)
            assert conv[rule].dtype == np.float32
        fc = handle[f"layers/{FC_LAYER}"]
        assert list(fc) == ["value"]
        assert fc["value"].shape == (n, len(LABEL_MAP))
        assert sorted(handle["layers"]) == sorted([CONV_LAYER, FC_LAYER])


def test_labels_and_indices(activations_file: Path, dataset: FacetDataset) -> None:
    with h5py.File(activations_file, "r") as handle:
        np.testing.assert_array_equal(handle["labels"][:], dataset.labels)
        np.testing.assert_array_equal(handle["fine_labels"][:], dataset.fine_labels)
        np.testing.assert_array_equal(handle["indices"][:], dataset.indices)
        for key in ("labels", "fine_labels", "indices"):
            assert handle[key].dtype == np.int64
    # the left-out fine classes (Trouser = 1, Dress = 3) are not in the file
    assert not np.isin(dataset.fine_labels, [1, 3]).any()
    assert set(np.unique(dataset.labels)) == {0, 1, 2}


def test_attributes(activations_file: Path, network) -> None:
    with h5py.File(activations_file, "r") as handle:
        attrs = dict(handle.attrs)
    assert attrs["facet_layer"] == FACET_LAYER
    assert json.loads(attrs["target_layers"]) == [FC_LAYER, CONV_LAYER]
    assert json.loads(attrs["model"]) == network.description
    assert json.loads(attrs["model"])["kind"] == "embedded"
    dataset_attr = json.loads(attrs["dataset"])
    assert dataset_attr["kind"] == "fashion_mnist"
    assert dataset_attr["split"] == "train"
    preprocessing = json.loads(attrs["preprocessing"])
    assert preprocessing["input_shape"] == [1, 28, 28]
    assert preprocessing["mean"] == [0.5]
    assert preprocessing["std"] == [0.5]
    assert preprocessing["pixel_range"] == [0, 1]
    assert json.loads(attrs["class_names"]) == list(LABEL_MAP)
    assert len(json.loads(attrs["fine_names"])) == 10
    assert bool(attrs["has_fine_labels"]) is True
    assert attrs["facetviz_version"] == __version__


def test_values_match_a_direct_forward_pass(activations_file: Path, network, dataset) -> None:
    expected = direct_outputs(network, dataset)
    conv = expected[CONV_LAYER]
    with h5py.File(activations_file, "r") as handle:
        codes = handle["codes"][:].astype(np.float32)
        np.testing.assert_allclose(
            codes, expected[FACET_LAYER].numpy(), rtol=2e-3, atol=2e-3 * float(codes.max())
        )
        np.testing.assert_allclose(
            handle[f"layers/{FC_LAYER}/value"][:], expected[FC_LAYER].numpy(), rtol=1e-4, atol=1e-5
        )
        np.testing.assert_allclose(
            handle[f"layers/{CONV_LAYER}/center"][:], conv[:, :, 3, 3].numpy(), rtol=1e-4, atol=1e-5
        )
        np.testing.assert_allclose(
            handle[f"layers/{CONV_LAYER}/max"][:], conv.amax((2, 3)).numpy(), rtol=1e-4, atol=1e-5
        )
        np.testing.assert_allclose(
            handle[f"layers/{CONV_LAYER}/mean"][:], conv.mean((2, 3)).numpy(), rtol=1e-4, atol=1e-5
        )


def test_reader_unit_and_codes(activations_file: Path, network, dataset) -> None:
    expected = direct_outputs(network, dataset)
    with Activations(activations_file) as activations:
        np.testing.assert_array_equal(activations.labels, dataset.labels)
        assert activations.class_names == list(LABEL_MAP)
        assert activations.has_fine_labels
        fc = activations.unit(FC_LAYER, 2, "max")  # fc layers ignore the spatial rule
        np.testing.assert_allclose(fc, expected[FC_LAYER][:, 2].numpy(), rtol=1e-4, atol=1e-5)
        conv_max = activations.unit(CONV_LAYER, 5, "max")
        conv_center = activations.unit(CONV_LAYER, 5, "center")
        np.testing.assert_allclose(
            conv_max, expected[CONV_LAYER][:, 5].amax((1, 2)).numpy(), rtol=1e-4, atol=1e-5
        )
        assert not np.allclose(conv_max, conv_center)
        with pytest.raises(FacetvizError, match="rerun the activations stage"):
            activations.unit("features.3", 0, "center")

        rows = np.array([250, 7, 130, 0, 7, len(dataset) - 1])  # unsorted, one repeat
        codes = activations.codes(rows)
        assert codes.dtype == np.float32
        assert codes.shape == (6, 256)
        stored = h5py.File(activations_file, "r")["codes"][:].astype(np.float32)
        np.testing.assert_array_equal(codes, stored[rows])


class FailingDataset(FacetDataset):
    """The images of `inner` at `keep`; loading position `fail_at` raises, like a broken file."""

    def __init__(self, inner: FacetDataset, fail_at: int, keep: np.ndarray | None = None) -> None:
        keep = np.arange(len(inner)) if keep is None else keep
        super().__init__(
            inner.label_space,
            inner.fine_labels[keep],
            inner.indices[keep],
            inner.image_size,
            inner.channels,
            inner.description,
        )
        self.inner, self.fail_at, self.keep = inner, fail_at, keep

    def _load(self, position: int) -> torch.Tensor:
        if position == self.fail_at:
            raise OSError(f"cannot read image {position}")
        return self.inner._load(int(self.keep[position]))


def test_conv_facet_layer_is_flattened(tmp_path: Path, network, dataset) -> None:
    subset = FailingDataset(dataset, fail_at=-1, keep=np.arange(0, len(dataset), 7))
    out = tmp_path / "conv.h5"
    extract(network, subset, CONV_LAYER, [CONV_LAYER], out, batch_size=10)
    pixels = dataset.pixels(subset.keep)
    with capture(network.module, [CONV_LAYER]) as outputs, torch.no_grad():
        network(pixels)
    expected = outputs[CONV_LAYER].flatten(1).numpy()
    with h5py.File(out, "r") as handle:
        assert handle["codes"].shape == (len(subset), 32 * 7 * 7)
        np.testing.assert_allclose(
            handle["codes"][:].astype(np.float32),
            expected,
            rtol=2e-3,
            atol=2e-3 * float(np.abs(expected).max()),
        )
        np.testing.assert_array_equal(handle["indices"][:], dataset.indices[subset.keep])


def test_layer_with_3d_output(tmp_path: Path, dataset: FacetDataset) -> None:
    """A layer whose output is [N, C, L] (Conv1d, a transformer's tokens) is neither fc nor conv:
    unit_values flattens it, so the stored layer must hold the same [N, C * L] values."""
    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.Flatten(2),
        torch.nn.ReLU(),  # 2: [N, 4, 784]
        torch.nn.Flatten(1),
        torch.nn.Linear(4 * 784, 3),
    ).eval()
    net = Network(module, (0.5,), (0.5,), {"kind": "custom"})
    subset = FailingDataset(dataset, fail_at=-1, keep=np.arange(40))
    out = tmp_path / "tokens.h5"
    extract(net, subset, "4", ["2"], out, batch_size=16)
    with capture(module, ["2"]) as outputs, torch.no_grad():
        net(dataset.pixels(range(40)))
    expected = unit_values(outputs["2"], "center").numpy()
    with Activations(out) as activations:
        assert activations.file["layers/2/value"].shape == expected.shape == (40, 4 * 784)
        np.testing.assert_allclose(
            activations.unit("2", 1000, "center"), expected[:, 1000], rtol=1e-5, atol=1e-6
        )


def test_failed_extract_leaves_nothing(tmp_path: Path, network, dataset) -> None:
    broken = FailingDataset(dataset, fail_at=3 * BATCH + 5)  # after three written batches
    out = tmp_path / "run" / "activations.h5"
    with pytest.raises(OSError, match="cannot read image"):
        extract(network, broken, FACET_LAYER, [FC_LAYER], out, batch_size=BATCH)
    assert not out.exists()
    assert list(out.parent.iterdir()) == []


def test_failed_extract_keeps_a_previous_file(tmp_path: Path, network, dataset) -> None:
    out = tmp_path / "activations.h5"
    out.write_bytes(b"previous")
    with pytest.raises(OSError):
        extract(
            network,
            FailingDataset(dataset, fail_at=60),
            FACET_LAYER,
            [FC_LAYER],
            out,
            batch_size=BATCH,
        )
    assert out.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["activations.h5"]


def test_empty_dataset_is_refused(tmp_path: Path, network, dataset) -> None:
    empty = FailingDataset(dataset, fail_at=-1, keep=np.zeros(0, np.int64))
    assert len(empty) == 0
    with pytest.raises(FacetvizError, match="no images"):
        extract(network, empty, FACET_LAYER, [FC_LAYER], tmp_path / "a.h5")
    assert list(tmp_path.iterdir()) == []


def test_corrupt_file_names_the_stage(tmp_path: Path) -> None:
    path = tmp_path / "activations.h5"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(FacetvizError, match="corrupt") as info:
        open_h5(path, "activations")
    assert "'activations'" in str(info.value)
    assert str(path) in str(info.value)
    with pytest.raises(FacetvizError, match="corrupt"):
        Activations(path)


def test_truncated_file_is_reported_as_corrupt(tmp_path: Path, activations_file: Path) -> None:
    """What a job killed while writing in place would leave: the first half of the file."""
    path = tmp_path / "activations.h5"
    data = activations_file.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FacetvizError, match="corrupt or truncated.*'activations' stage"):
        Activations(path)


def test_missing_file_names_the_stage(tmp_path: Path) -> None:
    with pytest.raises(FacetvizError, match="run the 'activations' stage"):
        open_h5(tmp_path / "absent.h5", "activations")


def test_incomplete_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "activations.h5"
    with h5py.File(path, "w") as handle:
        handle["codes"] = np.zeros((2, 3), np.float16)
    with pytest.raises(FacetvizError, match="lacks labels"):
        Activations(path)


def test_refused_file_is_closed(tmp_path: Path) -> None:
    """A file the reader's checks refuse is closed before the error propagates, even while the
    error (and its traceback, which holds the half-built reader) is still referenced: the file
    can at once be written again, by this process too (HDF5 refuses to truncate an open file)."""
    path = tmp_path / "activations.h5"
    with h5py.File(path, "w") as handle:
        handle["codes"] = np.zeros((2, 3), np.float16)
    with pytest.raises(FacetvizError, match="lacks labels") as refused:
        Activations(path)
    with h5py.File(path, "w") as handle:  # the stage rewriting it
        handle["codes"] = np.ones((2, 3), np.float16)
    assert refused.value is not None  # the traceback was alive during the rewrite


def test_reader_opens_read_only(tmp_path: Path, activations_file: Path) -> None:
    copy = tmp_path / "activations.h5"
    copy.write_bytes(activations_file.read_bytes())
    past = 1_000_000_000
    os.utime(copy, (past, past))
    with Activations(copy) as activations:
        assert activations.file.mode == "r"
        activations.unit(FC_LAYER, 0, "center")
        activations.codes(np.arange(10))
    handle = open_h5(copy, "activations")
    assert handle.mode == "r"
    with pytest.raises((OSError, ValueError, KeyError)):
        handle["extra"] = np.zeros(1)
    handle.close()
    assert copy.stat().st_mtime == past
    assert copy.read_bytes() == activations_file.read_bytes()


def test_shard_rows_cover_the_dataset_once() -> None:
    rows = [shard_rows(10, i, 3) for i in range(3)]
    assert [list(r) for r in rows] == [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]
    with pytest.raises(FacetvizError, match="only 2 images"):
        shard_rows(2, 0, 3)
    with pytest.raises(FacetvizError, match="shard 3 does not exist"):
        shard_rows(10, 3, 3)
