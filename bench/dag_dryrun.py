"""Time to plan the paper-scale DAG: `snakemake --dry-run` with all 1,000 ImageNet class units.

The config is the paper's setting at full width: a torchvision AlexNet (random weights, so no
download), an ImageFolder with ImageNet's layout of 1,000 class folders (each with one empty
.JPEG: the parse checks that every selected class has an image file; a dry run opens none), fc7
(`classifier.5`, after its ReLU as in Caffe) as facet layer, one neuron per class logit, 10
neurons per synthesis job. Each repeat is a fresh `snakemake --dry-run` process (parsing, config
checks, DAG), as a user would run it; the median wall time is printed with the number of
planned jobs.

    .venv/bin/python bench/dag_dryrun.py --classes 1000 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 60.0


def make_class_folders(root: Path, classes: list[str]) -> None:
    """ImageNet's layout, one empty image file per class folder (a dry run decodes none)."""
    for name in classes:
        (root / name).mkdir(parents=True)
        (root / name / f"{name}_0.JPEG").touch()


def paper_scale_config(root: Path, classes: list[str], per_job: int) -> dict:
    return {
        "run": "dag-bench",
        "device": "cuda",  # jobs then declare resources: gpu, as on a cluster
        "dataset": {"kind": "image_folder", "root": str(root), "image_size": 227},
        "model": {"kind": "torchvision", "arch": "alexnet", "weights": "random"},
        "facets": {"layer": "classifier.5", "k": 10, "m": 15},
        "neurons": [
            {"name": name, "layer": "classifier.6", "unit": unit, "select": "label"}
            for unit, name in enumerate(classes)
        ],
        "synthesis": {"neurons_per_job": per_job, "methods": ["mfv"]},
    }


def dry_run(workdir: Path, config: Path) -> tuple[float, Counter]:
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(config),
        "--dry-run",
        "--quiet",
        "rules",
        "--cores",
        "1",
    ]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"dry run failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    # the "Job stats" table: rule name and count per line
    counts = Counter(
        {
            rule: int(count)
            for rule, count in re.findall(r"^(\w+)\s+(\d+)\s*$", result.stdout, re.MULTILINE)
            if rule != "total"
        }
    )
    return seconds, counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--neurons-per-job", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="facetviz-dag-") as tmp:
        workdir = Path(tmp)
        classes = [f"n{index:08d}" for index in range(args.classes)]  # ImageNet-style wnids
        make_class_folders(workdir / "train", classes)
        config = workdir / "config.yaml"
        config.write_text(
            yaml.safe_dump(paper_scale_config(workdir / "train", classes, args.neurons_per_job))
        )
        times = []
        for _ in range(args.repeats):
            seconds, counts = dry_run(workdir, config)
            times.append(seconds)
    median = statistics.median(times)
    print(
        f"planned jobs: {sum(counts.values())} ({', '.join(f'{r} {n}' for r, n in counts.items())})"
    )
    print(
        f"dry run of {args.classes} class units on {os.cpu_count()} cores: "
        f"median {median:.1f} s over {args.repeats} (all: {', '.join(f'{t:.1f}' for t in times)})"
    )
    print(f"goal < {GOAL_SECONDS:.0f} s: {'met' if median < GOAL_SECONDS else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
