"""Facet discovery (docs/design.md §1, steps 2-5): select images, PCA -> t-SNE -> k-means, mean
images.

Facets are ranked by size: facet 0 is the largest cluster. Clusters smaller than
facets.min_size are dropped (logged). Clustering on the PCA codes instead of the t-SNE map
(facets.space: pca) lets a user measure whether the paper's t-SNE step matters. A conv facet
layer's codes may be pooled over space first (facets.pool, facets/pooling.py), so that facets
ignore where an object sits; the record's code centroids stay in the raw codes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from facetviz.activations.extract import Activations
from facetviz.core.errors import FacetvizError
from facetviz.core.io import write_json
from facetviz.core.progress import log
from facetviz.core.settings import FacetSettings, Neuron
from facetviz.data.datasets import FacetDataset
from facetviz.directions.readouts import resolve_neuron, resolve_readout
from facetviz.facets.metrics import ground_truth
from facetviz.facets.pooling import pool_codes
from facetviz.facets.record import FacetRecord
from facetviz.model.readout import Readout

SPACES = ("tsne", "pca")


@dataclass
class Facets:
    """One clustering of a neuron's selected images, with facets ranked by size (0 = largest)."""

    clusters: np.ndarray  # [n] raw k-means label of each image
    assignment: np.ndarray  # [n] facet of each image; -1 where its cluster was dropped as small
    cluster_ids: np.ndarray  # [k] the k-means label behind each facet
    centroids: np.ndarray  # [k, d] in the clustering space
    nearest: np.ndarray  # [k, m] positions of the images nearest each centroid; -1 pads

    @property
    def sizes(self) -> np.ndarray:
        return np.bincount(self.assignment[self.assignment >= 0], minlength=len(self.centroids))


def neuron_values(
    activations: Activations, neuron: Neuron, readout: Readout | None = None
) -> np.ndarray:
    """[N] the neuron's value on every image: its unit's activation, or its readout's value."""
    if readout is None:
        return activations.unit(neuron.layer, neuron.unit, neuron.spatial)
    return readout.of_array(activations.layer_values(neuron.layer, neuron.spatial))


def select_rows(
    activations: Activations,
    neuron: Neuron,
    settings: FacetSettings,
    seed: int,
    readout: Readout | None = None,
) -> np.ndarray:
    """Rows clustered for `neuron`: its class's images, or its top-N activating images."""
    if neuron.is_class_unit:
        rows = np.flatnonzero(activations.labels == neuron.class_index)
        if len(rows) == 0:
            raise FacetvizError(
                f"neuron {neuron.name}: no images of class {neuron.class_index} "
                f"({activations.class_names[neuron.class_index]}) in the dataset: check the "
                "neuron's class and dataset.label_map (every class needs images)"
            )
    else:
        values = neuron_values(activations, neuron, readout)
        # stable sort on -value: ties keep dataset order, so selection is reproducible
        rows = np.sort(np.argsort(-values, kind="stable")[: settings.top_n])
    cap = settings.max_images
    if cap and len(rows) > cap:
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(rows, size=cap, replace=False))
    return rows


def embed(
    codes: np.ndarray, pca_dims: int, perplexity: float, seed: int, space: str
) -> tuple[np.ndarray, np.ndarray]:
    """(points to cluster, 2-D view for figures): PCA to `pca_dims`, then for space `tsne` a
    2-D t-SNE map that is both (the paper), for space `pca` the PCA codes and their first two
    components."""
    if space not in SPACES:
        raise FacetvizError(f"facets.space: unknown {space!r}; use one of {', '.join(SPACES)}")
    n = len(codes)
    dims = min(pca_dims, n, codes.shape[1])
    reduced = PCA(n_components=dims, random_state=seed).fit_transform(codes)
    if space == "pca":
        view = reduced[:, :2] if dims >= 2 else np.pad(reduced, ((0, 0), (0, 2 - dims)))
        return reduced.astype(np.float32), view.astype(np.float32)
    # t-SNE needs perplexity < n; the paper's 30 is fine from ~100 images on
    usable = min(perplexity, max(1.0, (n - 1) / 3))
    if usable < perplexity:
        log.info("t-SNE perplexity lowered from %g to %.1f for %d images", perplexity, usable, n)
    embedding = TSNE(
        n_components=2, perplexity=usable, init="pca", random_state=seed
    ).fit_transform(reduced)
    embedding = embedding.astype(np.float32)
    return embedding, embedding


