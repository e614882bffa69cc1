"""Train the embedded CNN on the run's dataset and label map (by default coarse Fashion-MNIST)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from facetviz.data import FacetDataset, open_dataset
from facetviz.io import write_json
from facetviz.models import build_architecture, save_checkpoint
from facetviz.progress import Progress, log
from facetviz.settings import DatasetSettings, ModelSettings, TrainSettings


def seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed)
    return torch.Generator().manual_seed(seed)


def loader(dataset: FacetDataset, batch_size: int, workers: int, generator=None) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=generator is not None,
        generator=generator,
        num_workers=workers,
        persistent_workers=False,
    )


@torch.no_grad()
def evaluate(
    module: nn.Module,
    normalize,
    dataset: FacetDataset,
    batch_size: int,
    workers: int,
    device: torch.device,
) -> dict[str, Any]:
    """Accuracy overall and per fine class (where classes merge fine classes)."""
    module.eval()
    predictions = []
    for pixels, _labels, _fine, _index in loader(dataset, batch_size, workers):
        predictions.append(module(normalize(pixels.to(device))).argmax(1).cpu())
    predicted = torch.cat(predictions).numpy()
    correct = predicted == dataset.labels
    per_fine = {
        name: float(correct[dataset.fine_labels == i].mean())
        for i, name in enumerate(dataset.label_space.fine_names)
        if np.any(dataset.fine_labels == i)
    }
    return {
        "accuracy": float(correct.mean()),
        "images": int(len(dataset)),
        "per_fine_class": per_fine,
    }


def fit(
    module: nn.Module,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    dataset: FacetDataset,
    settings: TrainSettings,
    workers: int,
    device: torch.device,
    generator: torch.Generator,
) -> None:
    """Train `module` on `dataset`'s labels with Adam and a one-cycle learning-rate schedule
    (`generator` shuffles the batches)."""
    optimizer = torch.optim.Adam(
        module.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    epochs = settings.epochs
    steps_per_epoch = -(-len(dataset) // settings.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=settings.lr, total_steps=epochs * steps_per_epoch
    )
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        module.train()
        progress = Progress(f"train epoch {epoch + 1}/{epochs}", len(dataset), "images")
        running, seen = 0.0, 0
        for pixels, labels, _fine, _index in loader(
            dataset, settings.batch_size, workers, generator
        ):
            pixels, labels = pixels.to(device), labels.to(device)
            loss = loss_fn(module(normalize(pixels)), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            running += loss.item() * len(labels)
            seen += len(labels)
            progress.update(len(labels))
        log.info("epoch %d: mean training loss %.4f", epoch + 1, running / max(seen, 1))


def fit_and_test(
    module: nn.Module,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    fit_set: FacetDataset,
    test: tuple[str, FacetDataset],
    settings: TrainSettings,
    workers: int,
    device: torch.device,
    generator: torch.Generator,
) -> dict[str, Any]:
    """`fit`, then `evaluate` on the (split name, dataset) `test`: the metrics every trained
    network of a run reports."""
    start = time.perf_counter()
    fit(module, normalize, fit_set, settings, workers, device, generator)
    split, test_set = test
    result = evaluate(module, normalize, test_set, 512, workers, device)
    return {
        "test_accuracy": result["accuracy"],
        "test_images": result["images"],
        "test_split": split,
        "per_fine_class_accuracy": result["per_fine_class"],
        "train_images": len(fit_set),
        "epochs": settings.epochs,
        "seconds": round(time.perf_counter() - start, 1),
    }


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
