"""A TopK sparse autoencoder (Gao et al. 2024) on a layer's stored activations.

Inputs are normalized first: x' = (x - mean) / scale, with `mean` the per-unit mean of the
training rows and `scale` one scalar that makes E|x'|^2 = units, so that the learning rate and
the loss mean the same for every layer whatever its activation scale. Then

    pre = W_enc (x' - b_dec) + b_enc        [width]
    z   = ReLU(TopK(pre, k))                 keep the k largest, zero the rest
    x^' = W_dec^T z + b_dec

with unit-norm decoder rows (renormalized after every step, so that sparsity cannot be bought
by shrinking codes and growing decoder rows) and the encoder initialized to the decoder. The
loss is the MSE on x'. Training uses a seeded 90 % of the rows; the rest measure it.

Each latent's pre-activation is an affine function of the RAW unit vector (`latent_readout`),
which is what lets a latent be ranked over images or synthesized like a neuron.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from facetviz.activations.extract import Activations
from facetviz.core.errors import FacetvizError
from facetviz.core.io import atomic_path, write_json
from facetviz.core.progress import log
from facetviz.core.records import read_record, write_record

STAGE = "sae"
TRAIN_SHARE = 0.9
CURVE_POINTS = 200
TOP_LATENTS = 64
AUX_WEIGHT = 1 / 32  # Gao et al. 2024's weight of the AuxK loss


@dataclass(frozen=True)
class SaeSettings:
    """What the SAE is and how long it trains. No defaults here: the config schema's `sae`
    entries hold them (width 1024, k 16, batch_size 256 and lr 1e-3 suit most layers)."""

    width: int  # latents
    k: int  # latents kept per image
    steps: int  # Adam steps
    batch_size: int  # rows per step (clipped to the training rows)
    lr: float  # Adam learning rate


@dataclass(frozen=True)
class SaeRecord:
    """A trained SAE (`sae/<layer>.h5`): its weights, its normalization and how it trained."""

    layer: str
    spatial: str
    k: int  # latents kept per row: encode needs it, so the record carries it
    w_enc: np.ndarray  # [width, units]
    b_enc: np.ndarray  # [width]
    w_dec: np.ndarray  # [width, units], unit-norm rows
    b_dec: np.ndarray  # [units], in normalized space
    mean: np.ndarray  # [units] per-unit mean of the training rows
    scale: float  # RMS of (x - mean) per unit
    firing_rate: np.ndarray  # [width] share of held-out rows where the latent is nonzero
    curve: np.ndarray  # [steps] training loss per step

    @property
    def width(self) -> int:
        return len(self.b_enc)

    def normalize(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float32) - self.mean) / np.float32(self.scale)

    def pre_activation(self, x: np.ndarray) -> np.ndarray:
        """[N, width] every latent's pre-activation (before TopK) on raw rows `x` [N, units]."""
        return (self.normalize(x) - self.b_dec) @ self.w_enc.T + self.b_enc

    def encode(self, x: np.ndarray) -> np.ndarray:
        """[N, width] the codes: the k largest pre-activations of each row, then ReLU."""
        return top_k_relu(self.pre_activation(x), self.k)

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        """[N, units] the rows `x` through the SAE, back in raw unit space."""
        normalized = self.encode(x) @ self.w_dec + self.b_dec
        return normalized * np.float32(self.scale) + self.mean

    def latent_readout(self, latent: int) -> tuple[np.ndarray, float]:
        """(weights [units], bias): latent's pre-activation = weights . x + bias on raw `x`.

        pre = w . ((x - mean) / scale - b_dec) + b
            = (w / scale) . x - w . (mean / scale + b_dec) + b
        """
        if not 0 <= latent < self.width:
            raise FacetvizError(
                f"latent {latent} does not exist: the SAE of {self.layer!r} has latents "
                f"0 to {self.width - 1}"
            )
        w = self.w_enc[latent].astype(np.float64)
        offset = self.mean.astype(np.float64) / self.scale + self.b_dec
        bias = float(self.b_enc[latent]) - float(w @ offset)
        return (w / self.scale).astype(np.float32), bias

    def by_firing(self) -> np.ndarray:
        """Latent indices, most often firing first (ties in index order)."""
        return np.argsort(-self.firing_rate, kind="stable")

    def write(self, path: str | Path) -> None:
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
            write_record(handle, self)

    @classmethod
    def read(cls, path: str | Path) -> SaeRecord:
        return read_record(cls, path, STAGE)


