"""Facet discovery: image selection, PCA -> t-SNE -> k-means, ranking, mean images, scores."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import COARSE_LABEL_MAP, EMBEDDED, dataset_settings, facet_settings, neuron
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

from facetviz.activations.extract import Activations, extract
from facetviz.core.errors import FacetvizError
from facetviz.core.settings import Neuron
from facetviz.data.datasets import FacetDataset, open_dataset
from facetviz.facets.discover import cluster, discover, embed, mean_images, select_rows
from facetviz.facets.record import FacetRecord
from facetviz.model.networks import build_architecture, load_network, save_checkpoint

LABEL_MAP = COARSE_LABEL_MAP
FACETS = facet_settings(k=3, m=5, pca_dims=10, max_images=None, top_n=60, min_size=1)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The facets rule runs with one thread; OpenMP t-SNE on a busy 2-core machine crawls."""
    with threadpool_limits(1):
        yield


def blobs(sizes: tuple[int, ...] = (150, 100, 50), dim: int = 20, seed: int = 0):
    """Well-separated Gaussian blobs of different sizes, rows shuffled; (codes, truth)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 10, size=(len(sizes), dim))
    truth = np.repeat(np.arange(len(sizes)), sizes)
    codes = centres[truth] + rng.normal(0, 1, size=(len(truth), dim))
    order = rng.permutation(len(truth))
    return codes[order].astype(np.float32), truth[order]


def find_facets(codes, k=3, m=10, pca_dims=10, space="tsne", min_size=1, seed=0):
    """(points clustered, 2-D view, Facets) as the facets stage computes them."""
    points, view = embed(codes, pca_dims, 30.0, seed, space)
    return points, view, cluster(points, k, m, min_size, seed)


@pytest.fixture(scope="module")
def clustered():
    codes, truth = blobs()
    return codes, truth, find_facets(codes)


def test_cluster_recovers_blobs(clustered) -> None:
    _codes, truth, (points, view, facets) = clustered
    assert points.shape == view.shape == (300, 2)  # t-SNE: the map is both
    assert points.dtype == np.float32
    assert facets.centroids.shape == (3, 2)
    assert facets.nearest.shape == (3, 10)
    assert adjusted_rand_score(truth, facets.assignment) > 0.9


def test_facets_are_ranked_by_size(clustered) -> None:
    _codes, truth, (_points, _view, facets) = clustered
    sizes = facets.sizes
    assert list(sizes) == sorted(sizes, reverse=True)
    # the blobs have 150, 100 and 50 images: facet 0 is the biggest blob, facet 2 the smallest
    for facet, blob in enumerate((0, 1, 2)):
        members = truth[facets.assignment == facet]
        assert np.mean(members == blob) > 0.95
    # cluster_ids say which k-means label each facet is
    for facet, label in enumerate(facets.cluster_ids):
        assert np.array_equal(facets.assignment == facet, facets.clusters == label)


def test_centroids_are_the_facet_means(clustered) -> None:
    _codes, _truth, (points, _view, facets) = clustered
    for facet in range(3):
        np.testing.assert_allclose(
            facets.centroids[facet],
            points[facets.assignment == facet].mean(0),
            rtol=1e-3,
            atol=1e-2,
        )


def test_nearest_rows_are_members_sorted_by_distance(clustered) -> None:
    _codes, _truth, (points, _view, facets) = clustered
    for facet in range(3):
        rows = facets.nearest[facet]
        assert np.all(rows >= 0)
        assert np.all(facets.assignment[rows] == facet)
        distance = np.linalg.norm(points[rows] - facets.centroids[facet], axis=1)
        assert np.all(np.diff(distance) >= -1e-5)
        # and they are the closest members: no member outside them is nearer than the last
        members = np.flatnonzero(facets.assignment == facet)
        others = np.setdiff1d(members, rows)
        other_distance = np.linalg.norm(points[others] - facets.centroids[facet], axis=1)
        assert other_distance.min() >= distance.max() - 1e-4


def test_nearest_pads_small_facets_with_minus_one() -> None:
    codes, _truth = blobs(sizes=(30, 20, 4), seed=3)
    _points, _view, facets = find_facets(codes, k=3, m=8, pca_dims=5)
    smallest = facets.sizes[2]
    assert smallest < 8
    assert np.all(facets.nearest[2, :smallest] >= 0)
    assert np.all(facets.nearest[2, smallest:] == -1)
    assert np.all(facets.nearest[0] >= 0)


def test_small_clusters_are_dropped() -> None:
    codes, truth = blobs(sizes=(60, 40, 6), seed=3)
    _points, _view, facets = find_facets(codes, k=3, m=8, pca_dims=5, min_size=10)
    assert len(facets.centroids) == len(facets.cluster_ids) == facets.nearest.shape[0] == 2
    assert list(facets.sizes) == [60, 40]
    # the dropped blob's images belong to no facet, and none of them is a nearest image
    assert set(truth[facets.assignment == -1]) == {2}
    assert (facets.assignment == -1).sum() == 6
    assert np.all(facets.assignment[facets.nearest[facets.nearest >= 0]] >= 0)
    with pytest.raises(FacetvizError, match="facets.min_size = 100"):
        find_facets(codes, k=3, m=8, pca_dims=5, min_size=100)


def test_pca_space_clusters_the_pca_codes() -> None:
    codes, truth = blobs()
    points, view, facets = find_facets(codes, pca_dims=10, space="pca")
    assert points.shape == (300, 10)
    assert view.shape == (300, 2)
    np.testing.assert_array_equal(view, points[:, :2])
    assert facets.centroids.shape == (3, 10)
    assert adjusted_rand_score(truth, facets.assignment) > 0.9
    with pytest.raises(FacetvizError, match="facets.space: unknown 'umap'"):
        embed(codes, 10, 30.0, 0, "umap")


@pytest.mark.parametrize("space", ["tsne", "pca"])
def test_same_seed_is_byte_identical(space: str) -> None:
    codes, _truth = blobs(seed=4)
    first = find_facets(codes, space=space)
    second = find_facets(codes, space=space)
    for a, b in zip(first[:2], second[:2], strict=True):
        assert a.tobytes() == b.tobytes()
    for field in ("clusters", "assignment", "cluster_ids", "centroids", "nearest"):
        a, b = getattr(first[2], field), getattr(second[2], field)
        assert a.dtype == b.dtype
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize(("n", "k"), [(4, 5), (0, 1)])
def test_fewer_images_than_k_is_a_facetviz_error(n: int, k: int) -> None:
    points = np.random.default_rng(0).normal(size=(n, 2)).astype(np.float32)
    with pytest.raises(FacetvizError, match=f"{n} images were selected but facets.k = {k}"):
        cluster(points, k=k, m=3, min_size=1, seed=0)


def test_few_images_still_cluster() -> None:
    """Just enough images: perplexity and PCA dimensions shrink to what the data allows."""
    codes, _truth = blobs(sizes=(5, 4, 3), dim=6, seed=2)
    _points, view, facets = find_facets(codes, k=3, m=2, pca_dims=50)
    assert view.shape == (12, 2)
    assert list(facets.sizes) == sorted(facets.sizes, reverse=True)
    assert facets.nearest.shape == (3, 2)


# --- selection -----------------------------------------------------------------------------


def write_activations(path: Path, labels: np.ndarray, fc: np.ndarray, conv: dict) -> Path:
    """A minimal activations file with the layout `extract` writes."""
    n = len(labels)
    with h5py.File(path, "w") as out:
        out["codes"] = np.arange(n * 4, dtype=np.float16).reshape(n, 4)
        out["labels"] = labels.astype(np.int64)
        out["fine_labels"] = labels.astype(np.int64)
        out["indices"] = np.arange(n, dtype=np.int64) * 10
        out["layers/fc/value"] = fc.astype(np.float32)
        for rule, values in conv.items():
            out[f"layers/conv/{rule}"] = values.astype(np.float32)
        out.attrs["class_names"] = json.dumps(["a", "b", "c"])
        out.attrs["fine_names"] = json.dumps(["a", "b", "c"])
        out.attrs["has_fine_labels"] = False
    return path


@pytest.fixture
def small_activations(tmp_path: Path) -> Path:
    labels = np.array([0, 1, 2, 1, 0, 1, 1, 2, 1, 0])
    fc = np.zeros((10, 2))
    fc[:, 1] = [5, 1, 9, 3, 9, 0, 7, 2, 8, 4]  # ties at 9: rows 2 and 4
    center = np.zeros((10, 3))
    center[:, 2] = np.arange(10)
    top = np.zeros((10, 3))
    top[:, 2] = -np.arange(10)
    return write_activations(
        tmp_path / "activations.h5", labels, fc, {"center": center, "max": top, "mean": center}
    )


def test_select_label(small_activations: Path) -> None:
    with Activations(small_activations) as activations:
        unit = neuron("b", "fc", 1, "label")
        rows = select_rows(activations, unit, replace(FACETS, top_n=3), 0)
        np.testing.assert_array_equal(rows, [1, 3, 5, 6, 8])  # top_n does not apply
        activations.labels[:] = 0
        with pytest.raises(FacetvizError, match=r"no images of class 1 \(b\)"):
            select_rows(activations, unit, replace(FACETS, top_n=3), 0)


def test_select_top_fc(small_activations: Path) -> None:
    unit = neuron("u", "fc", 1, "top")
    with Activations(small_activations) as activations:
        rows = select_rows(activations, unit, replace(FACETS, top_n=4), 0)
    np.testing.assert_array_equal(rows, [2, 4, 6, 8])  # values 9, 9, 7, 8; sorted by row


def test_select_top_uses_the_spatial_rule(small_activations: Path) -> None:
    with Activations(small_activations) as activations:
        three = replace(FACETS, top_n=3)
        center = select_rows(activations, neuron("c", "conv", 2, spatial="center"), three, 0)
        top = select_rows(activations, neuron("c", "conv", 2, spatial="max"), three, 0)
    np.testing.assert_array_equal(center, [7, 8, 9])
    np.testing.assert_array_equal(top, [0, 1, 2])


def test_select_cap_is_seeded(small_activations: Path) -> None:
    unit = neuron("b", "fc", 1, "label")
    cfg = replace(FACETS, top_n=10, max_images=3)
    with Activations(small_activations) as activations:
        first = select_rows(activations, unit, cfg, seed=5)
        again = select_rows(activations, unit, cfg, seed=5)
        draws = {tuple(select_rows(activations, unit, cfg, seed=s)) for s in range(20)}
        uncapped = select_rows(activations, unit, replace(cfg, max_images=10), seed=5)
    np.testing.assert_array_equal(first, again)
    assert len(first) == 3
    assert np.all(np.diff(first) > 0)
    assert set(first) <= {1, 3, 5, 6, 8}
    assert len(draws) > 1  # the seed matters
    np.testing.assert_array_equal(uncapped, [1, 3, 5, 6, 8])


# --- on a real dataset ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset(coarse_fashion: FacetDataset) -> FacetDataset:
    return coarse_fashion


@pytest.fixture(scope="module")
def activations_path(tmp_path_factory: pytest.TempPathFactory, dataset: FacetDataset) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("run")
    save_checkpoint(folder / "model.pt", build_architecture(EMBEDDED, 1, 4), {})
    network = load_network(EMBEDDED, (1, 28, 28), 4, folder / "model.pt")
    out = folder / "activations.h5"
    extract(network, dataset, "classifier.3", ["classifier.5", "features.6"], out, batch_size=100)
    return out


def test_mean_images_are_means_of_the_chosen_images(dataset: FacetDataset) -> None:
    dataset_indices = np.array([5, 17, 230, 3, 99])
    nearest = np.array([[0, 2, -1], [4, -1, -1], [1, 3, 2]])
    means = mean_images(dataset, dataset_indices, nearest)
    assert means.shape == (3, 1, 28, 28)
    assert means.dtype == np.float32
    for facet, chosen in enumerate(([5, 230], [99], [17, 3, 230])):
        expected = dataset.pixels(dataset.positions_of(chosen)).mean(0).numpy()
        np.testing.assert_allclose(means[facet], expected, rtol=1e-6, atol=1e-6)
    assert not np.allclose(means[0], means[1])


def test_discover_writes_the_documented_outputs(
    tmp_path: Path, activations_path: Path, dataset: FacetDataset
) -> None:
    unit = neuron("footwear", "classifier.5", 0, "label")
    out_h5, out_json = tmp_path / "facets" / "footwear.h5", tmp_path / "facets" / "footwear.json"
    os.utime(activations_path, (1_000_000_000, 1_000_000_000))
    summary = discover(activations_path, dataset, unit, FACETS, 0, out_h5, out_json)
    assert activations_path.stat().st_mtime == 1_000_000_000  # the input was only read
    assert json.loads(out_json.read_text()) == summary
    footwear = np.flatnonzero(dataset.labels == 0)
    assert summary["neuron"] == "footwear"
    assert summary["layer"] == "classifier.5"
    assert summary["unit"] == 0
    assert summary["images"] == len(footwear)
    assert [f["rank"] for f in summary["facets"]] == [0, 1, 2]
    sizes = [f["size"] for f in summary["facets"]]
    assert sum(sizes) == len(footwear)
    assert sizes == sorted(sizes, reverse=True)
    for facet in summary["facets"]:
        assert facet["majority_fine_class"] in ("Sandal", "Sneaker", "Ankle boot")
        assert 1 / 3 <= facet["majority_share"] <= 1
        assert np.isfinite(facet["mean_activation"])
    assert summary["space"] == "tsne" and summary["dropped_clusters"] == 0
    assert [(g["space"], g["used"]) for g in summary["ground_truth"]] == [
        ("tsne", True),
        ("pca", False),
    ]
    for scores in summary["ground_truth"]:
        assert 1 / 3 <= scores["purity"] <= 1
        assert scores["fine_classes"] == ["Sandal", "Sneaker", "Ankle boot"]
        assert set(scores["covered"]) <= set(scores["fine_classes"])
        assert scores["coverage"] == len(scores["covered"]) / 3

    with h5py.File(out_h5, "r") as handle:
        assert set(handle) == {
            "rows",
            "dataset_indices",
            "unit_values",
            "embedding",
            "clusters",
            "assignment",
            "cluster_ids",
            "centroids",
            "code_centroids",
            "embedding_centroids",
            "nearest",
            "nearest_dataset_indices",
            "sizes",
            "mean_activation",
            "mean_images",
            "nearest_images",
            "fine_labels",
        }
        nearest = handle["nearest"][:]
        np.testing.assert_array_equal(
            handle["nearest_dataset_indices"][:][nearest >= 0],
            dataset.indices[footwear][nearest[nearest >= 0]],
        )
        np.testing.assert_array_equal(handle["rows"][:], footwear)
        np.testing.assert_array_equal(handle["dataset_indices"][:], dataset.indices[footwear])
        np.testing.assert_array_equal(handle["fine_labels"][:], dataset.fine_labels[footwear])
        np.testing.assert_array_equal(handle["sizes"][:], sizes)
        assert handle["embedding"].shape == (len(footwear), 2)
        assert handle["nearest"].shape == (3, 5)
        assert handle["mean_images"].shape == (3, 1, 28, 28)
        assert Neuron.from_dict(json.loads(handle.attrs["neuron"])) == unit
        assert len(json.loads(handle.attrs["fine_names"])) == 10
        logits = h5py.File(activations_path, "r")["layers/classifier.5/value"][:, 0]
        assignment = handle["assignment"][:]
        codes = h5py.File(activations_path, "r")["codes"][:].astype(np.float32)[footwear]
        for facet in range(3):
            expected = logits[footwear][assignment == facet].mean()
            assert handle["mean_activation"][facet] == pytest.approx(expected, rel=1e-5)
            np.testing.assert_allclose(  # mfv's facet-keeping term pulls towards these
                handle["code_centroids"][facet], codes[assignment == facet].mean(0), rtol=1e-5
            )
    assert sorted(p.name for p in out_h5.parent.iterdir()) == ["footwear.h5", "footwear.json"]

    # the same config again: byte-identical facets
    again_h5 = tmp_path / "again.h5"
    discover(activations_path, dataset, unit, FACETS, 0, again_h5, tmp_path / "again.json")
    with h5py.File(out_h5, "r") as first, h5py.File(again_h5, "r") as second:
        for key in ("assignment", "clusters", "embedding", "nearest", "mean_images"):
            assert first[key][:].tobytes() == second[key][:].tobytes(), key

    os.utime(out_h5, (1_000_000_000, 1_000_000_000))
    facets = FacetRecord.read(out_h5)
    assert out_h5.stat().st_mtime == 1_000_000_000
    assert facets.neuron == unit
    nearest = facets.nearest[1][facets.nearest[1] >= 0]
    nearest_images = dataset.pixels(dataset.positions_of(facets.dataset_indices[nearest]))
    np.testing.assert_allclose(facets.mean_images[1], nearest_images.mean(0).numpy(), atol=1e-6)
    # the nearest real image of each facet, a reference the synthesis is scored beside
    np.testing.assert_array_equal(facets.nearest_images[1], nearest_images[0].numpy())


def test_discover_top_without_label_map(tmp_path: Path, fashion_dir: Path) -> None:
    """Without a label map there are no fine labels beyond the classes: no ground truth."""
    dataset = open_dataset(dataset_settings(root=str(fashion_dir), max_images=150), "train", seed=0)
    torch.manual_seed(0)
    network = load_network(EMBEDDED, (1, 28, 28), 10, None)
    activations_path = tmp_path / "activations.h5"
    extract(network, dataset, "classifier.3", ["features.6"], activations_path, batch_size=64)
    unit = neuron("ch3", "features.6", 3, spatial="max")
    cfg = replace(FACETS, top_n=80, max_images=60)
    summary = discover(
        activations_path, dataset, unit, cfg, 0, tmp_path / "f.h5", tmp_path / "f.json"
    )
    assert "ground_truth" not in summary
    assert summary["images"] == 60
    assert all("majority_fine_class" not in f for f in summary["facets"])
    facets = FacetRecord.read(tmp_path / "f.h5")
    with Activations(activations_path) as activations:
        values = activations.unit("features.6", 3, "max")
    threshold = np.sort(values)[-80]
    assert np.all(values[facets.rows] >= threshold)
    np.testing.assert_array_equal(facets.dataset_indices, dataset.indices[facets.rows])
