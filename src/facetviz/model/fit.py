"""The fit loop that every trained network shares (the embedded CNN, the oracle): seeding, loaders,
epochs with a progress line, and the evaluation on a held-out split."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from facetviz.core.progress import Progress, log
from facetviz.core.settings import TrainSettings
from facetviz.data.datasets import FacetDataset


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
