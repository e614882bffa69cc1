"""Batched synthesis against the same images optimized one at a time, in one run.

40 images (4 neurons x 10 facets: class logits and conv channels of the default run's CNN) are
synthesized with one method as one batch, then each alone with the same steps and seeds; the
two are alternated `--repeats` times and the ratio of median times is printed. Each image has
its own seed, so both compute the same images up to floating-point differences of batched
convolutions, which the ascent amplifies (the max pixel difference is printed). Uses the default
run's trained model when `make run` has made it, else random weights (the timing does not depend
on them).

    .venv/bin/python bench/synthesis_batching.py --method mfv --steps-scale 0.25 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from default_run import default_settings  # bench/*.py: scripts run as bench/<name>.py

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "results" / "default" / "model" / "model.pt"
GOAL_RATIO = 3.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", default="mfv")
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--steps-scale", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    try:
        import facetviz  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(REPO / "src"))
    import torch

    from facetviz.model.networks import load_network
    from facetviz.synthesis import methods
    from facetviz.synthesis.methods import Context, Task
    from facetviz.synthesis.objectives import Unit

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    weights = DEFAULT_MODEL if DEFAULT_MODEL.exists() else None
    network = load_network(default_settings()[1], (1, 28, 28), 4, weights)
    network.to(args.device).module.eval()
    for parameter in network.module.parameters():
        parameter.requires_grad_(False)
    kinds = [
        Unit("classifier.5", 0),
        Unit("classifier.5", 1),
        Unit("features.6", 3),
        Unit("features.6", 7),
    ]
    units = [kinds[i * len(kinds) // args.images] for i in range(args.images)]
    starts = torch.rand(args.images, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    method = methods.method_class(args.method)(
        methods.method_settings(args.method, None), Context(network, args.steps_scale)
    )
    codes = torch.rand(args.images, 256, generator=torch.Generator().manual_seed(1))

    def task(rows: range) -> Task:
        return Task(
            units=[units[i] for i in rows],
            mean_images=starts[rows.start : rows.stop].to(args.device),
            groups=[slice(0, len(rows))],
            generators=[torch.Generator().manual_seed(i) for i in rows],
            facet_layer="classifier.3",
            class_units=[units[i].layer == "classifier.5" for i in rows],
            centroid_codes=codes[rows.start : rows.stop].to(args.device),
            unit_scales=torch.ones(len(rows), device=args.device),
            nearest_images=starts[rows.start : rows.stop].to(args.device),
            records=[],
        )

    def batched() -> torch.Tensor:
        return method.run(task(range(args.images)))[0].images

    def one_at_a_time() -> torch.Tensor:
        return torch.cat([method.run(task(range(i, i + 1)))[0].images for i in range(args.images)])

    import logging

    logging.getLogger("facetviz").setLevel(logging.WARNING)  # no progress lines in the timing
    times: dict[str, list[float]] = {"batched": [], "one at a time": []}
    images = {}
    for _ in range(args.repeats):
        for name, run in (("batched", batched), ("one at a time", one_at_a_time)):
            start = time.perf_counter()
            images[name] = run()
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    difference = float((images["batched"] - images["one at a time"]).abs().max())
    batched_s = statistics.median(times["batched"])
    single_s = statistics.median(times["one at a time"])
    print(
        f"{args.method}, {args.images} images, steps x {args.steps_scale}, {args.threads} threads, "
        f"{args.device}: batched median {batched_s:.2f} s, one at a time {single_s:.2f} s "
        f"({args.repeats} repeats, alternated)"
    )
    print(f"max pixel difference between the two: {difference:.2e}")
    ratio = single_s / batched_s
    verdict = "met" if ratio >= GOAL_RATIO else "NOT met"
    print(f"ratio {ratio:.1f}x (goal >= {GOAL_RATIO:.0f}x): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
