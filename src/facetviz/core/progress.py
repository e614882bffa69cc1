"""Progress lines for long stages; they end up in each rule's log."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("facetviz")


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )


class Progress:
    """Logs `done/total`, rate and ETA at most every `every_s` seconds, and once at the end."""

    def __init__(self, label: str, total: int, unit: str = "items", every_s: float = 5.0) -> None:
        self.label, self.total, self.unit, self.every_s = label, total, unit, every_s
        self.done = 0
        self.start = self._last = time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self._last >= self.every_s or self.done >= self.total:
            self._last = now
            self._report(now)

    def _report(self, now: float) -> None:
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        remaining = (self.total - self.done) / rate if rate > 0 else float("inf")
        log.info(
            "%s: %d/%d %s (%.0f%%), %.1f %s/s, %.0f s elapsed, ~%.0f s left",
            self.label,
            self.done,
            self.total,
            self.unit,
            100.0 * self.done / max(self.total, 1),
            rate,
            self.unit,
            elapsed,
            remaining,
        )

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start
