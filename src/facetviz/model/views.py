"""Views of a layer's output: how a token layer or a channels-last map is read as the fc layer
or NCHW map that the rest of facetviz knows.

A layer reference may carry a view after `@`, e.g. `encoder.layers.encoder_layer_2.mlp.1@mean`:
`capture` hooks the module before the `@` and stores the view of its output under the whole
name, so the activations file, the facets, the objectives and the priors read a view exactly as
they read any other layer. The workflow adds views at parse time (`resolve_layer_view`), from the
config's `tokens`, `patch` and `facets.tokens`; a user may also name one directly.

Token layers, `[B, T, D]` (a vision transformer's blocks and their MLPs), have D units. Their
first T - s*s tokens are prefix tokens (the class token first, then any registers), the rest an
s x s grid of patches, s = isqrt(T). Views of them:
  cls           the class token (the first)                         -> [B, D]
  mean, max     over the patch tokens, prefix tokens excluded       -> [B, D]
  center        the middle patch (the paper's centre rule)          -> [B, D]
  patch-R-C     the patch at row R, column C                        -> [B, D]
  grid          the patch tokens as a map                           -> [B, D, s, s]
Channels-last maps, `[B, H, W, C]` (e.g. torchvision swin_t's stages), have the view `nchw`:
the same map as `[B, C, H, W]`, read by the neuron's spatial rule like any conv map.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch
from torch import nn

from facetviz.core.errors import ConfigError

SEPARATOR = "@"
TOKEN_RULES = ("cls", "mean", "max", "center")  # a neuron's `tokens`
FACET_TOKENS = ("cls", "mean", "all")  # `facets.tokens`: `all` is the whole output, flattened
PATCH = re.compile(r"patch-(\d+)-(\d+)")


def split_view(name: str) -> tuple[str, str | None]:
    """(module path, view or None) of a layer reference."""
    layer, separator, view = name.partition(SEPARATOR)
    return layer, (view if separator else None)


def with_view(layer: str, view: str | None) -> str:
    return layer if view is None else f"{layer}{SEPARATOR}{view}"


def grid_side(tokens: int) -> int:
    """The side of the patch grid among `tokens` tokens (the largest square that fits)."""
    return math.isqrt(tokens)


def prefix_tokens(tokens: int) -> int:
    """How many tokens precede the patch grid (the class token, registers)."""
    return tokens - grid_side(tokens) ** 2


def apply_view(output: torch.Tensor, view: str | None) -> torch.Tensor:
    """`output` (with batch) as `view` reads it; None: as it is."""
    if view is None:
        return output
    if view == "nchw":
        return output.permute(0, 3, 1, 2)
    count = output.shape[1]
    side, prefix = grid_side(count), prefix_tokens(count)
    patches = output[:, prefix:]
    if view == "cls":
        return output[:, 0]
    if view == "mean":
        return patches.mean(dim=1)
    if view == "max":
        return patches.amax(dim=1)
    if view == "grid":
        return patches.transpose(1, 2).reshape(len(output), output.shape[2], side, side)
    row, col = (side // 2, side // 2) if view == "center" else _patch(view)
    return patches[:, row * side + col]


def _patch(view: str) -> tuple[int, int]:
    match = PATCH.fullmatch(view)
    if match is None:
        raise ValueError(f"unknown layer view {view!r}")
    return int(match[1]), int(match[2])


def patch_view(row: int, col: int) -> str:
    return f"patch-{row}-{col}"


def has_attention(model: nn.Module) -> bool:
    """Whether `model` is a transformer: it has an attention module (torch's or its own)."""
    return any(
        isinstance(module, nn.MultiheadAttention) or "attention" in type(module).__name__.lower()
        for module in model.modules()
    )


def is_token_shape(shape: Sequence[int]) -> bool:
    """A [T, D] output (no batch) whose tokens are a square grid after a few prefix tokens."""
    if len(shape) != 2:
        return False
    side = grid_side(shape[0])
    return side >= 1 and prefix_tokens(shape[0]) <= side


def is_channels_last(shape: Sequence[int]) -> bool:
    """An [H, W, C] map (no batch): square in its first two dims, not in its last two. Images
    are square, so an NCHW map is square in its last two; one square in all three is NCHW."""
    return len(shape) == 3 and shape[0] == shape[1] != shape[2]


# --- choosing a layer's view at parse time (messages name the config key) ------------------


def describe_shape(shape: Sequence[int]) -> str:
    if is_channels_last(shape):
        return f"a channels-last map {list(shape)} ([H, W, C])"
    kinds = {1: "a vector", 2: "tokens or a 1-d map", 3: "a conv map ([C, H, W])"}
    return f"{kinds.get(len(shape), 'an output')} {list(shape)}"


def neuron_view(key: str, neuron: dict, shape: Sequence[int], transformer: bool) -> tuple[str, str]:
    """(layer with its view, spatial rule) of a config neuron whose layer's output has `shape`
    (no batch). Token layers take `tokens`/`patch` (default: the patch mean, Ghiasi et al.'s
    rule), channels-last maps the `nchw` view; a rule that would misread the layer is refused."""
    layer, spatial = neuron["layer"], neuron.get("spatial")
    tokens, patch = neuron.get("tokens"), neuron.get("patch")
    if split_view(layer)[1] is not None:  # the user named the view
        return layer, spatial or "center"
    token_layer = transformer and is_token_shape(shape)
    if tokens is not None or patch is not None:
        if not token_layer:
            rule = "tokens" if tokens is not None else "patch"
            raise _error(
                f"{key}.{rule}",
                f"layer {layer!r} gives {describe_shape(shape)}, not tokens: "
                f"remove {rule}{' (use spatial for a conv map)' if len(shape) == 3 else ''}",
            )
        if spatial is not None:
            raise _error(
                f"{key}.spatial", "reads a conv map; a token layer takes tokens or patch, not both"
            )
        return with_view(layer, _token_view(key, layer, tokens, patch, shape)), "center"
    if token_layer:
        if spatial is not None:
            raise _error(
                f"{key}.spatial",
                f"layer {layer!r} is a token layer {list(shape)} ([tokens, "
                f"units]): spatial: {spatial} reads a conv map and would misread it. Use tokens: "
                "mean, max, cls or center, or patch: [row, col]",
            )
        return with_view(layer, "mean"), "center"
    if is_channels_last(shape):
        return with_view(layer, "nchw"), spatial or "center"
    return layer, spatial or "center"


def _token_view(key: str, layer: str, tokens: str | None, patch, shape: Sequence[int]) -> str:
    count = shape[0]
    side, prefix = grid_side(count), prefix_tokens(count)
    if tokens is not None and patch is not None:
        raise _error(f"{key}.patch", "names one patch; tokens names a rule: give one of them")
    if tokens == "cls" and prefix == 0:
        raise _error(
            f"{key}.tokens",
            f"cls: layer {layer!r} has no class token ({count} tokens are a "
            f"{side}x{side} grid of patches, none before it). Use mean, max or center",
        )
    if patch is None:
        return tokens
    row, col = patch
    if not (0 <= row < side and 0 <= col < side):
        raise _error(
            f"{key}.patch",
            f"[{row}, {col}] is outside layer {layer!r}'s {side}x{side} grid of "
            f"patches: rows and columns are 0..{side - 1}",
        )
    return patch_view(row, col)


def code_view(
    key: str, layer: str, shape: Sequence[int], transformer: bool, tokens: str | None
) -> str:
    """The facet layer with its view: a token layer's codes are `tokens` (cls, the patch mean,
    or all its tokens); a conv or fc layer takes no `facets.tokens`."""
    if split_view(layer)[1] is not None:
        return layer
    if not (transformer and is_token_shape(shape)):
        if tokens is not None:
            raise _error(
                "facets.tokens",
                f"layer {layer!r} gives {describe_shape(shape)}, not tokens: remove facets.tokens",
            )
        return layer
    tokens = tokens or "all"
    if tokens == "cls" and prefix_tokens(shape[0]) == 0:
        raise _error("facets.tokens", f"cls: layer {layer!r} has no class token; use mean or all")
    return layer if tokens == "all" else with_view(layer, tokens)


def prior_view(layer: str, shape: Sequence[int], transformer: bool) -> str:
    """The code layer a generator inverts, with its view: a token layer's patch tokens as a
    grid (the generator reads them as it reads a conv map), a channels-last map as NCHW."""
    if split_view(layer)[1] is not None:
        return layer
    if transformer and is_token_shape(shape):
        return with_view(layer, "grid")
    return with_view(layer, "nchw") if is_channels_last(shape) else layer


def check_view(key: str, layer: str, shape: Sequence[int], transformer: bool) -> None:
    """A view the user named (`layer@view`) fits its module's output `shape` (no batch)."""
    path, view = split_view(layer)
    if view is None:
        return
    if view == "nchw":
        if not is_channels_last(shape):
            raise _error(
                key, f"@nchw reads a channels-last map; {path!r} gives {describe_shape(shape)}"
            )
        return
    if not (transformer and is_token_shape(shape)):
        raise _error(
            key,
            f"@{view} reads tokens; {path!r} gives {describe_shape(shape)}: name it without a view",
        )
    if view == "cls" and prefix_tokens(shape[0]) == 0:
        raise _error(key, f"@cls: {path!r} has no class token; use @mean, @max or @center")
    if view in TOKEN_RULES or view == "grid":
        return
    match = PATCH.fullmatch(view)
    if match is None:
        raise _error(
            key, f"unknown view @{view}; use @cls, @mean, @max, @center, @patch-R-C, @grid or @nchw"
        )
    side = grid_side(shape[0])
    if not (int(match[1]) < side and int(match[2]) < side):
        raise _error(
            key,
            f"@{view} is outside {path!r}'s {side}x{side} grid: rows and columns are 0..{side - 1}",
        )


def _error(key: str, message: str) -> ConfigError:
    return ConfigError(f"{key}: {message}")
