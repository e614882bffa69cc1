"""A sharded forward pass joined into one activations file, as one pass would write it."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

# the forward pass of test_activations, run in shards here (its fixtures are reused)
from test_activations import (  # noqa: F401
    BATCH,
    CONV_LAYER,
    FACET_LAYER,
    FC_LAYER,
    activations_file,
    dataset,
    network,
)

from facetviz.activations import shards
from facetviz.activations.extract import Activations, extract
from facetviz.activations.shards import join_shards
from facetviz.core.errors import FacetvizError
from facetviz.core.io import open_h5


def _datasets(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as handle:
        found: dict[str, np.ndarray] = {}
        handle.visititems(
            lambda key, item: (
                found.update({key: item[:]}) if isinstance(item, h5py.Dataset) else None
            )
        )
        return found


@pytest.fixture(scope="module")
def shard_files(tmp_path_factory: pytest.TempPathFactory, network, dataset) -> list[Path]:
    folder = tmp_path_factory.mktemp("shards")
    paths = [folder / f"shard-{i}.h5" for i in range(3)]
    for i, path in enumerate(paths):
        extract(network, dataset, FACET_LAYER, [FC_LAYER, CONV_LAYER], path, BATCH, shard=(i, 3))
    return paths


def test_joined_shards_equal_one_pass(
    tmp_path: Path, shard_files: list[Path], activations_file: Path
) -> None:
    joined = tmp_path / "activations.h5"
    join_shards(shard_files, joined)
    expected, found = _datasets(activations_file), _datasets(joined)
    assert sorted(found) == sorted(expected)
    for key, values in expected.items():
        assert found[key].dtype == values.dtype, key
        if key in ("labels", "fine_labels", "indices"):
            np.testing.assert_array_equal(found[key], values, err_msg=key)
        else:  # other batch boundaries: the same sums in another order
            np.testing.assert_allclose(found[key], values, rtol=2e-3, atol=1e-4, err_msg=key)
    with h5py.File(joined, "r") as a, h5py.File(activations_file, "r") as b:
        assert dict(a.attrs) == dict(b.attrs)  # no shard attribute left
    with Activations(joined) as activations:  # readers see an ordinary file
        assert len(activations.labels) == len(expected["labels"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["activations.h5"]


def test_join_refuses_missing_or_mixed_shards(
    tmp_path: Path, shard_files: list[Path], activations_file: Path, network, dataset
) -> None:
    out = tmp_path / "activations.h5"
    with pytest.raises(FacetvizError, match="is shard 0 of 3, expected 0 of 2"):
        join_shards([shard_files[0], shard_files[2]], out)
    with pytest.raises(FacetvizError, match="expected 0 of 3"):
        join_shards([shard_files[1], shard_files[0], shard_files[2]], out)
    other = tmp_path / "other.h5"
    extract(network, dataset, FACET_LAYER, [FC_LAYER], other, BATCH, shard=(1, 3))
    with pytest.raises(FacetvizError, match="other settings"):
        join_shards([shard_files[0], other, shard_files[2]], out)
    with pytest.raises(FacetvizError, match="not a shard"):
        join_shards([activations_file], out)
    assert not out.exists()


def test_join_closes_the_shards_it_opened_when_one_fails(
    tmp_path: Path, shard_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shard that is missing or corrupt stops the join; the shards opened before it are
    closed by the join itself (not left to the garbage collector: here the test holds them),
    so the rerun of the shard jobs can rewrite them in this process too."""
    opened: list[h5py.File] = []

    def recording_open_h5(path: Path, stage: str) -> h5py.File:
        opened.append(open_h5(path, stage))
        return opened[-1]

    monkeypatch.setattr(shards, "open_h5", recording_open_h5)
    first = tmp_path / "shard-0.h5"
    first.write_bytes(shard_files[0].read_bytes())
    corrupt = tmp_path / "shard-2.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 40)
    out = tmp_path / "activations.h5"
    for second, message in ((tmp_path / "shard-1.h5", "does not exist"), (corrupt, "corrupt")):
        opened.clear()
        with pytest.raises(FacetvizError, match=message):
            join_shards([first, second], out)
        assert len(opened) == 1 and not opened[0], "the first shard was left open"
        with h5py.File(first, "w") as handle:  # a shard job writing it again
            handle["labels"] = np.zeros(1)
        first.write_bytes(shard_files[0].read_bytes())
    assert not out.exists()
