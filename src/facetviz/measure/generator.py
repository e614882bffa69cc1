"""How good a trained generator is (rule generator_metrics): on the test split, the pixel error
of its reconstructions G(E(x)), the cosine of their codes to the real codes, and, with an oracle,
the fine-class accuracy of the reconstructions, checked against priors.check (prior_check.py).
Its own job, apart from the generator's training, so that training need not wait for the oracle
and a new oracle does not retrain it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from facetviz.core.io import read_json, write_json
from facetviz.core.progress import log
from facetviz.core.settings import PriorCheckSettings
from facetviz.data.datasets import FacetDataset
from facetviz.measure.oracle import classify, load_oracle
from facetviz.measure.prior_check import act_on, check_generator
from facetviz.model.networks import Network
from facetviz.priors.networks import Generator
from facetviz.priors.training import encode, load_prior


@torch.no_grad()
def generator_metrics(
    G: Generator, network: Network, test: FacetDataset, code_layer: str, oracle=None
) -> dict[str, Any]:
    """On the test split: pixel error of G(E(x)), cosine of E(G(E(x))) to E(x), and, with an
    oracle, its fine-class accuracy on the reconstructions (and on the real images)."""
    images = test.pixels(np.arange(len(test)))
    codes = encode(network, images, code_layer)
    rebuilt = torch.cat([G(batch) for batch in codes.split(512)])
    again = encode(network, rebuilt, code_layer)
    metrics: dict[str, Any] = {
        "test_images": len(test),
        "pixel_mse": float(F.mse_loss(rebuilt, images)),
        "code_cosine": float(F.cosine_similarity(again, codes, dim=1).mean()),
    }
    if oracle is not None:
        module, names = oracle
        truth = np.array([names.index(test.label_space.fine_names[f]) for f in test.fine_labels])
        for key, pixels in (("reconstruction_accuracy", rebuilt), ("real_accuracy", images)):
            metrics[key] = float(np.mean(classify(module, pixels).argmax(1).numpy() == truth))
    return metrics


def measure_generator(
    network: Network,
    test_set: FacetDataset,
    checkpoint: str | Path,
    fit_path: str | Path,
    metrics_path: str | Path,
    oracle_path: str | Path | None = None,
    check: PriorCheckSettings | None = None,
) -> dict[str, Any]:
    """`generator_metrics` of the trained G on the test split, with how it was trained (from
    `fit_path`), as the metrics JSON. Its own job (rule generator_metrics), so that the
    generator's training need not wait for the oracle, and a new oracle does not retrain it.

    With `check` (priors.check), the metrics are checked against its minimums: a failure is a
    warning in the log and a record in the JSON, or an error that writes nothing (on_poor:
    stop), so that nothing is drawn with the generator."""
    G = load_prior(checkpoint, "generator", network, test_set.image_shape)
    oracle = load_oracle(oracle_path) if oracle_path else None
    metrics = generator_metrics(G, network, test_set, G.code_layer, oracle) | read_json(fit_path)
    log.info("generator: %s", ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                        for k, v in metrics.items()))  # fmt: skip
    if check is not None:
        metrics["check"] = check_generator(metrics, check, G.width)
        act_on(metrics["check"])
    write_json(metrics_path, metrics)
    return metrics
