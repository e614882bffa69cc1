"""The pipeline's stages as commands: each builds the typed settings of the config sections it
reads from `--settings` (the JSON a rule passes) and calls the stage in the package. `cli` parses
the command line and runs one of them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from facetviz.errors import FacetvizError
from facetviz.progress import log


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
    from facetviz.data import open_dataset
    from facetviz.priors_training import train_code_prior, train_generator
    from facetviz.settings import PriorSettings

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


def cmd_generator_metrics(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.data import open_dataset
    from facetviz.priors_training import measure_generator

    network = _network(settings, args.weights or None).to(_device(settings))
    dataset = _dataset(settings)
    test_set = open_dataset(dataset, dataset.training_splits[1], settings["seed"])
    measure_generator(
        network, test_set, args.checkpoint, args.fit, args.metrics, args.oracle or None
    )


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
    from facetviz.activation_shards import join_shards

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
    from facetviz.data import open_dataset

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

    aggregate(args.metrics, settings["trees"], *args.out)


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
