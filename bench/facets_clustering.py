"""Time of clustering one neuron: PCA -> t-SNE -> k-means (and PCA -> k-means) on one CPU core.

Uses a run's real activations file (default: results/default/activations.h5, made by `make run`)
and one neuron's selection as the facets stage makes it: the images of class 0 (footwear in the
default run), capped at --images. Each measurement is repeated and the median is printed.

    .venv/bin/python bench/facets_clustering.py --images 2000 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ACTIVATIONS = REPO / "results" / "default" / "activations.h5"
GOAL_SECONDS = 30.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--activations", default=str(DEFAULT_ACTIVATIONS))
    parser.add_argument("--class-index", type=int, default=0, help="class whose images to cluster")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    args = parser.parse_args()
    # before numpy, scikit-learn and torch start their thread pools, as the CLI does
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(args.threads)
    try:
        import facetviz  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(REPO / "src"))
    from facetviz.activations.extract import Activations
    from facetviz.facets.discover import cluster, embed, select_rows

    if not Path(args.activations).exists():
        print(f"{args.activations} does not exist: run `make run` first", file=sys.stderr)
        return 1
    neuron = {"name": "bench", "select": "label", "class": args.class_index}
    facets_cfg = {"top_n": 1000, "max_images": args.images}
    with Activations(args.activations) as activations:
        rows = select_rows(activations, neuron, facets_cfg, seed=0)
        codes = activations.codes(rows)
    print(
        f"facetviz clustering: {len(rows)} images of class {args.class_index}, "
        f"{codes.shape[1]}-d codes, {args.threads} thread(s), PCA(50), k-means k=10"
    )
    for space in ("tsne", "pca"):
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            points, _view = embed(codes, 50, 30.0, 0, space)
            cluster(points, 10, 15, 10, 0)
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        runs = ", ".join(f"{t:.2f}" for t in times)
        verdict = "" if space == "pca" else f" (goal < {GOAL_SECONDS:.0f} s)"
        print(f"  {space:>4}: median {median:.2f} s{verdict}; runs {runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
