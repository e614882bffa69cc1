"""facets.pool (facets/pooling.py): a conv facet layer's codes pooled over space before PCA, the
code's [C, H, W] shape recorded in the activations file, and the parse-time refusal of a pool on
a layer without positions."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import EMBEDDED, NEURON, facet_settings, neuron, validated
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

from facetviz.activations.extract import CODE_SHAPE_ATTR, Activations, extract
from facetviz.checks import check_run_config, code_layers
from facetviz.core.errors import ConfigError, FacetvizError
from facetviz.data.datasets import FacetDataset
from facetviz.facets.discover import cluster, discover, embed
from facetviz.facets.pooling import POOLS, pool_codes, pyramid_cells
from facetviz.facets.record import FacetRecord
from facetviz.model.networks import build_architecture, load_network, save_checkpoint


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The facets rule runs with one thread; OpenMP t-SNE on a busy 2-core machine crawls."""
    with threadpool_limits(1):
        yield


# --- the pools on hand-made maps -------------------------------------------------------------


def hand_maps() -> np.ndarray:
    """[2, 2, 3, 3]: two images, two channels, 3x3 positions, every value different."""
    return np.arange(36, dtype=np.float32).reshape(2, 2, 3, 3) * np.float32(1.5) - 20


def test_mean_and_max_pool_each_channel_over_its_positions() -> None:
    maps = hand_maps()
    codes = maps.reshape(2, -1)
    mean, top = pool_codes(codes, (2, 3, 3), "mean"), pool_codes(codes, (2, 3, 3), "max")
    assert mean.shape == top.shape == (2, 2)
    # image 1, channel 0 holds 18..26 (times 1.5, minus 20): mean 22 -> 13, max 26 -> 19
    assert mean[1, 0] == pytest.approx(22 * 1.5 - 20) and top[1, 0] == pytest.approx(26 * 1.5 - 20)
    np.testing.assert_allclose(mean, [[m.mean() for m in image] for image in maps], rtol=1e-6)
    np.testing.assert_array_equal(top, [[m.max() for m in image] for image in maps])


def test_pyramid_is_the_whole_map_then_each_cell_of_a_2x2_grid() -> None:
    maps = hand_maps()
    pyramid = pool_codes(maps.reshape(2, -1), (2, 3, 3), "pyramid")
    assert pyramid.shape == (2, 5 * 2)  # [whole | (0,0) | (0,1) | (1,0) | (1,1)], 2 channels each
    # on a 3x3 map the cells are rows/columns 0..1 and 1..2: the middle is in both halves
    assert pyramid_cells((3, 3)) == [
        (slice(0, 2), slice(0, 2)),
        (slice(0, 2), slice(1, 3)),
        (slice(1, 3), slice(0, 2)),
        (slice(1, 3), slice(1, 3)),
    ]
    image, channel = maps[0], 1
    expected = [
        image[channel].mean(),
        image[channel, :2, :2].mean(),
        image[channel, :2, 1:].mean(),
        image[channel, 1:, :2].mean(),
        image[channel, 1:, 1:].mean(),
    ]
    np.testing.assert_allclose(pyramid[0, channel::2], expected, rtol=1e-6)
    # the same cells as torch's adaptive average pooling, on an even map too
    for side in (3, 4, 7):
        grid = np.random.default_rng(side).normal(size=(3, 5, side, side)).astype(np.float32)
        cells = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(grid), 2)
        pooled = pool_codes(grid.reshape(3, -1), (5, side, side), "pyramid")
        np.testing.assert_allclose(pooled[:, :5], grid.mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)
        # cells row-major, each cell's 5 channels together
        expected = cells.numpy().transpose(0, 2, 3, 1).reshape(3, -1)
        np.testing.assert_allclose(pooled[:, 5:], expected, rtol=1e-5, atol=1e-6)
    assert pyramid_cells((4, 4))[3] == (slice(2, 4), slice(2, 4))  # even: no overlap


def test_none_leaves_the_codes_as_they_are() -> None:
    codes = hand_maps().reshape(2, -1)
    assert pool_codes(codes, (2, 3, 3), "none") is codes
    assert pool_codes(codes, None, "none") is codes  # no shape needed (older files)


def test_a_pool_without_a_map_shape_names_the_fix() -> None:
    codes = hand_maps().reshape(2, -1)
    with pytest.raises(FacetvizError, match="does not record.*rerun the activations stage"):
        pool_codes(codes, None, "mean")
    with pytest.raises(FacetvizError, match=r"facets.pool: max pools a conv map.*\[18\]"):
        pool_codes(codes, (18,), "max")
    with pytest.raises(FacetvizError, match="unknown 'sum'"):
        pool_codes(codes, (2, 3, 3), "sum")


# --- translation invariance ------------------------------------------------------------------