def top_k_relu(pre: np.ndarray, k: int) -> np.ndarray:
    """Keep each row's k largest entries (then ReLU), zero the rest."""
    codes = np.zeros_like(pre)
    keep = np.argpartition(pre, pre.shape[1] - k, axis=1)[:, pre.shape[1] - k :]
    rows = np.arange(len(pre))[:, None]
    codes[rows, keep] = np.maximum(pre[rows, keep], 0)
    return codes


class _TopKSae(torch.nn.Module):
    """The SAE in normalized space; W_dec rows start as random unit vectors, W_enc equal to it."""

    def __init__(self, units: int, width: int, k: int, generator: torch.Generator) -> None:
        super().__init__()
        w_dec = torch.randn(width, units, generator=generator)
        w_dec /= w_dec.norm(dim=1, keepdim=True)
        self.k = k
        self.w_dec = torch.nn.Parameter(w_dec)
        self.w_enc = torch.nn.Parameter(w_dec.clone())
        self.b_enc = torch.nn.Parameter(torch.zeros(width))
        self.b_dec = torch.nn.Parameter(torch.zeros(units))  # zero: the data is centred

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(reconstruction, pre-activations, the latents that fired on some row)."""
        pre = (x - self.b_dec) @ self.w_enc.T + self.b_enc
        values, latents = pre.topk(self.k, dim=1)
        codes = torch.zeros_like(pre).scatter(1, latents, values.relu())
        return codes @ self.w_dec + self.b_dec, pre, latents[values > 0].unique()

    def aux_loss(self, pre: torch.Tensor, dead: torch.Tensor, residual: torch.Tensor):
        """Gao et al.'s AuxK: the dead latents' top-k_aux reconstruct what the live ones
        missed, so that a dead latent gets a gradient towards the data again."""
        k_aux = min(int(dead.sum()), max(1, residual.shape[1] // 2))  # Gao et al.: units / 2
        values, latents = pre.masked_fill(~dead, float("-inf")).topk(k_aux, dim=1)
        codes = torch.zeros_like(pre).scatter(1, latents, values.relu())
        return torch.nn.functional.mse_loss(codes @ self.w_dec, residual)

    @torch.no_grad()
    def renormalize(self) -> None:
        self.w_dec /= self.w_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _check(values: np.ndarray, settings: SaeSettings) -> None:
    if values.ndim != 2 or len(values) < 2:
        raise FacetvizError(f"an SAE needs activations [N >= 2, units]; got {values.shape}")
    if not 1 <= settings.k <= settings.width:
        raise FacetvizError(
            f"sae.k must be between 1 and sae.width ({settings.width}); it is {settings.k}"
        )
    if min(settings.steps, settings.batch_size) < 1 or not settings.lr > 0:
        raise FacetvizError(f"sae.steps, batch_size and lr must be positive; got {settings}")
    if not np.isfinite(values).all():
        raise FacetvizError("the SAE's activations hold NaN or infinite values")


def split_rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, held-out rows): a seeded TRAIN_SHARE of `n` rows and the rest (>= 1)."""
    order = np.random.default_rng(seed).permutation(n)
    held = min(max(1, round((1 - TRAIN_SHARE) * n)), n - 1)
    return np.sort(order[held:]), np.sort(order[:held])


def normalization(train: np.ndarray) -> tuple[np.ndarray, float]:
    """(mean [units], scale) with E|(x - mean) / scale|^2 = units over the training rows."""
    mean = train.mean(axis=0, dtype=np.float64)
    scale = float(np.sqrt(np.mean((train - mean) ** 2)))
    if scale == 0.0:
        raise FacetvizError("every training row of the SAE is the same: nothing to encode")
    return mean.astype(np.float32), scale


def _batches(n: int, size: int, rng: np.random.Generator):
    """Endless batches of row indices: seeded epochs, each a fresh permutation."""
    size = min(size, n)
    while True:
        order = rng.permutation(n)
        for start in range(0, n - size + 1, size):  # drop the ragged tail: equal-sized steps
            yield order[start : start + size]