def cluster(points: np.ndarray, k: int, m: int, min_size: int, seed: int) -> Facets:
    """k-means on `points`; facets ranked by size; clusters under `min_size` images dropped."""
    n = len(points)
    if n < k:
        raise FacetvizError(
            f"{n} images were selected but facets.k = {k}: lower facets.k to at most {n}, or "
            "select more images (facets.top_n, facets.max_images, or a class with more images)"
        )
    kmeans = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(points)
    clusters = kmeans.labels_.astype(np.int64)
    counts = np.bincount(clusters, minlength=k)
    order = np.argsort(-counts, kind="stable")
    kept = order[counts[order] >= min_size]
    if len(kept) == 0:
        raise FacetvizError(
            f"every cluster has fewer than facets.min_size = {min_size} images "
            f"(largest {counts.max()}): lower facets.min_size or facets.k"
        )
    rank_of = np.full(k, -1, dtype=np.int64)
    rank_of[kept] = np.arange(len(kept))
    assignment = rank_of[clusters]
    centroids = kmeans.cluster_centers_[kept].astype(np.float32)

    nearest = np.full((len(kept), m), -1, dtype=np.int64)
    for facet in range(len(kept)):
        members = np.flatnonzero(assignment == facet)
        distance = np.linalg.norm(points[members] - centroids[facet], axis=1)
        closest = members[np.argsort(distance, kind="stable")[:m]]
        nearest[facet, : len(closest)] = closest
    return Facets(clusters, assignment, kept.astype(np.int64), centroids, nearest)


def mean_images(
    dataset: FacetDataset, dataset_indices: np.ndarray, nearest: np.ndarray
) -> np.ndarray:
    """[k, C, H, W]: each facet's mean of its nearest images, in the model's pixel space."""
    positions = dataset.positions_of(dataset_indices)
    images = []
    for facet_rows in nearest:
        chosen = positions[facet_rows[facet_rows >= 0]]
        images.append(dataset.pixels(chosen).mean(0))
    return np.stack([image.numpy() for image in images]).astype(np.float32)


def code_centroids(codes: np.ndarray, assignment: np.ndarray, k: int) -> np.ndarray:
    """[k, d]: each facet's mean code (in the facet layer) over its member images."""
    return np.stack([codes[assignment == facet].mean(0) for facet in range(k)]).astype(np.float32)


@dataclass(frozen=True)
class Selection:
    """A neuron's selected images, read from the activations file."""

    rows: np.ndarray
    codes: np.ndarray  # [n, D] facet-layer codes, float32
    code_shape: tuple[int, ...] | None  # a code before flattening ([C, H, W]); None: unknown
    unit_values: np.ndarray
    dataset_indices: np.ndarray
    fine_labels: np.ndarray
    fine_names: list[str]
    has_fine_labels: bool
    skipped_images: int  # unreadable images the forward pass left out (of every class)


def read_selection(
    activations_path: str | Path,
    neuron: Neuron,
    settings: FacetSettings,
    seed: int,
    readout: Readout | None = None,
) -> Selection:
    with Activations(activations_path) as activations:
        rows = select_rows(activations, neuron, settings, seed, readout)
        values = neuron_values(activations, neuron, readout)
        return Selection(
            rows=rows,
            codes=activations.codes(rows),
            code_shape=activations.code_shape,
            unit_values=values[rows],
            dataset_indices=activations.indices[rows],
            fine_labels=activations.fine_labels[rows],
            fine_names=activations.fine_names,
            has_fine_labels=activations.has_fine_labels,
            skipped_images=activations.skipped_count,
        )


