"""How much of the fine class the generator's code holds: a probe trained to read the fine class
from the facet layer's codes (the code the generator inverts, `priors` on `facets.layer`),
beside the oracle's accuracy on the generator's reconstructions and on the real images.

For each training tree given, the codes of every image in its activations.h5 are split by a
seeded permutation into 80 % to train the probe and 20 % to score it. The probe has the
visualized CNN's own head (adaptive average pool to 7 x 7 on a conv map, a 256-unit hidden
layer, ReLU) ending in one output per fine class: as much capacity as the CNN itself puts on
the code. The oracle reads the fine class from a reconstruction G(h), a function of the code h,
so a probe of this capacity reading h directly is the yardstick for what a reconstruction can
keep; it estimates, and does not bound, the best reading of h.

    .venv/bin/python analysis/code_probe.py results/colour-evaluation \\
        results/colour-evaluation/train-seed-{1,2}
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]


def probe_head(code_shape: tuple[int, ...] | None, size: int, classes: int) -> nn.Module:
    """The embedded CNN's head (model/embedded.py) on a code of this shape, `classes` outputs."""
    if code_shape is not None and len(code_shape) == 3:
        channels = code_shape[0]
        return nn.Sequential(
            nn.Unflatten(1, tuple(code_shape)), nn.AdaptiveAvgPool2d(7), nn.Flatten(),
            nn.Linear(channels * 49, 256), nn.ReLU(), nn.Linear(256, classes),
        )  # fmt: skip
    return nn.Sequential(nn.Linear(size, 256), nn.ReLU(), nn.Linear(256, classes))


def probe_accuracy(
    codes: np.ndarray, fine: np.ndarray, code_shape: tuple[int, ...] | None, seed: int, epochs: int
) -> float:
    """Held-out accuracy of the probe trained on a seeded 80 % of the codes."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    order = torch.randperm(len(codes), generator=generator)
    cut = int(0.8 * len(codes))
    x, y = torch.from_numpy(codes), torch.from_numpy(fine.astype(np.int64))
    scale = x[order[:cut]].std() + 1e-8  # codes of any magnitude train at one learning rate
    head = probe_head(code_shape, codes.shape[1], int(fine.max()) + 1)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-3, weight_decay=1e-4)
    for _epoch in range(epochs):
        for batch in order[:cut][torch.randperm(cut, generator=generator)].split(256):
            loss = nn.functional.cross_entropy(head(x[batch] / scale), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        held_out = order[cut:]
        predicted = torch.cat([head(x[b] / scale).argmax(1) for b in held_out.split(1024)])
    return float((predicted == y[held_out]).float().mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="training trees (activations.h5)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from facetviz.activations.extract import Activations
    from facetviz.evaluation.intervals import summarize

    torch.set_num_threads(1)
    rows = {"probe on the code": [], "oracle on reconstructions": [], "oracle on real images": []}
    for tree in args.runs:
        with Activations(tree / "activations.h5") as activations:
            codes = activations.codes(np.arange(len(activations.indices)))
            fine, shape = activations.fine_labels, activations.code_shape
        accuracy = probe_accuracy(codes, fine, shape, args.seed, args.epochs)
        rows["probe on the code"].append(accuracy)
        metrics = tree / "priors" / "generator.json"
        line = f"{tree}: {codes.shape[1]}-d code {shape}, probe {accuracy:.3f}"
        if metrics.exists():
            generator = json.loads(metrics.read_text())
            rows["oracle on reconstructions"].append(generator["reconstruction_accuracy"])
            rows["oracle on real images"].append(generator["real_accuracy"])
            line += (f", reconstructions {generator['reconstruction_accuracy']:.3f}, "
                     f"real {generator['real_accuracy']:.3f}")  # fmt: skip
        print(line, flush=True)
    for name, values in rows.items():
        if values:
            s = summarize(values)
            print(f"| {name} | {s.mean:.3f} [{s.low:.3f}, {s.high:.3f}] |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
