"""Layer views (model/views.py): a token layer read as its class token, its patch mean or max,
a patch, or its patches as a grid; a channels-last map read as NCHW; and the parse-time choice
of a neuron's, a facet layer's and a prior's view, with refusals that name the config key."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer

from facetviz.core.errors import ConfigError
from facetviz.model.embedded import EmbeddedCNN, EmbeddedViT
from facetviz.model.networks import capture, unit_count, unit_values
from facetviz.model.views import (
    apply_view,
    check_view,
    code_view,
    grid_side,
    has_attention,
    is_channels_last,
    is_token_shape,
    neuron_view,
    prefix_tokens,
    prior_view,
    split_view,
    with_view,
)

BLOCK = "encoder.layers.encoder_layer_1"
MLP = "encoder.layers.encoder_layer_1.mlp.1"  # the MLP's hidden units, after GELU


def small_torchvision_vit() -> nn.Module:
    """torchvision's VisionTransformer at 32 px, 8 px patches: a 4x4 grid and a class token."""
    return VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32
    )


# name: (model, one batch of its images, grid side, width of a block, width of its MLP)
VITS = {
    "torchvision": (small_torchvision_vit, (3, 3, 32, 32), 4, 16, 32),
    "embedded": (EmbeddedViT, (3, 1, 28, 28), 7, 64, 128),
}