def find_facets(
    selection: Selection,
    dataset: FacetDataset,
    neuron: Neuron,
    settings: FacetSettings,
    seed: int,
    readout: Readout | None = None,
) -> FacetRecord:
    """Cluster the selection into facets ([pool ->] PCA -> t-SNE -> k-means) and build the facet
    record."""
    features = clustered_codes(selection, settings)
    log.info(
        "%s: clustering %d images (%d-d codes%s) by PCA(%d) -> %s -> k-means(%d)",
        neuron.name,
        len(selection.rows),
        features.shape[1],
        "" if settings.pool == "none" else f", {settings.pool}-pooled over space",
        settings.pca_dims,
        "t-SNE(2)" if settings.space == "tsne" else "(no t-SNE)",
        settings.k,
    )
    points, view = embed(features, settings.pca_dims, settings.perplexity, seed, settings.space)
    facets = cluster(points, settings.k, settings.m, settings.min_size, seed)
    _log_dropped(neuron.name, facets, settings)
    k = len(facets.sizes)
    members = [facets.assignment == f for f in range(k)]
    indices = selection.dataset_indices
    return FacetRecord(
        neuron=neuron,
        fine_names=selection.fine_names,
        has_fine_labels=selection.has_fine_labels,
        space=settings.space,
        rows=selection.rows,
        dataset_indices=indices,
        unit_values=selection.unit_values,
        fine_labels=selection.fine_labels,
        embedding=view,
        clusters=facets.clusters,
        assignment=facets.assignment,
        cluster_ids=facets.cluster_ids,
        centroids=facets.centroids,
        # the facet in the facet layer itself, raw whatever facets.pool: mfv's facet-keeping
        # term pulls an image's raw code in that layer towards it
        code_centroids=code_centroids(selection.codes, facets.assignment, k),
        embedding_centroids=np.stack([view[m].mean(0) for m in members]).astype(np.float32),
        nearest=facets.nearest,
        nearest_dataset_indices=np.where(
            facets.nearest >= 0, indices[np.maximum(facets.nearest, 0)], -1
        ),
        sizes=facets.sizes,
        mean_activation=np.array(
            [selection.unit_values[m].mean() for m in members], dtype=np.float32
        ),
        mean_images=mean_images(dataset, indices, facets.nearest),
        nearest_images=dataset.pixels(dataset.positions_of(indices[facets.nearest[:, 0]])).numpy(),
        readout_weights=None if readout is None else readout.weights,
        readout=None if readout is None else readout.describe(),
    )


def clustered_codes(selection: Selection, settings: FacetSettings) -> np.ndarray:
    """[n, d] what PCA sees: the selection's codes, pooled over space as facets.pool says."""
    return pool_codes(selection.codes, selection.code_shape, settings.pool)


def _log_dropped(name: str, facets: Facets, settings: FacetSettings) -> None:
    counts = np.bincount(facets.clusters, minlength=settings.k)
    dropped = np.flatnonzero(counts < settings.min_size)
    if len(dropped):
        log.info(
            "%s: dropped %d of %d clusters smaller than facets.min_size = %d (sizes %s; %d images)",
            name,
            len(dropped),
            settings.k,
            settings.min_size,
            counts[dropped].tolist(),
            int((facets.assignment < 0).sum()),
        )


def summarize(
    record: FacetRecord,
    selection: Selection,
    settings: FacetSettings,
    seed: int,
    seconds: float,
) -> dict[str, Any]:
    """The facet file's JSON summary: sizes, activations, majority fine classes and, where the
    dataset has fine labels, the clustering's scores against them (also in the other space)."""
    neuron = record.neuron
    summary: dict[str, Any] = {
        "neuron": neuron.name,
        "layer": neuron.layer,
        "unit": neuron.unit,
        "neuron_config": neuron.to_dict(),
        **({"readout": record.readout} if record.readout else {}),
        "images": int(len(record.rows)),
        # unreadable images the forward pass left out (dataset.on_unreadable: skip), of all classes
        "skipped_images": selection.skipped_images,
        "space": record.space,
        # only where set, so that a run without a pool keeps its summaries as they were
        **({"pool": settings.pool} if settings.pool != "none" else {}),
        "clusters": settings.k,
        "dropped_clusters": int(
            np.sum(np.bincount(record.clusters, minlength=settings.k) < settings.min_size)
        ),
        "clustering_seconds": round(seconds, 2),
        "facets": [_facet_entry(record, facet) for facet in range(record.facet_count)],
    }
    if record.has_fine_labels:
        features = clustered_codes(selection, settings)
        summary["ground_truth"] = _ground_truth_by_space(features, record, settings, seed)
    return summary


