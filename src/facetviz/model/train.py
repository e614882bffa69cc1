"""The train stage: the embedded CNN on the run's dataset and label map (by default coarse
Fashion-MNIST), saved as a checkpoint with its metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from facetviz.core.io import write_json
from facetviz.core.progress import log
from facetviz.core.settings import DatasetSettings, ModelSettings
from facetviz.data.datasets import open_dataset
from facetviz.model.fit import fit_and_test, seed_everything
from facetviz.model.networks import build_architecture, save_checkpoint


def train_embedded(
    dataset: DatasetSettings,
    model: ModelSettings,
    seed: int,
    device: torch.device,
    checkpoint_path: str | Path,
    metrics_path: str | Path,
) -> dict[str, Any]:
    """Train as `model.train` says, evaluate on the held-out split, write the checkpoint and a
    metrics JSON."""
    settings = model.train
    generator = seed_everything(seed)
    fit_split, eval_split = dataset.training_splits
    fit_set = open_dataset(dataset, fit_split, seed)
    eval_set = open_dataset(dataset, eval_split, seed)
    workers = dataset.workers
    channels = fit_set.image_shape[0]

    module = build_architecture(model, channels, fit_set.num_classes).to(device)
    mean, std = model.normalization(channels)
    mean_t = torch.tensor(mean, device=device)[:, None, None]
    std_t = torch.tensor(std, device=device)[:, None, None]

    def normalize(pixels: torch.Tensor) -> torch.Tensor:
        return (pixels - mean_t) / std_t

    log.info(
        "training %s on %d images (%s split), %d classes, %d epochs, device %s",
        model.kind, len(fit_set), fit_split, fit_set.num_classes, settings.epochs, device,
    )  # fmt: skip
    metrics = fit_and_test(
        module, normalize, fit_set, (eval_split, eval_set), settings, workers, device, generator
    )
    metrics.update(classes=list(fit_set.label_space.class_names), seed=seed)
    log.info(
        "%s accuracy: %.4f on %d images",
        eval_split,
        metrics["test_accuracy"],
        metrics["test_images"],
    )
    meta = {
        "classes": list(fit_set.label_space.class_names),
        "input_shape": list(fit_set.image_shape),
        "mean": list(mean),
        "std": list(std),
    }
    save_checkpoint(checkpoint_path, module.cpu(), meta)
    write_json(metrics_path, metrics)
    return metrics
