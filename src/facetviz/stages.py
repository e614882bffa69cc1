"""The pipeline's stages, in one table (`core.stage.STAGES`): each stage's name, help and arguments
sit on the function that runs it. A function builds the typed settings of the config sections it
reads from `--settings` (the JSON a rule passes) and calls the stage in its package; `cli` builds
the command line from the table."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from facetviz.core.errors import FacetvizError
from facetviz.core.progress import log
from facetviz.core.stage import STAGES, many, optional, required, stage

__all__ = ["STAGES"]

FORMATS = "one file per format, by suffix (.png, .pdf)"
WEIGHTS = optional(
    "--weights", "the model's weights file (none: the architecture's random weights)"
)


def _dataset(settings: dict[str, Any]):
    from facetviz.core.settings import DatasetSettings

    return DatasetSettings.from_config(settings["dataset"])


def _network(settings: dict[str, Any], weights: str | None):
    from facetviz.core.settings import ModelSettings
    from facetviz.data.checks import input_spec
    from facetviz.model.networks import load_network

    shape, class_names = input_spec(_dataset(settings))
    return load_network(
        ModelSettings.from_config(settings["model"]), shape, len(class_names), weights
    )


def _device(settings: dict[str, Any]):
    from facetviz.model.networks import resolve_device

    return resolve_device(settings["device"])


@stage("train", "train the embedded CNN", required("--checkpoint"), required("--metrics"))
def cmd_train(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.core.settings import ModelSettings
    from facetviz.model.train import train_embedded

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


@stage(
    "oracle",
    "train the oracle, a fine-class classifier for measuring",
    required("--checkpoint"),
    required("--metrics"),
)
def cmd_oracle(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.core.settings import DatasetSettings, OracleSettings
    from facetviz.measure.oracle import train_oracle

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


@stage(
    "generator",
    "train a learned prior: the generator, or the DAE",
    WEIGHTS,
    optional("--checkpoint"),
    optional("--fit", "JSON file of how the generator was trained"),
    optional("--dae", "train the code prior (DAE) into this file"),
)
def cmd_generator(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.core.settings import PriorSettings
    from facetviz.data.datasets import open_dataset
    from facetviz.priors.training import train_code_prior, train_generator

    priors = PriorSettings.from_config(settings["priors"])
    code_layer = priors.code_layer or settings["facet_layer"]
    network = _network(settings, args.weights or None).to(_device(settings))
    dataset = _dataset(settings)
    fit_set = open_dataset(dataset, dataset.training_splits[0], settings["seed"])
    if args.dae:
        train_code_prior(network, fit_set, code_layer, priors, settings["seed"], args.dae)
    else:
        seed = settings["seed"]
        train_generator(network, fit_set, code_layer, priors, seed, args.checkpoint, args.fit)


@stage(
    "generator-metrics",
    "measure the trained generator",
    WEIGHTS,
    required("--checkpoint", "the generator's checkpoint"),
    required("--fit", "its training facts (from `generator`)"),
    optional("--oracle", "an oracle to measure reconstructions with"),
    required("--metrics"),
)
def cmd_generator_metrics(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.core.settings import PriorCheckSettings
    from facetviz.data.datasets import open_dataset
    from facetviz.measure.generator import measure_generator

    network = _network(settings, args.weights or None).to(_device(settings))
    dataset = _dataset(settings)
    test_set = open_dataset(dataset, dataset.training_splits[1], settings["seed"])
    check = PriorCheckSettings.from_config(settings["check"])
    measure_generator(
        network, test_set, args.checkpoint, args.fit, args.metrics, args.oracle or None, check
    )


@stage(
    "activations",
    "forward pass into HDF5",
    WEIGHTS,
    required("--out"),
    optional("--shard", "I/COUNT: only the I-th (0-based) of COUNT shards"),
)
def cmd_activations(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.activations.extract import extract
    from facetviz.data.datasets import open_dataset

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


@stage(
    "join-activations",
    "join activation shards into one file",
    many("--shards", "shard files, in order"),
    required("--out"),
)
def cmd_join_activations(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.activations.shards import join_shards

    join_shards(args.shards, args.out)


@stage(
    "facets",
    "cluster one neuron's images into facets",
    required("--activations"),
    required("--out-h5"),
    required("--out-json"),
)
def cmd_facets(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.core.settings import FacetSettings, Neuron
    from facetviz.data.datasets import open_dataset
    from facetviz.facets.discover import discover

    dataset = open_dataset(_dataset(settings), seed=settings["seed"])
    neuron, facets = Neuron.from_dict(settings["neuron"]), settings["facets"]
    discover(
        args.activations, dataset, neuron, FacetSettings.from_config(facets), settings["seed"],
        args.out_h5, args.out_json,
        settings.get("readout_file"),  # a neuron that is not a unit: its .npy or its SAE
    )  # fmt: skip


@stage(
    "synthesize",
    "optimize one image per facet of a batch of neurons",
    WEIGHTS,
    many("--facets", "facet files, one per neuron"),
    ("--input", {"action": "append", "help": "NAME=PATH: an extra input the method declares"}),
    required("--out-dir"),
)
def cmd_synthesize(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.core.settings import SynthesisSettings
    from facetviz.synthesis import methods
    from facetviz.synthesis.job import synthesize_batch

    synthesis, name = settings["synthesis"], settings["method"]
    methods.load_plugins(synthesis["plugins"])
    shared = SynthesisSettings.from_config(synthesis)
    method_settings = methods.method_settings(name, synthesis[name])
    from facetviz.data.datasets import open_dataset

    context = methods.Context(
        _network(settings, args.weights or None),
        shared.steps_scale,
        shared.mixed_precision,
        _method_inputs(name, method_settings, args.input or []),
        # the images the facets were found in: those of the training tree's seed
        dataset=lambda: open_dataset(_dataset(settings), seed=settings["train_seed"]),
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


@stage(
    "synthesis-metrics",
    "score synthesized images with the oracle",
    required("--oracle"),
    WEIGHTS,
    many("--facets", "facet files of the class units"),
    required("--out-csv"),
    required("--out-json"),
)
def cmd_synthesis_metrics(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.data.datasets import open_dataset
    from facetviz.measure.synthesis import evaluate

    evaluate(
        args.oracle,
        _network(settings, args.weights or None),
        args.facets,
        settings["image_dirs"],
        open_dataset(_dataset(settings), seed=settings["seed"]),
        args.out_csv,
        args.out_json,
    )


@stage(
    "evaluation",
    "every metric over seeds: means and intervals",
    many("--metrics", "synthesis/metrics.json per seed"),
    ("--out", {"nargs": 3, "required": True, "help": "per_seed.csv, summary.csv and summary.json"}),
)
def cmd_evaluation(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.evaluation.aggregate import aggregate

    aggregate(args.metrics, settings["trees"], *args.out)


@stage(
    "evaluation-figures",
    "the Pareto and path figures",
    required("--summary", "evaluation/summary.json"),
    many("--pareto", FORMATS),
    many("--path", FORMATS),
)
def cmd_evaluation_figures(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.report.evaluation_figures import pareto_figure, path_figure

    pareto_figure(args.summary, args.pareto)
    path_figure(args.summary, args.path)


@stage(
    "figure",
    "one neuron's facets figure",
    required("--facets"),
    required("--synthesis"),
    many("--out", FORMATS),
)
def cmd_figure(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.data.datasets import open_dataset
    from facetviz.report.figures import facets_figure

    dataset = open_dataset(_dataset(settings), seed=settings["seed"])
    facets_figure(args.facets, args.synthesis, dataset, args.out, settings["examples"])


@stage(
    "embedding",
    "one neuron's 2-D embedding with its facets",
    required("--facets"),
    many("--out", FORMATS),
)
def cmd_embedding(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.report.figures import embedding_figure

    embedding_figure(args.facets, args.out)


@stage(
    "facet-table",
    "the run's table of facets against fine labels",
    many("--summaries", "facet summaries (JSON), one per neuron"),
    required("--out"),
)
def cmd_facet_table(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.core.io import read_json
    from facetviz.facets.metrics import write_table

    text = write_table([read_json(path) for path in args.summaries], args.out)
    log.info("facets against fine labels (used: the space the facets come from)\n%s", text)


@stage(
    "overview",
    "facet images of several neurons, a row each",
    many("--synthesis", "synthesis folders, one per neuron"),
    many("--out", FORMATS),
)
def cmd_overview(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.report.figures import overview_figure

    optional = {k: settings[k] for k in ("max_facets", "title", "max_rows") if k in settings}
    overview_figure(settings["names"], args.synthesis, args.out, **optional)


@stage("methods-figure", "each neuron's top facet by every method", many("--out", FORMATS))
def cmd_methods_figure(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.report.figures import methods_figure

    methods_figure(settings["names"], settings["image_dirs"], args.out, settings["max_rows"])


@stage(
    "metrics-figure",
    "facet recovery and synthesis quality bars",
    required("--table", "facets/table.csv"),
    optional("--synthesis-metrics", "synthesis/metrics.json, if any"),
    many("--out", FORMATS),
)
def cmd_metrics_figure(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.report.figures import metrics_figure

    metrics_figure(args.table, args.synthesis_metrics, args.out)


@stage(
    "index",
    "the run's browsable page, index.html",
    many("--facets", "facet files, one per neuron"),
    optional("--synthesis-metrics", "synthesis/metrics.json, if any"),
    ("--generators", {"nargs": "*", "default": [], "help": "each training tree's generator.json"}),
    required("--out"),
)
def cmd_index(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.data.datasets import open_dataset
    from facetviz.report.index_page import write_index

    dataset = open_dataset(_dataset(settings), seed=settings["seed"])
    write_index(settings["run"], args.facets, settings["image_dirs"], dataset, args.out,
                settings["examples"], args.synthesis_metrics, args.generators)  # fmt: skip


from facetviz import stages_directions  # noqa: E402, F401  (its stages join the table)
