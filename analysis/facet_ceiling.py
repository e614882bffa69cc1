"""How pure could the facets be? The same facet discovery run on the codes of a network that
was trained on the fine labels (the run's oracle), beside the visualized CNN's own codes.

For each training tree given and each class unit, the unit's selected images (the facets
stage's selection) are clustered as the facets stage clusters them (PCA -> t-SNE -> k-means,
the config's settings, the tree's training seed) twice: from the CNN's facet-layer codes (with
the config's `facets.pool`) and from the oracle's penultimate features of the same images. It
prints the purity, NMI and coverage of each against the fine labels, and the 5-fold
cross-validated accuracy of a logistic-regression probe for the fine class on each code (how
much of the fine class the code holds, linearly), with the mean and 95 % interval over the
trees (evaluation/intervals.py):

    .venv/bin/python analysis/facet_ceiling.py --config config/colour-evaluation.yaml \\
        results/colour-evaluation results/colour-evaluation/train-seed-{1,2}

The oracle is trained on the fine labels the purity is scored against, so its codes are a
ceiling for codes of the same size and data, not a method: facets can use only the network
being visualized.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "analysis"))
CLUSTER_SCORES = ("purity", "nmi", "coverage")
SCORES = (*CLUSTER_SCORES, "probe")
# --scalings: the CNN's codes rescaled before PCA, each an extra row (docs/results.md §10.6)
SCALINGS = {
    "unit length": lambda f: f / (np.linalg.norm(f, axis=1, keepdims=True) + 1e-8),
    "standardized": lambda f: (f - f.mean(0)) / (f.std(0) + 1e-8),
}


def probe_accuracy(features: np.ndarray, fine: np.ndarray, seed: int) -> float:
    """5-fold cross-validated accuracy of a logistic-regression probe for the fine class."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=500))
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    return float(cross_val_score(probe, features, fine, cv=folds).mean())


def oracle_reader(tree: Path, config: dict[str, Any], seed: int):
    """A function from dataset indices to the tree's oracle's penultimate features of those
    images (the dataset and the oracle opened once per tree)."""
    from facetviz.core.settings import DatasetSettings
    from facetviz.data.datasets import open_dataset
    from facetviz.measure.oracle import load_oracle
    from facetviz.measure.plausibility import oracle_features

    dataset = open_dataset(DatasetSettings.from_config(config["dataset"]), None, seed)
    oracle, _classes = load_oracle(tree / "oracle" / "oracle.pt")
    return lambda indices: oracle_features(
        oracle, dataset.pixels(dataset.positions_of(indices))
    ).numpy()


def measure_tree(
    tree: Path, seed: int, config: dict[str, Any], units: list[str], scalings: bool
) -> dict:
    """{unit: {code: scores}} for one training tree."""
    from facet_pooling import class_unit

    from facetviz.activations.extract import Activations
    from facetviz.core.settings import FacetSettings
    from facetviz.facets.discover import clustered_codes, read_selection, space_scores

    settings = FacetSettings.from_config(config["facets"])
    with Activations(tree / "activations.h5") as activations:
        class_names = activations.class_names
    oracle_codes = oracle_reader(tree, config, seed)
    results: dict[str, Any] = {}
    for name in units:
        selection = read_selection(tree / "activations.h5", class_unit(config, name, class_names),
                                   settings, seed)  # fmt: skip
        cnn = clustered_codes(selection, settings)
        features = {"cnn": cnn, "oracle": oracle_codes(selection.dataset_indices)}
        if scalings:
            features |= {f"cnn, {key}": scale(cnn) for key, scale in SCALINGS.items()}
        fine = selection.fine_labels
        results[name] = {}
        for code, values in features.items():
            found = space_scores(values, fine, selection.fine_names, settings, seed, settings.space)
            scores = {score: found[score] for score in CLUSTER_SCORES}
            scores["probe"] = probe_accuracy(values, fine, seed)
            results[name][code] = scores
            print(f"{tree} {name} {code} ({values.shape[1]}-d): "
                  + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()), flush=True)  # fmt: skip
    return results


def print_table(per_tree: list[dict], units: list[str]) -> None:
    from facet_pooling import interval_cell

    print("\n| unit | codes | " + " | ".join(SCORES) + " |")
    print("|" + " --- |" * (2 + len(SCORES)))
    for unit in units:
        for code in per_tree[0][unit]:
            cells = [interval_cell([tree[unit][code][s] for tree in per_tree]) for s in SCORES]
            print(f"| {unit} | {code} | " + " | ".join(cells) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="training trees (activations, oracle)")
    parser.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    parser.add_argument("--units", nargs="+", default=["footwear", "tops", "trouser-dress"])
    parser.add_argument(
        "--scalings", action="store_true", help="also cluster the CNN's codes scaled (SCALINGS)"
    )
    args = parser.parse_args()
    from facet_pooling import run_config, training_seed
    from threadpoolctl import threadpool_limits

    import facetviz.facets.discover  # noqa: F401 - loads scikit-learn's OpenMP, for the limit

    config = run_config(args.config)
    per_tree = []
    with threadpool_limits(1):  # as the facets rule runs: t-SNE's map depends on it
        for tree in args.runs:
            seed = training_seed(tree, config)
            per_tree.append(measure_tree(tree, seed, config, args.units, args.scalings))
    print_table(per_tree, args.units)
    return 0


if __name__ == "__main__":
    sys.exit(main())
