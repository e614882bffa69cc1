"""The background HDF5 writer of the forward pass."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from facetviz.activations.writer import BackgroundWriter


def test_background_writer_writes_in_order_and_raises_write_errors(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "out.h5", "w") as handle:
        target = handle.create_dataset("values", shape=(6, 2), dtype="float32")
        with BackgroundWriter(depth=1) as writer:
            for start in range(0, 6, 2):
                writer.put(target, start, start + 2, np.full((2, 2), start, dtype=np.float32))
            writer.finish()
        assert target[:, 0].tolist() == [0, 0, 2, 2, 4, 4]

        with BackgroundWriter() as writer, pytest.raises(TypeError):
            writer.put(target, 0, 2, np.zeros((3, 5), dtype=np.float32))  # wrong shape
            writer.finish()
