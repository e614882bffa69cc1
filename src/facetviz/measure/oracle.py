"""The oracle: an independent network that classifies images into the dataset's fine classes.

It measures synthesized images (docs/design.md §6: facet fidelity, transferability). To be
independent of the embedded CNN it differs in architecture (residual blocks with BatchNorm, global
pooling, no hidden fc layer), in labels (every fine class on its own, whatever the run's label_map)
and in seed (the run's seed plus `oracle.seed_offset`), and it always trains on the full training
split (`dataset.max_images` does not apply; `oracle.max_images` does, for tests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from facetviz.core.errors import FacetvizError
from facetviz.core.io import write_json
from facetviz.core.progress import log
from facetviz.core.settings import DatasetSettings, OracleSettings, TrainSettings
from facetviz.data.datasets import open_dataset
from facetviz.model.fit import fit_and_test, seed_everything
from facetviz.model.networks import save_checkpoint

WIDTH = 16  # channels of the stem; the residual stages double it twice
# How the oracle trains; fixed, as its job is to be a good fine classifier, not a subject of study.
# (epochs come from oracle.epochs: the schema's default is the fewest that clear the 0.90 bar
# with room; docs/results.md, "Oracle")
TRAIN = TrainSettings(epochs=1, batch_size=128, lr=0.01, weight_decay=0.0)
MEAN, STD = 0.5, 0.5


def _conv_bn(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    )


class ResidualBlock(nn.Module):
    """Two 3x3 conv + BatchNorm layers with an identity (or 1x1 projection) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv_bn(in_channels, out_channels, stride),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class OracleNet(nn.Module):
    """A small ResNet-style classifier; it holds its input normalization as buffers.

    `forward` takes normalized input (like every model here); `classify` takes pixels in [0, 1].
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = WIDTH) -> None:
        super().__init__()
        self.width = width
        self.input_size: tuple[int, ...] | None = None  # (H, W) it was trained at, once known
        self.register_buffer("mean", torch.full((in_channels, 1, 1), MEAN))
        self.register_buffer("std", torch.full((in_channels, 1, 1), STD))
        self.stem = _conv_bn(in_channels, width)
        self.blocks = nn.Sequential(
            ResidualBlock(width, 2 * width, stride=2),
            ResidualBlock(2 * width, 4 * width, stride=2),
        )
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, num_classes)
        )

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        return (pixels - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def oracle_dataset(dataset: DatasetSettings, max_images: int | None) -> DatasetSettings:
    """The run's dataset with every fine class as its own class and the oracle's own image cap
    (the split is the training one's, whatever the run visualizes)."""
    return replace(dataset, label_map=None, split=None, max_images=max_images)


def train_oracle(
    dataset: DatasetSettings,
    settings: OracleSettings,
    seed: int,
    device: torch.device,
    checkpoint_path: str | Path,
    metrics_path: str | Path,
) -> dict[str, Any]:
    """Train the oracle on the fine classes, test it, write checkpoint and metrics JSON.

    `seed` is the run's seed; the oracle uses `seed + settings.seed_offset`. Raises
    FacetvizError, and writes nothing, when its test accuracy is below `settings.min_accuracy`.
    """
    oracle_seed = seed + settings.seed_offset
    generator = seed_everything(oracle_seed)
    fine = oracle_dataset(dataset, settings.max_images)
    fit_split, eval_split = fine.training_splits
    fit_set = open_dataset(fine, fit_split, oracle_seed)
    eval_set = open_dataset(fine, eval_split, oracle_seed)
    fine_names = list(fit_set.label_space.fine_names)
    module = OracleNet(fit_set.image_shape[0], len(fine_names)).to(device)
    log.info(
        "training the oracle on %d images (%s split), %d fine classes, %d epochs, seed %d, "
        "device %s", len(fit_set), fit_split, len(fine_names), settings.epochs, oracle_seed, device,
    )  # fmt: skip
    training = replace(TRAIN, epochs=settings.epochs)
    metrics = fit_and_test(
        module, module.normalize, fit_set, (eval_split, eval_set), training, fine.workers,
        device, generator,
    )  # fmt: skip
    metrics.update(classes=fine_names, seed=oracle_seed, min_accuracy=settings.min_accuracy)
    log.info(
        "oracle %s accuracy: %.4f on %d images (%.0f s)",
        eval_split,
        metrics["test_accuracy"],
        metrics["test_images"],
        metrics["seconds"],
    )
    _check_accuracy(metrics, settings.min_accuracy, eval_split)
    meta = {"kind": "oracle", "classes": fine_names, "input_shape": list(fit_set.image_shape)}
    save_checkpoint(
        checkpoint_path, module.cpu(), {**meta, "width": module.width, "seed": oracle_seed}
    )
    write_json(metrics_path, metrics)
    return metrics


def _check_accuracy(metrics: dict[str, Any], min_accuracy: float, split: str) -> None:
    accuracy = metrics["test_accuracy"]
    if accuracy >= min_accuracy:
        return
    worst = sorted(metrics["per_fine_class_accuracy"].items(), key=lambda item: item[1])[:3]
    raise FacetvizError(
        f"the oracle reached {accuracy:.4f} {split} accuracy, below "
        f"oracle.min_accuracy = {min_accuracy} (weakest classes: "
        f"{', '.join(f'{name} {acc:.3f}' for name, acc in worst)}). A weak oracle would "
        "make the synthesis metrics meaningless: raise oracle.epochs (and check that "
        "oracle.max_images is null), or lower oracle.min_accuracy knowingly."
    )


def load_oracle(path: str | Path) -> tuple[OracleNet, list[str]]:
    """The trained oracle in eval mode, on the CPU, and its fine class names (output order)."""
    path = Path(path)
    if not path.exists():
        raise FacetvizError(f"{path} does not exist: run the 'oracle' stage first.")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # not a torch file, truncated, or a pickle that needs code
        raise FacetvizError(
            f"{path} cannot be read ({type(err).__name__}: {str(err)[:300]}): delete it and "
            "rerun the 'oracle' stage."
        ) from err
    try:
        meta = data["meta"]
        if meta.get("kind") != "oracle":
            raise KeyError("meta.kind is not 'oracle'")
        classes = list(meta["classes"])
        module = OracleNet(meta["input_shape"][0], len(classes), meta["width"])
        module.load_state_dict(data["state_dict"])
    except (KeyError, TypeError, RuntimeError, IndexError, AttributeError) as err:
        raise FacetvizError(
            f"{path} is not an oracle checkpoint of this version ({type(err).__name__}: "
            f"{str(err)[:300]}): delete it and rerun the 'oracle' stage."
        ) from err
    module.input_size = tuple(meta["input_shape"][1:])
    module.eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module, classes


@torch.no_grad()
def apply_to_pixels(
    module: OracleNet,
    images: torch.Tensor,
    function: Callable[[torch.Tensor], torch.Tensor],
    out_features: int,
    batch_size: int = 512,
) -> torch.Tensor:
    """`function` [B, out_features] of images [B, C, H, W] with pixels in [0, 1], in eval mode.

    Images are normalized as in training; ones of another size are resized bilinearly to the
    oracle's input (a channel-count mismatch is an error). Runs batch by batch where the module's
    weights are and returns on the CPU. `classify` and the plausibility features both go through
    here, so that they see exactly the same input.
    """
    if images.ndim != 4:
        raise FacetvizError(f"oracle: images must be [B, C, H, W], got shape {list(images.shape)}")
    channels = module.mean.shape[0]
    if images.shape[1] != channels:
        raise FacetvizError(
            f"oracle: images have {images.shape[1]} channels, the oracle takes {channels}"
        )
    was_training = module.training
    module.eval()
    device = module.mean.device
    size = module.input_size
    outputs = []
    for batch in images.split(batch_size):
        batch = batch.to(device=device, dtype=torch.float32)
        if size is not None and tuple(batch.shape[-2:]) != tuple(size):
            batch = F.interpolate(batch, size=tuple(size), mode="bilinear", align_corners=False)
        outputs.append(function(module.normalize(batch)).cpu())
    module.train(was_training)
    if not outputs:
        return torch.empty(0, out_features)
    return torch.cat(outputs)


def classify(module: OracleNet, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Fine-class probabilities [B, classes] of images [B, C, H, W] with pixels in [0, 1]
    (prepared as `apply_to_pixels` says)."""
    classes = module.head[-1].out_features
    return apply_to_pixels(module, images, lambda x: module(x).softmax(1), classes, batch_size)
