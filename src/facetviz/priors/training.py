"""Training the learned priors (rule `generator`, rule `code_prior`), and loading them safely.

G inverts the visualized network E (frozen) at the code layer: for a training image x with code
h = E(x), it learns G(h) ≈ x with the losses of the DGN-AM generators (Dosovitskiy & Brox 2016,
"DeePSiM"): a pixel loss, a feature loss in a conv layer of E (the comparator), an adversarial
loss with a small discriminator conditioned on h (weight 0 turns it off), and the code term
‖E(G(h)) − h‖² that PPGN's joint prior relies on. The DAE learns R(h + noise) ≈ h.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facetviz.core.errors import FacetvizError
from facetviz.core.progress import Progress, log
from facetviz.core.settings import PriorSettings
from facetviz.data.datasets import FacetDataset
from facetviz.model.networks import Network, capture
from facetviz.priors.networks import CodeDAE, Generator, UpconvGenerator, build


@torch.no_grad()
def encode(network: Network, images: torch.Tensor, layer: str, batch_size: int = 512):
    """E(x): the flattened code of images at `layer` [n, D]."""
    return encode_shaped(network, images, layer, batch_size)[0]


def encode_shaped(
    network: Network, images: torch.Tensor, layer: str, batch_size: int = 512
) -> tuple[torch.Tensor, tuple[int, ...]]:
    """E(x) flattened [n, D], and the shape of one image's code before flattening."""
    parts = []
    for batch in images.split(batch_size):
        with capture(network.module, [layer]) as out:
            network(batch)
        parts.append(out[layer].flatten(1).float())
    return torch.cat(parts), tuple(out[layer].shape[1:])


def training_images(dataset: FacetDataset, count: int | None, seed: int) -> torch.Tensor:
    """A seeded subset of the training split's pixels (all of them when `count` is None)."""
    order = np.random.default_rng(seed).permutation(len(dataset))
    return dataset.pixels(np.sort(order[:count]) if count else np.arange(len(dataset)))


class Discriminator(nn.Module):
    """Real or generated, given the code (as DeePSiM's): two strided convs and a linear head."""

    def __init__(self, channels: int, code_dim: int, width: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),
        )  # fmt: skip
        self.head = nn.Linear(2 * width * 16 + code_dim, 1)

    def forward(self, images: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.body(images * 2 - 1), codes], 1)).squeeze(1)


@dataclass(frozen=True)
class Budget:
    """How many updates a prior trains for, and the config key that set the number."""

    updates: int
    key: str  # priors.updates, or priors.epochs where set (and the same for the DAE)
    passes: float  # what it comes to in passes over the training images

    def __str__(self) -> str:
        return f"{self.updates} updates ({self.key}; {self.passes:.3g} passes over the images)"


def budget(settings: PriorSettings, count: int, dae: bool = False) -> Budget:
    """The updates of the generator (of the DAE with `dae`) on `count` training images: a fixed
    number (priors.updates), so that a small data set gets as many as a large one and as good a
    prior, unless priors.epochs is set, which keeps its older meaning of passes over them."""
    prefix = "priors.dae_" if dae else "priors."
    epochs = settings.dae_epochs if dae else settings.epochs
    per_pass = math.ceil(count / settings.batch_size)
    if epochs is None:
        updates = settings.dae_updates if dae else settings.updates
        return Budget(updates, f"{prefix}updates", updates / per_pass)
    return Budget(max(1, round(epochs * per_pass)), f"{prefix}epochs", epochs)


