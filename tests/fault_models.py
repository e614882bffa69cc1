"""A small custom model that misbehaves on demand, and the ImageFolder run config that uses it,
for the bad-input and fault tests (a helper module, not a test file).

`folder_config` names it as `model: {kind: custom, factory: "fault_models:build", weights:
random, kwargs: {...}}`; the tests put tests/ on PYTHONPATH (conftest's
fault_models_importable), which snakemake's jobs inherit. Random weights mean no training job,
so each real run is one or two short jobs.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn

CODE_LAYER = "code.3"  # the 16-d code (after ReLU and Scale): the facet layer of the tests
LOGITS = "head"
CLASSES = {"a": 6, "b": 6, "c": 6}  # for make_image_folder: "a" is red, "b" green, "c" blue
FOLDER_RUN = "folder"


def folder_config(root: Path, run: str = FOLDER_RUN, **model_kwargs) -> dict:
    """A small ImageFolder run of FaultyCNN(**model_kwargs) with random weights."""
    return {
        "run": run,
        "device": "cpu",
        "dataset": {"kind": "image_folder", "root": str(root), "image_size": 32},
        "model": {
            "kind": "custom",
            "factory": "fault_models:build",
            "weights": "random",
            "kwargs": model_kwargs,
        },
        "activations": {"batch_size": 4},
        "facets": {
            "layer": CODE_LAYER,
            **{"k": 2, "m": 2, "pca_dims": 4, "perplexity": 2, "min_size": 1},
        },
        "neurons": [
            {"name": "logit-a", "layer": LOGITS, "unit": 0, "select": "label", "class": "a"},
            {"name": "code-3", "layer": CODE_LAYER, "unit": 3},
        ],
        "synthesis": {"methods": ["mfv"], "steps_scale": 0.01},
        "figures": {"examples": 1},
    }


class Scale(nn.Module):
    """Multiplies by a constant: `overflow` scales the codes past float16's range (65504)."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


class FaultyCNN(nn.Module):
    """A tiny CNN that can misbehave on purpose.

    fault: "none"; "nan", NaN logits for the images whose first channel is bright (the first
    class of tests' make_image_folder); "overflow", codes of about 1e9. `sleep` seconds per
    batch, not on the meta device (the parse-time checks), make a job last long enough to be
    cancelled mid-run.
    """

    def __init__(
        self, channels: int = 3, classes: int = 3, fault: str = "none", sleep: float = 0.0
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4)
        )
        scale = 1e9 if fault == "overflow" else 1.0
        self.code = nn.Sequential(nn.Flatten(), nn.Linear(8 * 16, 16), nn.ReLU(), Scale(scale))
        self.head = nn.Linear(16, classes)
        self.fault, self.sleep = fault, sleep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.sleep and x.device.type != "meta":
            time.sleep(self.sleep)
        code = self.code(self.features(x))
        if self.fault == "nan":
            bright = x[:, 0].mean(dim=(1, 2)) > x[:, 1:].mean(dim=(1, 2, 3))
            code = torch.where(bright[:, None], torch.full_like(code, float("nan")), code)
        return self.head(code)


def build(**kwargs) -> nn.Module:
    return FaultyCNN(**kwargs)


class Payload:
    """Unpickling this would call a function: a weights file built with it must be refused."""

    def __reduce__(self):
        return (print, ("a weights file ran code while loading",))
