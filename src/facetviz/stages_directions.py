"""The stages of neurons that are not units (docs/design.md §12): probes and SAEs made from stored
activations, and their measures. Part of the one table of stages (`core.stage.STAGES`), kept
apart from `stages` to keep each module short; `stages` imports it."""

from __future__ import annotations

import argparse
from typing import Any

from facetviz.core.stage import many, required, stage


@stage(
    "probe",
    "fit a linear probe for one class on a layer's activations (a direction)",
    required("--activations"),
    required("--out-npy"),
    required("--out-json"),
)
def cmd_probe(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.directions.probe import probe_stage

    probe = settings["probe"]
    probe_stage(
        args.activations, probe["layer"], probe["spatial"], probe["class"], probe["labels"],
        settings["seed"], args.out_npy, args.out_json, c=probe["c"],
    )  # fmt: skip


@stage(
    "sae",
    "train a TopK sparse autoencoder on a layer's activations",
    required("--activations"),
    required("--out-h5"),
    required("--out-json"),
)
def cmd_sae(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.directions.sae import SaeSettings, sae_stage

    sae = settings["sae"]
    sae_settings = SaeSettings(**{key: sae[key] for key in SaeSettings.__dataclass_fields__})
    sae_stage(
        args.activations, sae["layer"], sae["spatial"], sae_settings, settings["seed"],
        args.out_h5, args.out_json, threads=args.threads or 1,
    )  # fmt: skip


@stage(
    "probe-metrics",
    "score probe neurons: their top images, facets and every method's images of their class",
    required("--oracle"),
    many("--facets", "facet files of the probe neurons"),
    required("--out-json"),
)
def cmd_probe_metrics(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.measure.directions import probe_scores

    probe_scores(
        args.oracle, args.facets, settings["image_dirs"], settings["classes"], args.out_json
    )


@stage(
    "sae-purity",
    "top-image purity of an SAE's latents against the layer's units",
    required("--activations"),
    required("--sae"),
    required("--out-json"),
)
def cmd_sae_purity(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.measure.directions import sae_purity

    sae_purity(args.activations, args.sae, settings["count"], settings["top_n"], args.out_json)


@stage(
    "directions-evaluation",
    "probe neurons and SAEs over seeds: means and intervals",
    ("--probes", {"nargs": "*", "default": [], "help": "directions/probes.json per seed"}),
    ("--sae", {"nargs": "*", "default": [], "help": "directions/sae-<name>.json per seed"}),
    required("--out"),
)
def cmd_directions_evaluation(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from facetviz.evaluation.directions import evaluate_directions

    evaluate_directions(args.probes, args.sae, args.out)