def _batches(count: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    while True:
        yield from torch.randperm(count, generator=generator).split(batch_size)


def _generator_loss(
    G: Generator, network: Network, x: torch.Tensor, h: torch.Tensor,
    settings: PriorSettings, code_layer: str, D: Discriminator | None,
) -> torch.Tensor:  # fmt: skip
    fake = G(h)
    pixel = F.l1_loss if settings.pixel_loss == "l1" else F.mse_loss
    loss = settings.pixel_weight * pixel(fake, x)
    weighted = (
        (settings.feature_layer, settings.feature_weight),
        (code_layer, settings.code_weight),
    )
    layers = [name for name, weight in weighted if name and weight > 0]
    if layers:
        with capture(network.module, layers) as out:
            network(fake)
        if settings.feature_weight > 0:
            with torch.no_grad(), capture(network.module, [settings.feature_layer]) as real:
                network(x)
            feature = settings.feature_layer
            loss = loss + settings.feature_weight * F.mse_loss(out[feature], real[feature])
        if settings.code_weight > 0:
            loss = loss + settings.code_weight * F.mse_loss(out[code_layer].flatten(1), h)
    if D is not None:
        judged = D(fake, h / G.scale)
        adversarial = F.binary_cross_entropy_with_logits(judged, torch.ones_like(judged))
        loss = loss + settings.adversarial_weight * adversarial
    return loss


def _discriminator_step(D, optimizer, G, x, h) -> None:
    with torch.no_grad():
        fake = G(h)
    codes = h / G.scale
    real_logits, fake_logits = D(x, codes), D(fake, codes)
    loss = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    loss = loss + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def fit_generator(
    network: Network, images: torch.Tensor, code_layer: str, settings: PriorSettings, seed: int
) -> Generator:
    """Train G on `images` (pixels in [0, 1]) and their codes at `code_layer`."""
    torch.manual_seed(seed)
    codes, code_shape = encode_shaped(network, images, code_layer)
    G = Generator(codes.shape[1], tuple(images.shape[1:]), settings.width, code_shape)
    G.set_code_statistics(codes)
    D = Discriminator(images.shape[1], codes.shape[1]) if settings.adversarial_weight > 0 else None
    optimizer = torch.optim.Adam(G.parameters(), lr=settings.lr)
    optimizer_d = (
        torch.optim.Adam(D.parameters(), lr=settings.lr, betas=(0.5, 0.999)) if D else None
    )
    steps = budget(settings, len(images)).updates
    # cosine decay to a tenth of the rate: most of the gain comes early, the end settles
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.1 + 0.45 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )
    progress = Progress("generator", steps, "steps")
    batches = _batches(len(images), settings.batch_size, torch.Generator().manual_seed(seed))
    for _ in range(steps):
        index = next(batches)
        x, h = images[index], codes[index]
        loss = _generator_loss(G, network, x, h, settings, code_layer, D)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if D is not None:
            _discriminator_step(D, optimizer_d, G, x, h)
        progress.update(1)
    return G.eval()


def fit_dae(codes: torch.Tensor, settings: PriorSettings, seed: int) -> CodeDAE:
    """Train R to undo N(0, (sigma · std)²) noise on the training codes."""
    torch.manual_seed(seed)
    dae = CodeDAE(codes.shape[1], settings.dae_hidden, settings.dae_sigma)
    dae.std.copy_(codes.std(0).clamp_min(1e-6))
    optimizer = torch.optim.Adam(dae.parameters(), lr=1e-3)
    steps = budget(settings, len(codes), dae=True).updates
    generator = torch.Generator().manual_seed(seed)
    batches = _batches(len(codes), settings.batch_size, generator)
    for _ in range(steps):
        h = codes[next(batches)]
        noisy = h + settings.dae_sigma * dae.std * torch.randn(h.shape, generator=generator)
        loss = F.mse_loss(dae(noisy) / dae.std, h / dae.std)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return dae.eval()


def save_prior(path: str | Path, module: nn.Module, extra: dict[str, Any]) -> None:
    from facetviz.model.networks import save_checkpoint

    save_checkpoint(path, module, {**module.meta(), **extra})


