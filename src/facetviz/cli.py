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

from facetviz import commands as c
from facetviz.errors import DiskFullError, FacetvizError
from facetviz.io import is_disk_full
from facetviz.progress import log, setup_logging


def _limit_threads(threads: int) -> None:
    """Keep parallel jobs from oversubscribing cores: torch and numpy size their pools from
    these variables when first imported. (Not by importing torch here: many jobs, the figures
    among them, never need it, and its import costs them 1.5 s each.)"""
    import os

    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(threads)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facetviz", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    figure_formats = "one file per format, by suffix (.png, .pdf)"

    def stage(name: str, func, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--settings", default="{}", help="JSON object of the config this stage uses")
        p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
        p.set_defaults(func=func)
        return p

    p = stage("train", c.cmd_train, "train the embedded CNN")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--metrics", required=True)
    p = stage("oracle", c.cmd_oracle, "train the oracle, a fine-class classifier for measuring")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--metrics", required=True)
    p = stage("generator", c.cmd_generator, "train a learned prior: the generator, or the DAE")
    p.add_argument("--weights", default=None)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--fit", default=None, help="JSON file of how the generator was trained")
    p.add_argument("--dae", default=None, help="train the code prior (DAE) into this file")
    p = stage("generator-metrics", c.cmd_generator_metrics, "measure the trained generator")
    p.add_argument("--weights", default=None)
    p.add_argument("--checkpoint", required=True, help="the generator's checkpoint")
    p.add_argument("--fit", required=True, help="its training facts (from `generator`)")
    p.add_argument("--oracle", default=None, help="an oracle to measure reconstructions with")
    p.add_argument("--metrics", required=True)
    p = stage("activations", c.cmd_activations, "forward pass into HDF5")
    p.add_argument("--weights", default=None)
    p.add_argument("--out", required=True)
    p.add_argument("--shard", default=None, help="I/COUNT: only the I-th (0-based) of COUNT shards")
    p = stage("join-activations", c.cmd_join_activations, "join activation shards into one file")
    p.add_argument("--shards", nargs="+", required=True, help="shard files, in order")
    p.add_argument("--out", required=True)
    p = stage("facets", c.cmd_facets, "cluster one neuron's images into facets")
    p.add_argument("--activations", required=True)
    p.add_argument("--out-h5", required=True)
    p.add_argument("--out-json", required=True)
    p = stage("synthesize", c.cmd_synthesize, "optimize one image per facet of a batch of neurons")
    p.add_argument("--weights", default=None)
    p.add_argument("--facets", nargs="+", required=True, help="facet files, one per neuron")
    p.add_argument("--input", action="append", help="NAME=PATH: an extra input the method declares")
    p.add_argument("--out-dir", required=True)
    p = stage(
        "synthesis-metrics", c.cmd_synthesis_metrics, "score synthesized images with the oracle"
    )
    p.add_argument("--oracle", required=True)
    p.add_argument("--weights", default=None)
    p.add_argument("--facets", nargs="+", required=True, help="facet files of the class units")
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-json", required=True)
    p = stage("evaluation", c.cmd_evaluation, "every metric over seeds: means and intervals")
    p.add_argument("--metrics", nargs="+", required=True, help="synthesis/metrics.json per seed")
    p.add_argument(
        "--out", nargs=3, required=True, help="per_seed.csv, summary.csv and summary.json"
    )
    p = stage("evaluation-figures", c.cmd_evaluation_figures, "the Pareto and path figures")
    p.add_argument("--summary", required=True, help="evaluation/summary.json")
    p.add_argument("--pareto", nargs="+", required=True, help=figure_formats)
    p.add_argument("--path", nargs="+", required=True, help=figure_formats)
    p = stage("figure", c.cmd_figure, "one neuron's facets figure")
    p.add_argument("--facets", required=True)
    p.add_argument("--synthesis", required=True)
    p.add_argument("--out", nargs="+", required=True, help=figure_formats)
    p = stage("embedding", c.cmd_embedding, "one neuron's 2-D embedding with its facets")
    p.add_argument("--facets", required=True)
    p.add_argument("--out", nargs="+", required=True, help=figure_formats)
    p = stage("facet-table", c.cmd_facet_table, "the run's table of facets against fine labels")
    p.add_argument("--summaries", nargs="+", required=True)
    p.add_argument("--out", required=True)
    p = stage("overview", c.cmd_overview, "facet images of several neurons, a row each")
    p.add_argument("--synthesis", nargs="+", required=True)
    p.add_argument("--out", nargs="+", required=True, help=figure_formats)
    p = stage("methods-figure", c.cmd_methods_figure, "each neuron's top facet by every method")
    p.add_argument("--out", nargs="+", required=True, help=figure_formats)
    p = stage("metrics-figure", c.cmd_metrics_figure, "facet recovery and synthesis quality bars")
    p.add_argument("--table", required=True, help="facets/table.csv")
    p.add_argument("--synthesis-metrics", default=None, help="synthesis/metrics.json, if any")
    p.add_argument("--out", nargs="+", required=True, help=figure_formats)
    p = stage("index", c.cmd_index, "the run's browsable page, index.html")
    p.add_argument("--facets", nargs="+", required=True, help="facet files, one per neuron")
    p.add_argument("--synthesis-metrics", default=None, help="synthesis/metrics.json, if any")
    p.add_argument("--out", required=True)
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