def _facet_entry(record: FacetRecord, facet: int) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "rank": facet,
        "size": int(record.sizes[facet]),
        "mean_activation": float(record.mean_activation[facet]),
    }
    if record.has_fine_labels:
        fine = record.fine_labels[record.assignment == facet]
        counts = np.bincount(fine, minlength=len(record.fine_names))
        entry["majority_fine_class"] = record.fine_names[int(counts.argmax())]
        entry["majority_share"] = round(float(counts.max() / counts.sum()), 4)
    return entry


def discover(
    activations_path: str | Path,
    dataset: FacetDataset,
    neuron: Neuron,
    settings: FacetSettings,
    seed: int,
    out_h5: str | Path,
    out_json: str | Path,
    readout_file: str | Path | None = None,
) -> dict[str, Any]:
    """Cluster one neuron's images into facets; write the facet file and its JSON summary.
    `readout_file` defines a neuron that is not a unit (a direction's .npy, an SAE)."""
    neuron = resolve_neuron(neuron, readout_file)
    readout = resolve_readout(neuron, readout_file)
    selection = read_selection(activations_path, neuron, settings, seed, readout)
    start = time.perf_counter()
    record = find_facets(selection, dataset, neuron, settings, seed, readout)
    seconds = time.perf_counter() - start
    summary = summarize(record, selection, settings, seed, seconds)
    record.write(out_h5)
    write_json(out_json, summary)
    log.info("%s: %d facets in %.1f s, sizes %s", neuron.name, record.facet_count, seconds,
             record.sizes.tolist())  # fmt: skip
    for scores in summary.get("ground_truth", []):
        log.info(
            "%s: %s%s purity %.3f, NMI %.3f, ARI %.3f, coverage %d/%d (%s)",
            neuron.name,
            scores["space"],
            "" if scores["used"] else " (comparison)",
            scores["purity"],
            scores["nmi"],
            scores["ari"],
            len(scores["covered"]),
            len(scores["fine_classes"]),
            ", ".join(scores["covered"]),
        )
    return summary


def _ground_truth_by_space(
    features: np.ndarray, record: FacetRecord, settings: FacetSettings, seed: int
) -> list[dict[str, Any]]:
    """Scores of the facets found and, with facets.compare_spaces, of clustering `features` (the
    codes as facets.pool leaves them) in the other space with the same k, seed and pruning."""
    min_share = settings.coverage_min_share
    fine, names = record.fine_labels, record.fine_names
    results = [
        {"space": record.space, "used": True}
        | ground_truth(record.clusters, record.assignment, fine, names, min_share)
    ]
    if settings.compare_spaces:
        other = "pca" if record.space == "tsne" else "tsne"
        scores = space_scores(features, fine, names, settings, seed, other)
        results.append({"space": other, "used": False} | scores)
    return results


def space_scores(
    features: np.ndarray,
    fine: np.ndarray,
    fine_names: list[str],
    settings: FacetSettings,
    seed: int,
    space: str,
) -> dict[str, Any]:
    """Scores against the fine labels of clustering `features` in `space` as `find_facets` does."""
    points, _view = embed(features, settings.pca_dims, settings.perplexity, seed, space)
    facets = cluster(points, settings.k, settings.m, settings.min_size, seed)
    return ground_truth(
        facets.clusters, facets.assignment, fine, fine_names, settings.coverage_min_share
    )