def load_prior(path: str | Path, kind: str, network: Network, input_shape=None) -> nn.Module:
    """A trained prior (`kind` generator or dae), refused unless it fits the visualized network:
    its code layer exists with the same size, and a generator draws `input_shape` images. A
    prior of another run or model would draw nonsense."""
    path = Path(path)
    stage = "generator" if kind == "generator" else "code_prior"
    if not path.exists():
        raise FacetvizError(f"{path} does not exist: run the '{stage}' stage first.")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        meta = data["meta"]
        module = build(meta)
        module.load_state_dict(data["state_dict"])
    except Exception as err:  # not a torch file, a pickle that needs code, another layout
        raise FacetvizError(
            f"{path} is not a {kind} checkpoint of this version ({type(err).__name__}: "
            f"{str(err)[:300]}): delete it and rerun the '{stage}' stage."
        ) from err
    _check_fits(path, meta, kind, network, input_shape)
    module.code_layer = meta["code_layer"]
    module.eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module


def _layer_size(network: Network, layer: str, input_shape) -> int:
    """Units of `layer` of the network for one image (a clear error for an unknown layer)."""
    from facetviz.model.networks import resolve_layer

    resolve_layer(network.module, layer, key="the prior's code layer (priors.code_layer)")
    device = next(network.module.parameters()).device
    with torch.no_grad(), capture(network.module, [layer]) as out:
        network(torch.zeros(1, *input_shape, device=device))
    return int(out[layer][0].numel())


def _check_fits(path: Path, meta, kind: str, network: Network, input_shape) -> None:
    rerun = f"rerun the '{'generator' if kind == 'generator' else 'code_prior'}' stage"
    if meta.get("kind") != kind:
        raise FacetvizError(f"{path} holds a {meta.get('kind')}, not a {kind}: {rerun}")
    layer = meta.get("code_layer")
    size = _layer_size(network, layer, input_shape or meta["input_shape"])
    if size != meta["code_dim"]:
        raise FacetvizError(
            f"{path} inverts {meta['code_dim']} units of layer {layer!r}, but the visualized "
            f"network's {layer!r} has {size}: it was made for another model or code layer "
            f"(priors.code_layer); {rerun}"
        )
    if (
        kind == "generator"
        and input_shape is not None
        and tuple(meta["input_shape"]) != tuple(input_shape)
    ):  # (a code prior draws codes, not images)
        raise FacetvizError(
            f"{path} draws {tuple(meta['input_shape'])} images but the model takes "
            f"{tuple(input_shape)}: {rerun}"
        )


def timed(function, *args, **kwargs) -> tuple[Any, float]:
    start = time.perf_counter()
    result = function(*args, **kwargs)
    log.info("%s took %.1f s", function.__name__, time.perf_counter() - start)
    return result, time.perf_counter() - start


def train_generator(
    network: Network,
    fit_set: FacetDataset,
    code_layer: str,
    settings: PriorSettings,
    seed: int,
    checkpoint: str | Path,
    fit_path: str | Path,
) -> dict[str, Any]:
    """Train G on the fit split; write its checkpoint, and how it was trained (with the time,
    which the checkpoint leaves out to stay byte-identical run to run) as a JSON file."""
    from facetviz.core.io import write_json

    images = training_images(fit_set, settings.images, seed)
    steps = budget(settings, len(images))
    log.info("generator: %d training images, codes of %s, %s", len(images), code_layer, steps)
    G, seconds = timed(fit_generator, network, images, code_layer, settings, seed)
    fit = {
        "code_layer": code_layer,
        "architecture": "upconv" if isinstance(G.body, UpconvGenerator) else "small",
        "train_images": len(images),
        "updates": steps.updates,
        "updates_from": steps.key,
        "passes": round(steps.passes, 3),
        "seconds": round(seconds, 1),
    }
    save_prior(checkpoint, G, {"code_layer": code_layer})
    write_json(fit_path, fit)
    return fit


def train_code_prior(
    network: Network,
    fit_set: FacetDataset,
    code_layer: str,
    settings: PriorSettings,
    seed: int,
    checkpoint: str | Path,
) -> None:
    """Train the DAE on the codes of the generator's training images."""
    codes = encode(network, training_images(fit_set, settings.images, seed), code_layer)
    log.info("code prior: %d training codes of %s, %s", len(codes), code_layer,
             budget(settings, len(codes), dae=True))  # fmt: skip
    dae, _seconds = timed(fit_dae, codes, settings, seed)
    save_prior(checkpoint, dae, {"code_layer": code_layer})