def objects_anywhere(n: int = 120, seed: int = 0):
    """[n, 8*8*8] codes of two kinds of object, each at a random one of 4 places: the object
    lights every channel of its 3x3 patch (what any object does there), and its kind adds a
    weaker response in its own 4 channels. (codes, kinds, places)."""
    rng = np.random.default_rng(seed)
    kinds, places = rng.integers(0, 2, n), rng.integers(0, 4, n)
    corners = [(0, 0), (0, 5), (5, 0), (5, 5)]
    maps = rng.normal(0, 0.05, size=(n, 8, 8, 8)).astype(np.float32)
    for i, (kind, place) in enumerate(zip(kinds, places, strict=True)):
        row, col = corners[place]
        maps[i, :, row : row + 3, col : col + 3] += 1.0
        maps[i, 4 * kind : 4 * kind + 4, row : row + 3, col : col + 3] += 0.6
    return maps.reshape(n, -1), kinds, places


def clusters_of(codes: np.ndarray, pool: str, k: int) -> np.ndarray:
    """The facets stage's clustering (pool -> PCA -> k-means) of the maps `codes`."""
    points, _view = embed(pool_codes(codes, (8, 8, 8), pool), 10, 30.0, 0, "pca")
    return cluster(points, k, 5, 1, 0).clusters


def test_mean_and_max_cluster_kinds_where_the_raw_codes_cluster_places() -> None:
    codes, kinds, places = objects_anywhere()
    for pool in ("mean", "max"):
        assert adjusted_rand_score(kinds, clusters_of(codes, pool, 2)) == 1.0, pool
    # the raw codes separate where the object sits, not what it is
    raw = clusters_of(codes, "none", 4)
    assert adjusted_rand_score(places, raw) == 1.0
    assert adjusted_rand_score(kinds, clusters_of(codes, "none", 2)) < 0.2


def test_a_shifted_map_pools_and_clusters_the_same() -> None:
    codes, _kinds, _places = objects_anywhere(seed=1)
    shifted = np.roll(codes.reshape(-1, 8, 8, 8), (2, 3), axis=(2, 3)).reshape(len(codes), -1)
    for pool in ("mean", "max"):
        np.testing.assert_allclose(
            pool_codes(shifted, (8, 8, 8), pool), pool_codes(codes, (8, 8, 8), pool), rtol=1e-6
        )
        np.testing.assert_array_equal(clusters_of(shifted, pool, 2), clusters_of(codes, pool, 2))
    assert not np.allclose(
        pool_codes(shifted, (8, 8, 8), "pyramid"), pool_codes(codes, (8, 8, 8), "pyramid")
    )
    # the raw codes of a shifted map are other codes: they cluster by the new places
    both = np.concatenate([codes, shifted])
    moved = clusters_of(both, "none", 8)
    assert len(set(moved[: len(codes)]) & set(moved[len(codes) :])) == 0


# --- the code's shape, recorded in the activations file ---------------------------------------


