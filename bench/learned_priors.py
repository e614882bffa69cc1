"""The learned priors' cost against mfv's, measured side by side in one run.

`mfv`, `dgn` and `ppgn` (and the `g_centroid` reference) synthesize the same facet images, the
default run's class units, with the default config's settings; the methods are alternated
`--repeats` times and the median images/s of each is printed with its ratio to mfv's. Needs
`make run` first (its model, facets and generator). The facets' codes that dgn and ppgn start
from are part of their cost (they encode each facet's member images once per job).

    .venv/bin/python bench/learned_priors.py --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results" / "default"
CLASS_UNITS = ("footwear", "tops", "trouser-dress", "bag")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--methods", nargs="+", default=["mfv", "dgn", "ppgn", "g_centroid"])
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "bench"))
    from default_run import default_run_parts

    from facetviz.core.settings import SynthesisSettings
    from facetviz.data.datasets import open_dataset
    from facetviz.synthesis import methods
    from facetviz.synthesis.job import synthesize_batch

    config, network, dataset = default_run_parts(args.threads)
    shared = SynthesisSettings.from_config(config["synthesis"])
    facets = [RESULTS / "facets" / f"{name}.h5" for name in CLASS_UNITS]
    inputs = {"generator": RESULTS / "priors" / "generator.pt"}

    def run(name: str, out: Path) -> int:
        settings = methods.method_settings(name, config["synthesis"].get(name))
        needed = methods.method_class(name).required_inputs(settings)
        context = methods.Context(
            network, shared.steps_scale, False, {k: inputs[k] for k in needed},
            dataset=lambda: open_dataset(dataset, seed=config["seed"]),
        )  # fmt: skip
        method = methods.method_class(name)(settings, context)
        results = synthesize_batch(method, facets, config["facets"]["layer"], 0, out)
        return sum(len(r["activation_final"]) for r in results.values())

    import logging
    import tempfile

    logging.getLogger("facetviz").setLevel(logging.WARNING)
    rates: dict[str, list[float]] = {name: [] for name in args.methods}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            for name in args.methods:
                start = time.perf_counter()
                images = run(name, Path(scratch) / f"{name}-{repeat}")
                rates[name].append(images / (time.perf_counter() - start))
    base = statistics.median(rates["mfv"]) if "mfv" in rates else None
    print(f"{len(CLASS_UNITS)} class units, {args.threads} thread(s), {args.repeats} alternated "
          "repeats, each method's default settings in config/config.yaml")  # fmt: skip
    for name, values in rates.items():
        median = statistics.median(values)
        ratio = f", {median / base:.2f}x mfv" if base else ""
        runs = ", ".join(f"{v:.2f}" for v in values)
        print(f"{name:<11} {median:8.2f} images/s (runs: {runs}){ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
