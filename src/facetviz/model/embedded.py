"""The embedded models: a small CNN (the default) and a small vision transformer, both for
28 px images, trained by the run on its dataset and label map (model/train.py)."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer

from facetviz.core.errors import ConfigError
from facetviz.core.settings import ModelSettings

EMBEDDED_ARCHS = ("cnn", "vit")
VIT_IMAGE_SIZE, VIT_PATCH, VIT_DEPTH, VIT_HEADS = 28, 4, 3, 4


class EmbeddedCNN(nn.Module):
    """A small CNN for 28 px images; `classifier.3` (after the 256-unit fc) plays fc7's role."""

    def __init__(self, in_channels: int = 1, num_classes: int = 4, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(),  # 0, 1
            nn.MaxPool2d(2),  # 2
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),  # 3, 4
            nn.MaxPool2d(2),  # 5
            nn.Conv2d(2 * width, 4 * width, 3, padding=1),
            nn.ReLU(),  # 6, 7
        )
        self.pool = nn.AdaptiveAvgPool2d(7)  # any input size gives the same classifier
        self.classifier = nn.Sequential(
            nn.Flatten(),  # 0
            nn.Dropout(0.3),  # 1
            nn.Linear(4 * width * 49, 256),
            nn.ReLU(),  # 2, 3
            nn.Dropout(0.3),  # 4
            nn.Linear(256, num_classes),  # 5: class logits
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


class EmbeddedViT(VisionTransformer):
    """torchvision's VisionTransformer at 28 px: 4 px patches (a 7 x 7 grid, as conv3's map,
    with a middle patch), a class token, 3 encoder blocks of width 4 x `width` (64 by default)
    with 4 heads and an MLP twice as wide. Sized to train on 2 CPU cores in about the CNN's
    time (docs/benchmarks.md). Layers: `encoder.layers.encoder_layer_<i>` (a block's tokens),
    `....mlp.1` (its MLP's hidden units after GELU, Ghiasi et al. 2022's units), `heads.head`
    (the class logits)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 4, width: int = 16) -> None:
        hidden = 4 * width
        super().__init__(
            image_size=VIT_IMAGE_SIZE,
            patch_size=VIT_PATCH,
            num_layers=VIT_DEPTH,
            num_heads=VIT_HEADS,
            hidden_dim=hidden,
            mlp_dim=2 * hidden,
            num_classes=num_classes,
        )
        # torchvision's patch embedding takes 3 channels; ours takes the dataset's
        self.conv_proj = nn.Conv2d(in_channels, hidden, VIT_PATCH, VIT_PATCH)
        fan_in = in_channels * VIT_PATCH**2
        nn.init.trunc_normal_(self.conv_proj.weight, std=(1.0 / fan_in) ** 0.5)
        nn.init.zeros_(self.conv_proj.bias)


def embedded_architecture(settings: ModelSettings, in_channels: int, num_classes: int) -> nn.Module:
    """`model.arch` of the embedded kind: `cnn` (also null, the default) or `vit`."""
    arch = settings.arch or "cnn"
    if arch == "cnn":
        return EmbeddedCNN(in_channels, num_classes, settings.width)
    if arch == "vit":
        return EmbeddedViT(in_channels, num_classes, settings.width)
    raise ConfigError(
        f"model.arch: {arch!r} is not an embedded architecture; the embedded kind has "
        f"{', '.join(EMBEDDED_ARCHS)} (a torchvision architecture needs model.kind: torchvision)"
    )