def _fit(
    x: torch.Tensor, settings: SaeSettings, seed: int, label: str
) -> tuple[_TopKSae, np.ndarray]:
    """Train on normalized rows `x`; (model, loss per step)."""
    generator = torch.Generator().manual_seed(seed)
    model = _TopKSae(x.shape[1], settings.width, settings.k, generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    batches = _batches(len(x), settings.batch_size, np.random.default_rng(seed))
    curve = np.zeros(settings.steps, dtype=np.float32)
    every = max(1, settings.steps // 10)
    idle = torch.zeros(settings.width, dtype=torch.long)  # steps since each latent fired
    dead_after = max(1, len(x) // settings.batch_size)  # a whole epoch without firing
    for step in range(settings.steps):
        batch = x[torch.from_numpy(next(batches))]
        reconstruction, pre, fired = model(batch)
        loss = torch.nn.functional.mse_loss(reconstruction, batch)
        curve[step] = loss.item()
        dead = idle >= dead_after
        if dead.any():
            residual = (batch - reconstruction).detach()
            loss = loss + AUX_WEIGHT * model.aux_loss(pre, dead, residual)
        idle += 1
        idle[fired] = 0
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        model.renormalize()
        if (step + 1) % every == 0 or step + 1 == settings.steps:
            log.info("%s: step %d/%d, loss %.4f", label, step + 1, settings.steps, curve[step])
    return model, curve


def train_sae(
    values: np.ndarray, settings: SaeSettings, seed: int, layer: str, spatial: str
) -> tuple[SaeRecord, dict[str, Any]]:
    """Train a TopK SAE on `values` [N, units]; (record, held-out metrics)."""
    values = np.asarray(values, dtype=np.float32)
    _check(values, settings)
    start = time.perf_counter()
    train, held = split_rows(len(values), seed)
    mean, scale = normalization(values[train])
    x = torch.from_numpy((values[train] - mean) / np.float32(scale))
    model, curve = _fit(x, settings, seed, f"sae {layer}")
    weights = {name: p.detach().numpy().copy() for name, p in model.named_parameters()}
    record = _record(layer, spatial, settings.k, weights, mean, scale, values[held], curve)
    metrics = evaluate(record, values[held])
    metrics.update(
        final_loss=float(curve[-1]),
        seconds=round(time.perf_counter() - start, 3),
        steps=settings.steps,
        width=settings.width,
        k=settings.k,
        images=len(values),
        train_images=len(train),
        held_out_images=len(held),
    )
    return record, metrics


def _record(
    layer: str,
    spatial: str,
    k: int,
    weights: dict[str, np.ndarray],
    mean: np.ndarray,
    scale: float,
    held: np.ndarray,
    curve: np.ndarray,
) -> SaeRecord:
    """The record of trained weights, with firing rates measured on the held-out rows."""
    record = SaeRecord(
        layer=layer, spatial=spatial, k=k, mean=mean, scale=scale, curve=curve,
        firing_rate=np.zeros(len(weights["b_enc"]), dtype=np.float32), **weights,
    )  # fmt: skip
    firing = (record.encode(held) > 0).mean(axis=0).astype(np.float32)
    return replace(record, firing_rate=firing)


def evaluate(record: SaeRecord, rows: np.ndarray) -> dict[str, Any]:
    """FVU in raw space, mean L0, dead and alive latents (firing rates of the record) on `rows`.

    FVU's reference is the record's (training) mean, not the rows' own: it stays defined for a
    single held-out row, and over many rows the two differ by the sampling error of a mean.
    """
    rows = rows.astype(np.float64)
    codes = record.encode(rows)
    error = np.sum((rows - record.reconstruct(rows)) ** 2)
    variance = np.sum((rows - record.mean) ** 2)
    dead = int(np.sum(record.firing_rate == 0))
    return {
        "fvu": float(error / max(variance, np.finfo(np.float64).tiny)),  # no NaN in the JSON
        "l0": float((codes > 0).sum(axis=1).mean()),
        "dead_latents": dead,
        "alive_latents": record.width - dead,
    }


def sae_stage(
    activations_path: str | Path,
    layer: str,
    spatial: str,
    settings: SaeSettings,
    seed: int,
    out_h5: str | Path,
    out_json: str | Path,
    threads: int = 1,
) -> dict[str, Any]:
    """Train the SAE of `layer` on the activations file; write the record and its metrics."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)  # parallel jobs must not oversubscribe the cores
    try:
        with Activations(activations_path) as activations:
            values = activations.layer_values(layer, spatial)
        record, metrics = train_sae(values, settings, seed, layer, spatial)
    finally:
        torch.set_num_threads(previous)
    record.write(out_h5)
    steps = np.unique(np.linspace(0, len(record.curve) - 1, CURVE_POINTS).round().astype(int))
    top = record.by_firing()[:TOP_LATENTS]
    summary = {
        "layer": layer,
        "spatial": spatial,
        "seed": seed,
        "settings": asdict(settings),
        **metrics,
        "curve": {"step": steps.tolist(), "loss": record.curve[steps].tolist()},
        "by_firing": [{"latent": int(j), "firing_rate": float(record.firing_rate[j])} for j in top],
    }
    write_json(out_json, summary)
    log.info(
        "sae %s: FVU %.3f, L0 %.1f, %d dead of %d latents, %.0f s",
        layer, metrics["fvu"], metrics["l0"], metrics["dead_latents"], settings.width,
        metrics["seconds"],
    )  # fmt: skip
    return summary
