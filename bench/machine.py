"""What the benchmarks print about the machine they ran on: timings on a shared machine are
only comparable when it was not busier than its cores."""

from __future__ import annotations

import os


def load_average() -> str:
    try:
        one, five, _fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    cores = os.cpu_count() or 1
    note = " (busier than its cores: timings are noisy)" if one > cores else ""
    return f"{one:.2f} (1 min), {five:.2f} (5 min) on {cores} cores{note}"
