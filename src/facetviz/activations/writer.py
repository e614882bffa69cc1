"""Writing a forward pass's batches into HDF5 on a thread of its own."""

from __future__ import annotations

import queue
import threading

import h5py
import numpy as np


class BackgroundWriter:
    """Writes array slices into HDF5 datasets on a thread, overlapping the next forward pass.

    The queue is bounded, so at most `depth` pending batches are held in memory. A failed write
    is raised in the caller at its next `put` or at `finish`.
    """

    def __init__(self, depth: int = 8) -> None:
        self._queue: queue.Queue[tuple[h5py.Dataset, int, int, np.ndarray] | None] = queue.Queue(
            maxsize=depth
        )
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="facetviz-h5-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:  # after a failure, drain without writing
                target, start, stop, values = item
                try:
                    target[start:stop] = values
                except BaseException as err:  # noqa: BLE001 - re-raised in the caller
                    self._error = err

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, target: h5py.Dataset, start: int, stop: int, values: np.ndarray) -> None:
        self._raise_if_failed()
        self._queue.put((target, start, stop, values))

    def finish(self) -> None:
        """Wait until every write is done; raise the first write error."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._raise_if_failed()

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        # on an error in the caller, stop the thread before the file closes under it
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