@contextmanager
def by_hand(model: nn.Module, layers: list[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block, a plain forward hook of our own keeps each layer's raw output."""
    raw: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())

    def keep(layer: str):
        return lambda _module, _inputs, output: raw.__setitem__(layer, output.detach().clone())

    handles = [modules[layer].register_forward_hook(keep(layer)) for layer in layers]
    try:
        yield raw
    finally:
        for handle in handles:
            handle.remove()


@pytest.mark.parametrize("kind", list(VITS))
@pytest.mark.parametrize("layer", [BLOCK, MLP])
def test_token_views_read_the_tokens_a_hook_sees(kind: str, layer: str) -> None:
    build, batch, side, width, mlp = VITS[kind]
    torch.manual_seed(0)
    model = build().eval()
    images = torch.rand(batch)
    far = (side - 1, 0), (1, side - 1), (0, 0)
    views = ["cls", "mean", "max", "center", "grid"] + [f"patch-{r}-{c}" for r, c in far]
    named = [f"{layer}@{view}" for view in views]
    with torch.no_grad(), by_hand(model, [layer]) as raw, capture(model, named) as outputs:
        model(images)  # one pass: our hook and capture's see the same output
    tokens = raw[layer]
    units = mlp if layer == MLP else width
    assert tokens.shape == (batch[0], 1 + side * side, units)
    assert is_token_shape(tokens.shape[1:]) and prefix_tokens(tokens.shape[1]) == 1
    got = {view: outputs[f"{layer}@{view}"] for view in views}
    torch.testing.assert_close(got["cls"], tokens[:, 0], rtol=0, atol=0)
    torch.testing.assert_close(got["mean"], tokens[:, 1:].mean(dim=1))
    torch.testing.assert_close(got["max"], tokens[:, 1:].amax(dim=1), rtol=0, atol=0)
    middle = 1 + (side // 2) * side + side // 2
    torch.testing.assert_close(got["center"], tokens[:, middle], rtol=0, atol=0)
    for row, col in far:
        patch = got[f"patch-{row}-{col}"]
        torch.testing.assert_close(patch, tokens[:, 1 + row * side + col], rtol=0, atol=0)
    assert got["grid"].shape == (batch[0], units, side, side)
    for row in range(side):
        for col in range(side):
            expected = tokens[:, 1 + row * side + col]
            torch.testing.assert_close(got["grid"][:, :, row, col], expected, rtol=0, atol=0)
    # the class token is not a patch: mean and max leave it out
    assert not torch.allclose(got["mean"], tokens.mean(dim=1))
    # each view is one unit per channel, as fc layers and conv maps count them
    assert unit_count(got["mean"].shape[1:]) == unit_count(got["grid"].shape[1:]) == units


def test_the_transformers_are_recognized_and_the_cnn_is_not() -> None:
    assert has_attention(small_torchvision_vit()) and has_attention(EmbeddedViT())
    assert not has_attention(EmbeddedCNN(1, 4, 16))


def test_register_tokens_are_prefix_tokens_that_patch_views_leave_out() -> None:
    """A class token, 4 registers, a 4x4 grid: the 5 prefix tokens are in no patch view."""
    torch.manual_seed(0)
    tokens = torch.randn(2, 1 + 4 + 16, 8)
    tokens[:, :5] += 1000.0  # were a prefix token counted, mean and max would show it
    assert grid_side(21) == 4 and prefix_tokens(21) == 5
    patches = tokens[:, 5:]
    torch.testing.assert_close(apply_view(tokens, "mean"), patches.mean(dim=1))
    torch.testing.assert_close(apply_view(tokens, "max"), patches.amax(dim=1))
    torch.testing.assert_close(apply_view(tokens, "cls"), tokens[:, 0])
    torch.testing.assert_close(apply_view(tokens, "center"), tokens[:, 5 + 2 * 4 + 2])
    torch.testing.assert_close(apply_view(tokens, "patch-3-1"), tokens[:, 5 + 3 * 4 + 1])
    grid = apply_view(tokens, "grid")
    assert grid.shape == (2, 8, 4, 4)
    torch.testing.assert_close(grid[:, :, 1, 2], tokens[:, 5 + 1 * 4 + 2])
    # a 14x14 grid with a class token and 4 registers (DINOv2's) is a token layer
    assert is_token_shape((1 + 4 + 196, 384)) and prefix_tokens(201) == 5


def test_views_ride_on_the_layer_name() -> None:
    assert split_view("encoder.ln@mean") == ("encoder.ln", "mean")
    assert split_view("features.6") == ("features.6", None)
    assert with_view("a.b", "patch-1-2") == "a.b@patch-1-2" and with_view("a.b", None) == "a.b"
    assert apply_view(torch.ones(2, 3), None).shape == (2, 3)
    with pytest.raises(ValueError, match="unknown layer view 'foo'"):
        apply_view(torch.ones(2, 50, 4), "foo")


# --- channels-last maps ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def swin_stage() -> tuple[torch.Tensor, torch.Tensor]:
    """torchvision swin_t's first stage, features.1, on two 64 px images: its [2, 16, 16, 96]
    output as a hook sees it, and as capture's `nchw` view reads it."""
    torch.manual_seed(0)
    model = torchvision.models.swin_t(weights=None).eval()
    assert has_attention(model)
    images = torch.rand(2, 3, 64, 64)
    with (
        torch.no_grad(),
        by_hand(model, ["features.1"]) as raw,
        capture(model, ["features.1@nchw"]) as outputs,
    ):
        model(images)
    return raw["features.1"], outputs["features.1@nchw"]


def test_a_channels_last_stage_is_read_as_nchw(swin_stage) -> None:
    nhwc, nchw = swin_stage
    assert nhwc.shape == (2, 16, 16, 96) and is_channels_last(nhwc.shape[1:])
    torch.testing.assert_close(nchw, nhwc.permute(0, 3, 1, 2), rtol=0, atol=0)
    torch.testing.assert_close(apply_view(nhwc, "nchw"), nhwc.permute(0, 3, 1, 2))
    assert unit_count(nchw.shape[1:]) == 96
    centre = unit_values(nchw, "center")
    assert centre.shape == (2, 96)
    for channel in (0, 5, 95):
        torch.testing.assert_close(centre[:, channel], nhwc[:, 8, 8, channel], rtol=0, atol=0)
    torch.testing.assert_close(unit_values(nchw, "max"), nhwc.amax(dim=(1, 2)))
    torch.testing.assert_close(unit_values(nchw, "mean"), nhwc.mean(dim=(1, 2)))


def test_nchw_maps_are_not_channels_last() -> None:
    assert not is_channels_last((64, 7, 7))  # a conv map
    assert not is_channels_last((7, 7, 7))  # square in all three: NCHW
    assert not is_channels_last((50, 64)) and not is_channels_last((4,))
    assert is_channels_last((7, 7, 64))


# --- a neuron's view, chosen at parse time -----------------------------------------------------

KEY = "neurons[0] (x)"
TOKENS = (50, 128)  # the embedded ViT's MLP: a class token and a 7x7 grid
NO_CLASS_TOKEN = (16, 64)  # a 4x4 grid, no prefix
CONV = (64, 7, 7)
VECTOR = (4,)
NHWC = (16, 16, 96)


def config_neuron(layer: str = MLP, **values) -> dict:
    """A neuron as the schema hands it over (its defaults null)."""
    return {"name": "x", "layer": layer, "unit": 0, "spatial": None, "tokens": None,
            "patch": None, "select": "top", **values}  # fmt: skip


def refusal(call, *args) -> str:
    with pytest.raises(ConfigError) as caught:
        call(*args)
    return str(caught.value)


def test_a_token_layer_reads_the_patch_mean_by_default() -> None:
    assert neuron_view(KEY, config_neuron(), TOKENS, True) == (f"{MLP}@mean", "center")


@pytest.mark.parametrize("rule", ["cls", "mean", "max", "center"])
def test_a_token_rule_becomes_the_view(rule: str) -> None:
    neuron = config_neuron(tokens=rule)
    assert neuron_view(KEY, neuron, TOKENS, True) == (f"{MLP}@{rule}", "center")


def test_a_patch_becomes_the_view() -> None:
    assert neuron_view(KEY, config_neuron(patch=[6, 2]), TOKENS, True) == (
        f"{MLP}@patch-6-2",
        "center",
    )


def test_a_view_the_user_named_is_kept() -> None:
    neuron = config_neuron(layer=f"{MLP}@cls")
    assert neuron_view(KEY, neuron, (128,), True) == (f"{MLP}@cls", "center")


def test_conv_fc_and_channels_last_layers_keep_their_spatial_rule() -> None:
    conv = config_neuron(layer="features.6")
    assert neuron_view(KEY, conv, CONV, False) == ("features.6", "center")
    assert neuron_view(KEY, {**conv, "spatial": "max"}, CONV, False) == ("features.6", "max")
    # a transformer's conv map (the patch embedding) is read as any conv map
    assert neuron_view(KEY, conv, CONV, True) == ("features.6", "center")
    assert neuron_view(KEY, config_neuron(layer="heads.head"), VECTOR, True) == (
        "heads.head",
        "center",
    )
    stage = config_neuron(layer="features.1", spatial="mean")
    assert neuron_view(KEY, stage, NHWC, True) == ("features.1@nchw", "mean")
    assert neuron_view(KEY, {**stage, "spatial": None}, NHWC, True) == (
        "features.1@nchw",
        "center",
    )
    # a CNN's [C, L] map is no token layer, whatever its shape
    assert neuron_view(KEY, conv, TOKENS, False) == ("features.6", "center")


def test_spatial_on_a_token_layer_is_refused() -> None:
    message = refusal(neuron_view, KEY, config_neuron(spatial="center"), TOKENS, True)
    assert message.startswith(f"{KEY}.spatial: ")
    assert "token layer [50, 128]" in message
    assert "Use tokens: mean, max, cls or center, or patch: [row, col]" in message


def test_spatial_with_tokens_is_refused() -> None:
    neuron = config_neuron(spatial="max", tokens="mean")
    message = refusal(neuron_view, KEY, neuron, TOKENS, True)
    assert message.startswith(f"{KEY}.spatial: ") and "tokens or patch, not both" in message


def test_tokens_with_patch_is_refused() -> None:
    neuron = config_neuron(tokens="mean", patch=[1, 1])
    message = refusal(neuron_view, KEY, neuron, TOKENS, True)
    assert message.startswith(f"{KEY}.patch: ") and "give one of them" in message


@pytest.mark.parametrize("rule", ["tokens", "patch"])
def test_token_rules_on_a_conv_layer_are_refused(rule: str) -> None:
    neuron = config_neuron(layer="conv_proj", **{rule: "mean" if rule == "tokens" else [0, 0]})
    message = refusal(neuron_view, KEY, neuron, CONV, True)
    assert message.startswith(f"{KEY}.{rule}: ")
    assert "'conv_proj' gives a conv map ([C, H, W]) [64, 7, 7], not tokens" in message
    assert f"remove {rule} (use spatial for a conv map)" in message


def test_tokens_on_a_vector_or_a_cnn_are_refused() -> None:
    head = config_neuron(layer="heads.head", tokens="cls")
    message = refusal(neuron_view, KEY, head, VECTOR, True)
    assert message.startswith(f"{KEY}.tokens: ") and "a vector [4], not tokens" in message
    assert message.endswith("remove tokens")
    cnn = config_neuron(layer="features.6", tokens="mean")
    assert refusal(neuron_view, KEY, cnn, TOKENS, False).startswith(f"{KEY}.tokens: ")
    stage = config_neuron(layer="features.1", tokens="mean")
    message = refusal(neuron_view, KEY, stage, NHWC, True)
    assert "a channels-last map [16, 16, 96] ([H, W, C]), not tokens" in message


def test_cls_on_a_layer_without_a_class_token_is_refused() -> None:
    message = refusal(neuron_view, KEY, config_neuron(tokens="cls"), NO_CLASS_TOKEN, True)
    assert message.startswith(f"{KEY}.tokens: cls: ")
    assert "has no class token (16 tokens are a 4x4 grid of patches" in message
    assert "Use mean, max or center" in message
    # the other rules read its patches
    assert neuron_view(KEY, config_neuron(), NO_CLASS_TOKEN, True)[0] == f"{MLP}@mean"


@pytest.mark.parametrize("patch", [[7, 0], [0, 7], [9, 9]])
def test_a_patch_outside_the_grid_is_refused(patch: list[int]) -> None:
    message = refusal(neuron_view, KEY, config_neuron(patch=patch), TOKENS, True)
    assert message.startswith(f"{KEY}.patch: {patch} is outside")
    assert "7x7 grid of patches: rows and columns are 0..6" in message


# --- the facet layer's and the prior's views ---------------------------------------------------


def test_a_token_facet_layer_takes_all_its_tokens_by_default() -> None:
    assert code_view("facets.layer", BLOCK, (50, 64), True, None) == BLOCK
    assert code_view("facets.layer", BLOCK, (50, 64), True, "all") == BLOCK
    assert code_view("facets.layer", BLOCK, (50, 64), True, "mean") == f"{BLOCK}@mean"
    assert code_view("facets.layer", BLOCK, (50, 64), True, "cls") == f"{BLOCK}@cls"
    assert code_view("facets.layer", f"{BLOCK}@max", (64,), True, None) == f"{BLOCK}@max"


def test_conv_and_fc_facet_layers_take_no_view() -> None:
    assert code_view("facets.layer", "features.7", (64, 7, 7), False, None) == "features.7"
    assert code_view("facets.layer", "conv_proj", CONV, True, None) == "conv_proj"


@pytest.mark.parametrize("shape", [CONV, VECTOR])
def test_facet_tokens_on_a_layer_without_tokens_are_refused(shape) -> None:
    message = refusal(code_view, "facets.layer", "conv_proj", shape, True, "cls")
    assert message.startswith("facets.tokens: ")
    assert "not tokens: remove facets.tokens" in message


def test_facet_tokens_cls_without_a_class_token_is_refused() -> None:
    message = refusal(code_view, "facets.layer", BLOCK, NO_CLASS_TOKEN, True, "cls")
    assert message.startswith("facets.tokens: cls: ")
    assert "has no class token; use mean or all" in message


def test_a_prior_reads_tokens_as_a_grid_and_channels_last_as_nchw() -> None:
    assert prior_view(BLOCK, (50, 64), True) == f"{BLOCK}@grid"
    assert prior_view("features.1", NHWC, True) == "features.1@nchw"
    assert prior_view("features.7", (64, 7, 7), False) == "features.7"
    assert prior_view("classifier.3", (256,), False) == "classifier.3"
    assert prior_view("conv_proj", CONV, True) == "conv_proj"
    assert prior_view(f"{BLOCK}@mean", (64,), True) == f"{BLOCK}@mean"
    assert prior_view("features.6", TOKENS, False) == "features.6"  # a CNN has no tokens


@pytest.mark.parametrize(
    ("layer", "shape", "fix"),
    [
        (f"{MLP}@foo", (50, 128), "unknown view @foo"),
        (f"{MLP}@patch-0-9", (50, 128), "outside"),
        (f"{MLP}@patch-9-9", (50, 128), "rows and columns are 0..6"),
        (f"{MLP}@cls", (49, 128), "no class token"),
        ("features.6@mean", (64, 7, 7), "name it without a view"),
        ("features.6@nchw", (64, 7, 7), "@nchw reads a channels-last map"),
    ],
)
def test_a_view_named_in_the_layer_is_checked(layer: str, shape: tuple, fix: str) -> None:
    message = refusal(check_view, "neurons[0] (x).layer", layer, shape, True)
    assert message.startswith("neurons[0] (x).layer: ") and fix in message


@pytest.mark.parametrize("layer", [f"{MLP}@cls", f"{MLP}@patch-6-6", f"{MLP}@grid", MLP])
def test_a_view_that_fits_passes(layer: str) -> None:
    check_view("neurons[0] (x).layer", layer, (50, 128), True)
