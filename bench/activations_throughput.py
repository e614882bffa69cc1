"""Throughput of the activations stage against a bare forward loop over the same data.

Both measurements use the default run's setup: the embedded CNN (random weights, or the run's
trained ones), the real Fashion-MNIST train split with the default label map, the default
config's facet layer and its neurons' layers as target layers, batch size 256.

  bare     the same DataLoader (facetviz.model.fit.loader) feeding model(normalize(x)) under
           torch.inference_mode, with no hooks and nothing written
  extract  facetviz.activations.extract.extract into an HDF5 file in a temporary folder

The two are alternated (bare, extract, bare, extract, ...) so that drifting machine load hits
both alike; the medians are compared: ratio = extract images/s / bare images/s (goal >= 0.8).
Nothing is written into the repository.

    .venv/bin/python bench/activations_throughput.py --images 20000 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

# bench/*.py: scripts run as bench/<name>.py
from default_run import default_config, default_settings
from machine import load_average

REPO = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS = REPO / "results" / "default" / "model" / "model.pt"
DEFAULT = default_config()
FACET_LAYER = DEFAULT["facets"]["layer"]
TARGET_LAYERS = sorted({neuron["layer"] for neuron in DEFAULT["neurons"]})
GOAL = 0.8


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--images",
        type=int,
        default=60000,
        help="train-split images used (default all 60000; fewer: a seeded subset)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="measurements of each kind")
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads for torch (default: torch's default)"
    )
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (default 0)")
    parser.add_argument(
        "--weights",
        default=None,
        help=f"'random', or a state dict / checkpoint (default {DEFAULT_WEIGHTS} "
        "when it exists, else random)",
    )
    parser.add_argument(
        "--root", default=None, help="Fashion-MNIST IDX folder (default: found as the run finds it)"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    args = parser.parse_args()
    if args.images < 1 or args.repeats < 1 or args.batch_size < 1:
        parser.error("--images, --repeats and --batch-size must be positive")
    return args


def main() -> int:
    args = parse_args()
    if args.threads:  # before torch starts its thread pools, as the CLI does
        for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[variable] = str(args.threads)
    try:
        import facetviz  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(REPO / "src"))

    import torch

    from facetviz.activations.extract import extract
    from facetviz.data.datasets import open_dataset
    from facetviz.model.fit import loader
    from facetviz.model.networks import load_network, resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    weights = args.weights
    if weights is None:
        weights = str(DEFAULT_WEIGHTS) if DEFAULT_WEIGHTS.exists() else "random"
    # the default run's: every Fashion-MNIST image belongs to one of its 4 classes
    dataset_settings, model = default_settings()
    dataset_settings = replace(
        dataset_settings,
        root=args.root,
        max_images=args.images if args.images < 60000 else None,
    )
    classes = len(dataset_settings.label_map)
    torch.manual_seed(0)
    network = load_network(
        model, (1, 28, 28), classes, None if weights == "random" else weights
    ).to(device)
    dataset = open_dataset(dataset_settings, "train", seed=0)
    n = len(dataset)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def bare() -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            for pixels, _labels, _fine, _index in loader(dataset, args.batch_size, args.workers):
                network.module(network.normalize(pixels.to(device)))
        sync()
        return time.perf_counter() - start

    def extract_once(folder: Path) -> tuple[float, int]:
        out = folder / "activations.h5"
        start = time.perf_counter()
        extract(
            network, dataset, FACET_LAYER, TARGET_LAYERS, out, args.batch_size, args.workers, device
        )
        sync()
        seconds = time.perf_counter() - start
        size = out.stat().st_size
        out.unlink()
        return seconds, size

    # warm-up (allocator, kernels, page cache) on a few batches, not timed
    with torch.inference_mode():
        warm = torch.rand(args.batch_size, 1, 28, 28, device=device)
        for _ in range(3):
            network.module(network.normalize(warm))

    print(
        f"facetviz activations throughput: {n} images, batch {args.batch_size}, "
        f"workers {args.workers}, torch threads {torch.get_num_threads()}, device {device}, "
        f"weights {weights}"
    )
    print(f"facet layer {FACET_LAYER}; target layers {', '.join(TARGET_LAYERS)}")
    print(f"load average before: {load_average()}")
    print()
    print(
        f"{'repeat':>6}  {'bare s':>8}  {'bare img/s':>11}  {'extract s':>9}  "
        f"{'extract img/s':>13}  {'ratio':>6}"
    )
    bare_rates, extract_rates = [], []
    file_size = 0
    with tempfile.TemporaryDirectory(prefix="facetviz-bench-") as tmp:
        for repeat in range(1, args.repeats + 1):
            bare_s = bare()
            extract_s, file_size = extract_once(Path(tmp))
            bare_rates.append(n / bare_s)
            extract_rates.append(n / extract_s)
            print(
                f"{repeat:>6}  {bare_s:>8.2f}  {n / bare_s:>11.0f}  {extract_s:>9.2f}  "
                f"{n / extract_s:>13.0f}  {bare_s / extract_s:>6.3f}",
                flush=True,
            )
    bare_median = statistics.median(bare_rates)
    extract_median = statistics.median(extract_rates)
    ratio = extract_median / bare_median
    print(
        f"{'median':>6}  {n / bare_median:>8.2f}  {bare_median:>11.0f}  "
        f"{n / extract_median:>9.2f}  {extract_median:>13.0f}  {ratio:>6.3f}"
    )
    paired = statistics.median(e / b for e, b in zip(extract_rates, bare_rates, strict=True))
    print()
    print(f"activations file: {file_size / 2**20:.1f} MiB; load average after: {load_average()}")
    print(
        f"median of the per-repeat ratios: {paired:.3f} (spread of the per-repeat ratios "
        "shows how noisy the machine was)"
    )
    verdict = "meets" if ratio >= GOAL else "misses"
    print(
        f"ratio (extract images/s / bare images/s, medians): {ratio:.3f} -- {verdict} the "
        f"goal of >= {GOAL}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
