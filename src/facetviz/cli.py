"""Command line: one subcommand per pipeline stage, called by the workflow's rules.

Each stage takes `--settings`, a JSON object with the config sections it depends on (the rule
passes it as a param, so Snakemake reruns the stage when any of them changes), and paths.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from typing import Any

from facetviz.core.errors import DiskFullError, FacetvizError
from facetviz.core.io import is_disk_full
from facetviz.core.progress import log, setup_logging
from facetviz.stages import STAGES


def _limit_threads(threads: int) -> None:
    """Keep parallel jobs from oversubscribing cores: torch and numpy size their pools from
    these variables when first imported. (Not by importing torch here: many jobs, the figures
    among them, never need it, and its import costs them 1.5 s each.)"""
    import os

    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(threads)


def build_parser() -> argparse.ArgumentParser:
    """One subcommand per entry of `STAGES`, each with `--settings` and `--threads`."""
    parser = argparse.ArgumentParser(prog="facetviz", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for stage in STAGES.values():
        p = sub.add_parser(stage.name, help=stage.help)
        p.add_argument("--settings", default="{}", help="JSON object of the config this stage uses")
        p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
        for flag, options in stage.arguments:
            p.add_argument(flag, **options)
        p.set_defaults(func=stage.run)
    return parser


class Terminated(SystemExit):
    """SIGTERM (scancel, a SLURM time limit, snakemake stopping its jobs) as an exception."""


def _terminate(signum: int, _frame: object) -> None:
    # Unwinding (rather than dying at once) lets every atomic output remove its partial file.
    raise Terminated(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        _limit_threads(args.threads)
    setup_logging()
    signal.signal(signal.SIGTERM, _terminate)
    sys.unraisablehook, sys.excepthook = _unraisable, _excepthook
    try:
        settings = json.loads(args.settings)
        args.func(args, settings)
    except Terminated:
        log.error("stopped by SIGTERM: this stage kept no output; run again to redo it")
        raise
    except DiskFullError as err:
        _exit_now(str(err))
    except FacetvizError as err:
        log.error("%s", err)
        return 1
    except Exception as err:
        if not is_disk_full(err):
            raise
        _exit_now(
            f"No space left on device ({err}): free some space and run the same command again"
        )
    return 0


def _unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    """After a write failed for lack of space, h5py reports each object it then fails to free
    (Cython prints the traceback through sys.excepthook, then calls this hook). The stage's own
    message says what happened, so those reports are left out of the log."""
    if unraisable.exc_value is None or not is_disk_full(unraisable.exc_value):
        sys.__unraisablehook__(unraisable)


def _excepthook(kind: type[BaseException], value: BaseException, trace: Any) -> None:
    if not is_disk_full(value):
        sys.__excepthook__(kind, value, trace)


def _exit_now(message: str) -> None:
    """Log `message` and exit 1 without freeing anything: h5py (HDF5 2.0) can crash while it
    frees the objects of a file whose close failed for lack of space, which would bury the
    message under a segmentation fault. The partial output is already removed."""
    log.error("%s", message)
    logging.shutdown()
    os._exit(1)


if __name__ == "__main__":
    sys.exit(main())
