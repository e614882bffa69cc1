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
from pathlib import Path
from typing import Any

from facetviz.errors import DiskFullError, FacetvizError
from facetviz.io import is_disk_full
from facetviz.progress import log, setup_logging


def _dataset(settings: dict[str, Any]):
    from facetviz.settings import DatasetSettings

    return DatasetSettings.from_config(settings["dataset"])


def _network(settings: dict[str, Any], weights: str | None):
    from facetviz.dataset_checks import input_spec
    from facetviz.models import load_network
    from facetviz.settings import ModelSettings

    shape, class_names = input_spec(_dataset(settings))
    return load_network(
        ModelSettings.from_config(settings["model"]), shape, len(class_names), weights
    )


def _device(settings: dict[str, Any]):
    from facetviz.models import resolve_device

    return resolve_device(settings["device"])


def cmd_train(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.settings import ModelSettings
    from facetviz.train import train_embedded

    metrics = train_embedded(
        _dataset(settings),
        ModelSettings.from_config(settings["model"]),
        settings["seed"],
        _device(settings),
        args.checkpoint,
        args.metrics,
    )
    if metrics["test_accuracy"] < 0.5:
        log.warning(
            "test accuracy %.3f is low: the facets of an untrained model say little",
            metrics["test_accuracy"],
        )


def cmd_oracle(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.oracle import train_oracle
    from facetviz.settings import DatasetSettings, OracleSettings

    # rule oracle leaves out the keys that the oracle replaces (oracle_dataset)
    replaced = {"label_map": None, "split": None, "max_images": None}
    train_oracle(
        DatasetSettings.from_config({**replaced, **settings["dataset"]}),
        OracleSettings.from_config(settings["oracle"]),
        settings["seed"],
        _device(settings),
        args.checkpoint,
        args.metrics,
    )


def cmd_generator(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.data import open_dataset, training_splits
    from facetviz.priors_training import train_code_prior, train_generator
    from facetviz.settings import PriorSettings

    priors = PriorSettings.from_config(settings["priors"])
    code_layer = priors.code_layer or settings["facet_layer"]
    network = _network(settings, args.weights or None).to(_device(settings))
    fit, test = training_splits(settings["dataset"])
    fit_set = open_dataset(settings["dataset"], fit, settings["seed"])
    if args.dae:
        train_code_prior(network, fit_set, code_layer, priors, settings["seed"], args.dae)
        return
    test_set = open_dataset(settings["dataset"], test, settings["seed"])
    train_generator(
        network, fit_set, test_set, code_layer, priors, settings["seed"], args.checkpoint,
        args.metrics, args.oracle or None,
    )  # fmt: skip


def cmd_activations(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.activations import extract
    from facetviz.data import open_dataset

    source = _dataset(settings)
    dataset = open_dataset(source, seed=settings["seed"])
    extract(
        _network(settings, args.weights or None),
        dataset,
        settings["facet_layer"],
        settings["target_layers"],
        args.out,
        settings["batch_size"],
        source.workers,
        _device(settings),
        shard=_shard(args.shard) if args.shard else None,
    )


def _shard(text: str) -> tuple[int, int]:
    index, _, count = text.partition("/")
    return int(index), int(count)


def cmd_join_activations(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.activations import join_shards

    join_shards(args.shards, args.out)


def cmd_facets(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.data import open_dataset
    from facetviz.facets import discover
    from facetviz.settings import FacetSettings, Neuron

    dataset = open_dataset(_dataset(settings), seed=settings["seed"])
    discover(
        args.activations,
        dataset,
        Neuron.from_dict(settings["neuron"]),
        FacetSettings.from_config(settings["facets"]),
        settings["seed"],
        args.out_h5,
        args.out_json,
    )


def cmd_synthesize(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.settings import SynthesisSettings
    from facetviz.synthesis import methods
    from facetviz.synthesis.job import synthesize_batch

    synthesis, name = settings["synthesis"], settings["method"]
    methods.load_plugins(synthesis["plugins"])
    shared = SynthesisSettings.from_config(synthesis)
    method_settings = methods.method_settings(name, synthesis[name])
    context = methods.Context(
        _network(settings, args.weights or None),
        shared.steps_scale,
        shared.mixed_precision,
        _method_inputs(name, method_settings, args.input or []),
    )
    method = methods.method_class(name)(method_settings, context)
    synthesize_batch(
        method,
        args.facets,
        settings["facet_layer"],
        settings["seed"],
        args.out_dir,
        shared.batch_size,
        _device(settings),
    )


def _method_inputs(name: str, method_settings: Any, given: list[str]) -> dict[str, Path]:
    """`--input NAME=PATH` pairs: exactly the extra inputs method `name` declares."""
    from facetviz.synthesis.methods import method_class

    inputs = dict(item.partition("=")[::2] for item in given)
    declared = method_class(name).required_inputs(method_settings)
    if set(inputs) != set(declared):
        raise FacetvizError(
            f"synthesis method {name} takes the inputs {sorted(declared) or 'none'}, "
            f"got {sorted(inputs) or 'none'}: the workflow passes them from the method's `inputs`"
        )
    return {key: Path(path) for key, path in inputs.items()}


def cmd_synthesis_metrics(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.data import open_dataset
    from facetviz.synthesis_metrics import evaluate

    evaluate(
        args.oracle,
        _network(settings, args.weights or None),
        args.facets,
        settings["image_dirs"],
        open_dataset(_dataset(settings), seed=settings["seed"]),
        args.out_csv,
        args.out_json,
    )


def cmd_evaluation(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.evaluation import aggregate

    aggregate(args.metrics, settings["trees"], args.out_dir)


def cmd_evaluation_figures(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.evaluation_figures import pareto_figure, path_figure

    pareto_figure(args.summary, args.pareto)
    path_figure(args.summary, args.path)


def cmd_figure(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.data import open_dataset
    from facetviz.figures import facets_figure

    dataset = open_dataset(_dataset(settings), seed=settings["seed"])
    facets_figure(args.facets, args.synthesis, dataset, args.out, settings["examples"])


def cmd_embedding(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.figures import embedding_figure

    embedding_figure(args.facets, args.out)


def cmd_facet_table(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.facet_metrics import write_table
    from facetviz.io import read_json

    text = write_table([read_json(path) for path in args.summaries], args.out)
    log.info("facets against fine labels (used: the space the facets come from)\n%s", text)


def cmd_overview(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.figures import overview_figure

    optional = {k: settings[k] for k in ("max_facets", "title", "max_rows") if k in settings}
    overview_figure(settings["names"], args.synthesis, args.out, **optional)


def cmd_methods_figure(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.figures import methods_figure

    methods_figure(settings["names"], settings["image_dirs"], args.out, settings["max_rows"])


def cmd_metrics_figure(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.figures import metrics_figure

    metrics_figure(args.table, args.synthesis_metrics, args.out)


def cmd_index(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.data import open_dataset
    from facetviz.index_page import write_index

    write_index(
        settings["run"],
        args.facets,
        settings["image_dirs"],
        open_dataset(_dataset(settings), seed=settings["seed"]),
        args.out,
        settings["examples"],
        args.synthesis_metrics,
    )


def _limit_threads(threads: int) -> None:
    """Keep parallel jobs from oversubscribing cores (before numpy/torch start their pools)."""
    import os

    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(threads)
    import torch

    torch.set_num_threads(threads)


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

    p = stage("train", cmd_train, "train the embedded CNN")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--metrics", required=True)
    p = stage("oracle", cmd_oracle, "train the oracle, a fine-class classifier for measuring")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--metrics", required=True)
    p = stage("generator", cmd_generator, "train a learned prior: the generator, or the DAE")
    p.add_argument("--weights", default=None)
    p.add_argument("--oracle", default=None, help="an oracle to measure reconstructions with")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--metrics", default=None)
    p.add_argument("--dae", default=None, help="train the code prior (DAE) into this file")
    p = stage("activations", cmd_activations, "forward pass into HDF5")
    p.add_argument("--weights", default=None)
    p.add_argument("--out", required=True)
    p.add_argument("--shard", default=None, help="I/COUNT: only the I-th (0-based) of COUNT shards")
    p = stage("join-activations", cmd_join_activations, "join activation shards into one file")
    p.add_argument("--shards", nargs="+", required=True, help="shard files, in order")
    p.add_argument("--out", required=True)
    p = stage("facets", cmd_facets, "cluster one neuron's images into facets")
    p.add_argument("--activations", required=True)
    p.add_argument("--out-h5", required=True)
    p.add_argument("--out-json", required=True)
    p = stage("synthesize", cmd_synthesize, "optimize one image per facet of a batch of neurons")
    p.add_argument("--weights", default=None)
    p.add_argument("--facets", nargs="+", required=True, help="facet files, one per neuron")
    p.add_argument("--input", action="append", help="NAME=PATH: an extra input the method declares")
    p.add_argument("--out-dir", required=True)
    p = stage(
        "synthesis-metrics", cmd_synthesis_metrics, "score synthesized images with the oracle"
    )
    p.add_argument("--oracle", required=True)
    p.add_argument("--weights", default=None)
    p.add_argument("--facets", nargs="+", required=True, help="facet files of the class units")
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-json", required=True)
    p = stage("evaluation", cmd_evaluation, "every metric over seeds: means and intervals")
    p.add_argument("--metrics", nargs="+", required=True, help="synthesis/metrics.json per seed")
    p.add_argument("--out-dir", required=True)
    p = stage("evaluation-figures", cmd_evaluation_figures, "the Pareto and path figures")
    p.add_argument("--summary", required=True, help="evaluation/summary.json")
    p.add_argument("--pareto", nargs="+", required=True, help=figure_formats)
    p.add_argument("--path", nargs="+", required=True, help=figure_formats)
    p = stage("figure", cmd_figure, "one neuron's facets figure")
    p.add_argument("--facets", required=True)
    p.add_argument("--synthesis", required=True)
    p.add_argument("--out", nargs="+", required=True, help=figure_formats)
    p = stage("embedding", cmd_embedding, "one neuron's 2-D embedding with its facets")
    p.add_argument("--facets", required=True)
    p.add_argument("--out", nargs="+", required=True, help=figure_formats)
    p = stage("facet-table", cmd_facet_table, "the run's table of facets against fine labels")
    p.add_argument("--summaries", nargs="+", required=True)
    p.add_argument("--out", required=True)
    p = stage("overview", cmd_overview, "facet images of several neurons, a row each")
    p.add_argument("--synthesis", nargs="+", required=True)
    p.add_argument("--out", nargs="+", required=True, help=figure_formats)
    p = stage("methods-figure", cmd_methods_figure, "each neuron's top facet by every method")
    p.add_argument("--out", nargs="+", required=True, help=figure_formats)
    p = stage("metrics-figure", cmd_metrics_figure, "facet recovery and synthesis quality bars")
    p.add_argument("--table", required=True, help="facets/table.csv")
    p.add_argument("--synthesis-metrics", default=None, help="synthesis/metrics.json, if any")
    p.add_argument("--out", nargs="+", required=True, help=figure_formats)
    p = stage("index", cmd_index, "the run's browsable page, index.html")
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
