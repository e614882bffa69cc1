"""What the generator's code layer and losses cost and buy: the default run's generator trained
from the codes of each layer in turn, and with each `--variant` of the default config's `priors`
settings, measured on the test split in one run (oracle fine-class accuracy of the
reconstructions, code cosine, pixel error, training time). Needs `make run` first (its model and
oracle).

    .venv/bin/python bench/generator_code_layers.py --layers classifier.3 features.7 \
        --variant feature_layer=features.4,feature_weight=0.1 --variant code_weight=0.01

Variants train from the config's code layer (`priors.code_layer: features.7`, the one this
chose). `--config` and `--run` measure another finished run, e.g. the colour scenes':

    .venv/bin/python bench/generator_code_layers.py --config config/colour.yaml \
        --run results/colour --layers features.7 --variant code_weight=0.01
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", nargs="*", default=["classifier.3", "features.7"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--images", type=int, default=None, help="default: priors.images")
    parser.add_argument("--variant", action="append", default=[], help="key=value,... of priors")
    parser.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    parser.add_argument("--run", type=Path, default=REPO / "results" / "default")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "bench"))
    import yaml
    from default_run import run_parts

    from facetviz.core.settings import PriorSettings
    from facetviz.data.datasets import open_dataset
    from facetviz.measure.generator import measure_generator
    from facetviz.priors.training import train_generator

    config, network, dataset = run_parts(args.threads, args.config, args.run)
    fit, test = dataset.training_splits
    fit_set = open_dataset(dataset, fit, config["seed"])
    test_set = open_dataset(dataset, test, config["seed"])
    priors = PriorSettings.from_config(config["priors"])
    if args.images:
        priors = dataclasses.replace(priors, images=args.images)
    runs = [(layer, layer, priors) for layer in args.layers]
    for variant in args.variant:
        values = dict(item.split("=", 1) for item in variant.split(","))
        changed = {k: yaml.safe_load(v) for k, v in values.items()}
        runs.append((variant, priors.code_layer, dataclasses.replace(priors, **changed)))
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for index, (name, layer, settings) in enumerate(runs):
            out = Path(scratch) / str(index)
            files = [out.with_suffix(suffix) for suffix in (".pt", ".fit.json", ".json")]
            train_generator(network, fit_set, layer, settings, config["seed"], *files[:2])
            oracle = args.run / "oracle" / "oracle.pt"
            metrics = measure_generator(network, test_set, *files, oracle)
            rows.append((name, metrics))
    budget = f"{priors.epochs} epochs" if priors.epochs else f"{priors.updates} updates"
    print(f"{len(fit_set)} training images, {budget}, {args.threads} thread(s)")
    heads = ("oracle acc.", "code cos", "pixel mse", "train s")
    print(f"{'code layer / variant':<44} " + " ".join(f"{h:>11}" for h in heads))
    for name, m in rows:
        print(f"{name:<44} {m['reconstruction_accuracy']:>11.4f} {m['code_cosine']:>11.4f} "
              f"{m['pixel_mse']:>11.5f} {m['seconds']:>11.1f}")  # fmt: skip
    print(f"(the real test images: {rows[0][1]['real_accuracy']:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