@pytest.fixture(scope="module")
def conv_activations(
    tmp_path_factory: pytest.TempPathFactory, coarse_fashion: FacetDataset
) -> Path:
    """A real forward pass of the embedded CNN, its conv3 map (features.7) the facet layer."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("pooled")
    save_checkpoint(folder / "model.pt", build_architecture(EMBEDDED, 1, 4), {})
    network = load_network(EMBEDDED, (1, 28, 28), 4, folder / "model.pt")
    out = folder / "activations.h5"
    extract(network, coarse_fashion, "features.7", ["classifier.5", "features.7"], out, 100)
    return out


def test_the_activations_file_records_the_code_shape(conv_activations: Path, tmp_path) -> None:
    with h5py.File(conv_activations, "r") as handle:
        assert json.loads(handle.attrs[CODE_SHAPE_ATTR]) == [64, 7, 7]
        assert handle["codes"].shape[1] == 64 * 7 * 7
    with Activations(conv_activations) as activations:
        assert activations.code_shape == (64, 7, 7)
    # a file from before the attribute: the shape from the facet layer's stored conv channels
    older = tmp_path / "older.h5"
    older.write_bytes(conv_activations.read_bytes())
    with h5py.File(older, "a") as handle:
        del handle.attrs[CODE_SHAPE_ATTR]
    with Activations(older) as activations:
        assert activations.code_shape == (64, 7, 7)
    with h5py.File(older, "a") as handle:  # ... and None where that layer is not stored
        del handle["layers/features.7"]
    with Activations(older) as activations:
        assert activations.code_shape is None


def test_a_pooled_discovery_keeps_the_raw_code_centroids(
    conv_activations: Path, coarse_fashion: FacetDataset, tmp_path: Path
) -> None:
    unit = neuron("footwear", "classifier.5", 0, "label")
    settings = facet_settings(k=6, m=5, pca_dims=10, max_images=None, min_size=1)
    summaries = {}
    for pool in POOLS:
        out = tmp_path / pool
        summaries[pool] = discover(
            conv_activations, coarse_fashion, unit, replace(settings, pool=pool), 0,
            out / "footwear.h5", out / "footwear.json",
        )  # fmt: skip
    assert "pool" not in summaries["none"]  # a run without a pool: its summary as it was
    assert [summaries[p]["pool"] for p in POOLS[1:]] == list(POOLS[1:])
    with Activations(conv_activations) as activations:
        rows = np.flatnonzero(activations.labels == 0)
        codes = activations.codes(rows)
    for pool in POOLS:
        record = FacetRecord.read(tmp_path / pool / "footwear.h5")
        assert record.code_centroids.shape == (record.facet_count, 64 * 7 * 7)
        for facet in range(record.facet_count):
            members = codes[record.assignment == facet]
            np.testing.assert_allclose(record.code_centroids[facet], members.mean(0), rtol=1e-5)
    mean = FacetRecord.read(tmp_path / "mean" / "footwear.h5")
    assert mean.centroids.shape[1] == 2  # clustered in the t-SNE map of the pooled codes
    # compare_spaces clusters the pooled codes too (in PCA space, the other one)
    compared = {}
    for pool in POOLS:
        points, _view = embed(pool_codes(codes, (64, 7, 7), pool), 10, 30.0, 0, "pca")
        compared[pool] = cluster(points, settings.k, 5, 1, 0).clusters
        pca = summaries[pool]["ground_truth"][1]
        assert pca["space"] == "pca"
        fine = coarse_fashion.fine_labels[rows]
        assert pca["ari"] == pytest.approx(adjusted_rand_score(fine, compared[pool]), abs=1e-12)
    assert len({tuple(c) for c in compared.values()}) == len(POOLS)  # the pools differ


def test_a_pool_stored_without_the_shape_is_refused_at_discovery(
    conv_activations: Path, coarse_fashion: FacetDataset, tmp_path: Path
) -> None:
    older = tmp_path / "older.h5"
    older.write_bytes(conv_activations.read_bytes())
    with h5py.File(older, "a") as handle:
        del handle.attrs[CODE_SHAPE_ATTR]
        del handle["layers/features.7"]
    settings = facet_settings(k=3, m=5, pca_dims=10, max_images=None, min_size=1, pool="max")
    unit = neuron("footwear", "classifier.5", 0, "label")
    with pytest.raises(FacetvizError, match="rerun the activations stage"):
        discover(older, coarse_fashion, unit, settings, 0, tmp_path / "f.h5", tmp_path / "f.json")
    assert not (tmp_path / "f.h5").exists()


# --- refused at parse time on a layer without positions ---------------------------------------


def run_config(layer: str, pool: str) -> dict:
    return validated({"facets": {"layer": layer, "pool": pool}, "neurons": [NEURON]})


@pytest.mark.parametrize("pool", POOLS[1:])
def test_a_pool_on_a_vector_layer_is_refused_naming_the_key_and_the_fix(pool: str) -> None:
    with pytest.raises(ConfigError) as err:
        check_run_config(run_config("classifier.3", pool))
    message = str(err.value)
    assert message.startswith(f"facets.pool: {pool} pools a conv map [C, H, W]")
    assert "layer 'classifier.3' gives a vector [256], with no positions" in message
    assert "Set facets.pool: none, or a conv facets.layer" in message


def test_a_pool_on_a_conv_layer_passes_and_none_passes_anywhere() -> None:
    for pool in POOLS:
        check_run_config(run_config("features.7", pool))
    check_run_config(run_config("classifier.3", "none"))


BLOCK = "encoder.layers.encoder_layer_2"  # the embedded ViT's last block: [50, 64] tokens
VIT = {"model": {"arch": "vit"}, "neurons": [{**NEURON, "layer": "heads.head"}]}
SWIN = {
    "model": {"kind": "torchvision", "arch": "swin_t", "weights": "random"},
    "dataset": {"channels": 3, "image_size": 64},
    "neurons": [{"name": "u", "layer": "head", "unit": 0, "select": "top"}],
}


@pytest.mark.parametrize(
    ("model", "facets", "fragments"),
    [
        (VIT, {"layer": BLOCK}, ["is a token layer [50, 64], not a conv map", f"{BLOCK}@grid"]),
        (VIT, {"layer": BLOCK, "tokens": "cls"}, ["facets.tokens: cls reads one vector"]),
        (VIT, {"layer": f"{BLOCK}@mean"}, ["gives a vector [64], with no positions"]),
        (SWIN, {"layer": "features.5"}, ["channels-last map [4, 4, 384]", "features.5@nchw"]),
    ],
)
def test_a_pool_on_tokens_or_a_channels_last_map_names_the_view_that_reads_a_map(
    model: dict, facets: dict, fragments: list[str]
) -> None:
    with pytest.raises(ConfigError) as err:
        check_run_config(validated({**model, "facets": {**facets, "pool": "mean"}}))
    message = str(err.value)
    assert message.startswith("facets.pool: mean pools a conv map [C, H, W] over its positions")
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize(("model", "layer"), [(VIT, f"{BLOCK}@grid"), (SWIN, "features.5@nchw")])
def test_the_views_that_read_a_map_take_a_pool(model: dict, layer: str) -> None:
    config = validated({**model, "facets": {"layer": layer, "pool": "pyramid"}})
    check_run_config(config)
    assert code_layers(config)[0] == layer
