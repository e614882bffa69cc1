"""What the colour scenes' facets group by (docs/results.md §10.4): for each class unit's facets
of a finished `fashion_scenes` run, the normalized mutual information between the facet
assignment and each factor the scenes were drawn from (the garment's fine class, its size,
where it lies, its tint's hue, the background's pattern and brightness), against the same NMI
under shuffled assignments (chance).

    .venv/bin/python analysis/scene_factors.py --config config/colour.yaml results/colour

A factor with an NMI well above the others is what the facet layer's codes separate first.
"""

from __future__ import annotations

import argparse
import colorsys
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))


def scene_factors(scenes, indices: np.ndarray) -> dict[str, np.ndarray]:
    """Each factor of the scenes of these dataset indices (a SceneMaker's), in a few bins."""
    draws = [scenes.draw(int(index)) for index in indices]
    canvas = scenes.canvas
    centres = np.array([[d.layout.top + d.layout.side / 2, d.layout.left + d.layout.side / 2]
                        for d in draws])  # fmt: skip
    sides = np.array([d.layout.side for d in draws])
    hues = np.array([colorsys.rgb_to_hsv(*np.clip(d.tint, 0, 1))[0] for d in draws])
    brightness = np.array([float(np.mean(d.base)) for d in draws])
    return {
        "garment size (3 bins)": np.digitize(sides, np.quantile(sides, [1 / 3, 2 / 3])),
        "position (3 x 3 grid)": (np.minimum(centres * 3 // canvas, 2) @ [3, 1]).astype(int),
        "tint hue (6 bins)": np.minimum((hues * 6).astype(int), 5),
        "background pattern": np.array([d.pattern for d in draws]),
        "background brightness (3 bins)": np.digitize(
            brightness, np.quantile(brightness, [1 / 3, 2 / 3])
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished fashion_scenes run (its facets/)")
    parser.add_argument("--config", type=Path, default=REPO / "config" / "colour.yaml")
    parser.add_argument("--units", nargs="+", default=["footwear", "tops", "trouser-dress"])
    parser.add_argument("--shuffles", type=int, default=20)
    args = parser.parse_args()
    from default_run import default_config
    from sklearn.metrics import normalized_mutual_info_score as nmi

    from facetviz.core.settings import DatasetSettings
    from facetviz.data.datasets import open_dataset
    from facetviz.facets.record import FacetRecord

    config = default_config(args.config)
    dataset = open_dataset(DatasetSettings.from_config(config["dataset"]), None, config["seed"])
    if not hasattr(dataset, "scenes"):
        sys.exit(f"{args.config} is not a fashion_scenes config (dataset.kind)")
    rng = np.random.default_rng(0)
    for position, unit in enumerate(args.units):
        record = FacetRecord.read(args.run / "facets" / f"{unit}.h5")
        kept = record.assignment >= 0
        facets = record.assignment[kept]
        factors = {"fine class": record.fine_labels[kept]}
        factors |= scene_factors(dataset.scenes, record.dataset_indices[kept])
        if position == 0:
            print("| unit | " + " | ".join(factors) + " |")
        cells = []
        for values in factors.values():
            chance = np.mean([nmi(values, rng.permutation(facets)) for _ in range(args.shuffles)])
            cells.append(f"{nmi(values, facets):.3f} ({chance:.3f})")
        print(f"| {unit} | " + " | ".join(cells) + " |")
    print("NMI of the facet assignment with each factor (its mean under shuffled assignments)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
