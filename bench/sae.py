"""Time of the `sae` stage on a run's stored activations, as config/directions.yaml makes it:
the TopK SAE of its `sae.fc` entry (the schema's defaults: 1,024 latents, k 16, 3,000 updates of
256 images) on the fc layer's 256 units over the 60,000 training images, one thread (the rule's
`threads: 1`). Goal: at most 2 minutes on 2 cores. Nothing is written into the repository.

    .venv/bin/python bench/sae.py --activations results/directions/activations.h5 --repeats 3

Any activations file that stores the layer serves (`results/default/activations.h5` does:
the default run visualizes fc units).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import yaml
from machine import load_average
from snakemake.utils import validate

REPO = Path(__file__).resolve().parents[1]
GOAL_S = 120.0


def directions_sae() -> dict:
    """config/directions.yaml's `sae.fc` with the schema's defaults."""
    config = yaml.safe_load((REPO / "config" / "directions.yaml").read_text())
    config.pop("base")
    config["facets"] = {"layer": "features.7"}
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    (entry,) = config["sae"].values()  # the one SAE the config defines
    return entry


def main() -> None:
    from facetviz.directions.sae import SaeSettings, sae_stage

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--activations", default=str(REPO / "results/default/activations.h5"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    entry = directions_sae()
    settings = SaeSettings(**{key: entry[key] for key in SaeSettings.__dataclass_fields__})
    print(f"sae {entry['layer']} ({entry['spatial']}): {settings}; load {load_average()}")
    times = []
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            start = time.perf_counter()
            out = Path(folder)
            metrics = sae_stage(args.activations, entry["layer"], entry["spatial"], settings,
                                repeat, out / "sae.h5", out / "sae.json")  # fmt: skip
            times.append(time.perf_counter() - start)
            print(f"  seed {repeat}: {times[-1]:.1f} s (training {metrics['seconds']:.1f} s), "
                  f"FVU {metrics['fvu']:.3f}, L0 {metrics['l0']:.1f}, "
                  f"{metrics['dead_latents']} dead")  # fmt: skip
    median = statistics.median(times)
    verdict = "met" if median <= GOAL_S else "missed"
    print(f"median {median:.1f} s over {len(times)} runs: goal <= {GOAL_S:.0f} s {verdict}")


if __name__ == "__main__":
    main()
