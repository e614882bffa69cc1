"""Facet discovery (paper §1 steps 2-5): select images, PCA -> t-SNE -> k-means, mean images.

Facets are ranked by size: facet 0 is the largest cluster. Clusters smaller than
facets.min_size are dropped (logged). Clustering on the PCA codes instead of the t-SNE map
(facets.space: pca) lets a user measure whether the paper's t-SNE step matters.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from facetviz.activations import Activations
from facetviz.data import FacetDataset
from facetviz.errors import FacetvizError
from facetviz.facet_metrics import ground_truth
from facetviz.io import atomic_path, open_h5, require_h5_keys, write_json
from facetviz.progress import log

STAGE = "facets"


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


def select_rows(
    activations: Activations, neuron: dict[str, Any], facets_cfg: dict[str, Any], seed: int
) -> np.ndarray:
    """Rows clustered for `neuron`: its class's images, or its top-N activating images."""
    if neuron.get("select", "top") == "label":
        rows = np.flatnonzero(activations.labels == neuron["class"])
        if len(rows) == 0:
            raise FacetvizError(
                f"neuron {neuron['name']}: no images of class {neuron['class']} "
                f"({activations.class_names[neuron['class']]}) in the dataset: check the neuron's "
                "class and dataset.label_map (every class needs images)"
            )
    else:
        values = activations.unit(neuron["layer"], neuron["unit"], neuron.get("spatial", "center"))
        # stable sort on -value: ties keep dataset order, so selection is reproducible
        rows = np.sort(np.argsort(-values, kind="stable")[: facets_cfg["top_n"]])
    cap = facets_cfg.get("max_images")
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


def discover(
    activations_path: str | Path,
    dataset: FacetDataset,
    neuron: dict[str, Any],
    facets_cfg: dict[str, Any],
    seed: int,
    out_h5: str | Path,
    out_json: str | Path,
) -> dict[str, Any]:
    """Cluster one neuron's images into facets; write the facet file and its JSON summary."""
    name = neuron["name"]
    with Activations(activations_path) as activations:
        rows = select_rows(activations, neuron, facets_cfg, seed)
        codes = activations.codes(rows)
        unit_values = activations.unit(
            neuron["layer"], neuron["unit"], neuron.get("spatial", "center")
        )[rows]
        dataset_indices = activations.indices[rows]
        fine = activations.fine_labels[rows]
        fine_names = activations.fine_names
        has_fine = activations.has_fine_labels
        skipped = activations.skipped_count
    space = facets_cfg.get("space", "tsne")
    k, m, min_size = facets_cfg["k"], facets_cfg["m"], facets_cfg.get("min_size", 1)
    start = time.perf_counter()
    log.info(
        "%s: clustering %d images (%d-d codes) by PCA(%d) -> %s -> k-means(%d)",
        name,
        len(rows),
        codes.shape[1],
        facets_cfg["pca_dims"],
        "t-SNE(2)" if space == "tsne" else "(no t-SNE)",
        k,
    )
    points, view = embed(codes, facets_cfg["pca_dims"], facets_cfg["perplexity"], seed, space)
    facets = cluster(points, k, m, min_size, seed)
    seconds = time.perf_counter() - start
    dropped = np.flatnonzero(np.bincount(facets.clusters, minlength=k) < min_size)
    if len(dropped):
        log.info(
            "%s: dropped %d of %d clusters smaller than facets.min_size = %d (sizes %s; %d images)",
            name,
            len(dropped),
            k,
            min_size,
            np.bincount(facets.clusters, minlength=k)[dropped].tolist(),
            int((facets.assignment < 0).sum()),
        )
    means = mean_images(dataset, dataset_indices, facets.nearest)
    sizes = facets.sizes
    mean_activation = np.array(
        [unit_values[facets.assignment == f].mean() for f in range(len(sizes))], dtype=np.float32
    )
    view_centroids = np.stack(
        [view[facets.assignment == f].mean(0) for f in range(len(sizes))]
    ).astype(np.float32)

    summary: dict[str, Any] = {
        "neuron": name,
        "layer": neuron["layer"],
        "unit": neuron["unit"],
        "neuron_config": neuron,
        "images": int(len(rows)),
        # unreadable images the forward pass left out (dataset.on_unreadable: skip), of all classes
        "skipped_images": skipped,
        "space": space,
        "clusters": k,
        "dropped_clusters": int(len(dropped)),
        "clustering_seconds": round(seconds, 2),
        "facets": [],
    }
    for facet in range(len(sizes)):
        entry: dict[str, Any] = {
            "rank": facet,
            "size": int(sizes[facet]),
            "mean_activation": float(mean_activation[facet]),
        }
        if has_fine:
            counts = np.bincount(fine[facets.assignment == facet], minlength=len(fine_names))
            entry["majority_fine_class"] = fine_names[int(counts.argmax())]
            entry["majority_share"] = round(float(counts.max() / counts.sum()), 4)
        summary["facets"].append(entry)
    if has_fine:
        summary["ground_truth"] = _ground_truth_by_space(
            codes, facets, fine, fine_names, facets_cfg, seed, space
        )

    with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as out:
        out["rows"] = rows
        out["dataset_indices"] = dataset_indices
        out["unit_values"] = unit_values
        out["embedding"] = view
        out["clusters"] = facets.clusters
        out["assignment"] = facets.assignment
        out["cluster_ids"] = facets.cluster_ids
        out["centroids"] = facets.centroids
        # the facet in the facet layer itself: mfv's facet-keeping term pulls towards it
        out["code_centroids"] = code_centroids(codes, facets.assignment, len(sizes))
        out["embedding_centroids"] = view_centroids
        out["nearest"] = facets.nearest
        out["nearest_dataset_indices"] = np.where(
            facets.nearest >= 0, dataset_indices[np.maximum(facets.nearest, 0)], -1
        )
        out["sizes"] = sizes
        out["mean_activation"] = mean_activation
        out["mean_images"] = means
        out["fine_labels"] = fine
        out.attrs["neuron"] = json.dumps(neuron)
        out.attrs["fine_names"] = json.dumps(fine_names)
        out.attrs["has_fine_labels"] = has_fine
        out.attrs["space"] = space
    write_json(out_json, summary)
    log.info("%s: %d facets in %.1f s, sizes %s", name, len(sizes), seconds, sizes.tolist())
    for scores in summary.get("ground_truth", []):
        log.info(
            "%s: %s%s purity %.3f, NMI %.3f, ARI %.3f, coverage %d/%d (%s)",
            name,
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
    codes: np.ndarray,
    facets: Facets,
    fine: np.ndarray,
    fine_names: list[str],
    facets_cfg: dict[str, Any],
    seed: int,
    space: str,
) -> list[dict[str, Any]]:
    """Scores of the facets found, and, with facets.compare_spaces, of clustering in the other
    space (t-SNE or PCA codes) with the same k, seed and pruning."""
    min_share = facets_cfg.get("coverage_min_share", 0.05)
    results = [
        {"space": space, "used": True}
        | ground_truth(facets.clusters, facets.assignment, fine, fine_names, min_share)
    ]
    if facets_cfg.get("compare_spaces", True):
        other = "pca" if space == "tsne" else "tsne"
        points, _view = embed(codes, facets_cfg["pca_dims"], facets_cfg["perplexity"], seed, other)
        alt = cluster(points, facets_cfg["k"], facets_cfg["m"], facets_cfg.get("min_size", 1), seed)
        results.append(
            {"space": other, "used": False}
            | ground_truth(alt.clusters, alt.assignment, fine, fine_names, min_share)
        )
    return results


def read_facets(path: str | Path) -> dict[str, Any]:
    """Every dataset of a facet file, and its `neuron`, `fine_names`, `has_fine_labels`, `space`."""
    with open_h5(path, STAGE) as handle:
        require_h5_keys(
            handle,
            ["mean_images", "nearest", "dataset_indices", "sizes", "embedding", "assignment"],
            STAGE,
        )
        data = {key: handle[key][:] for key in handle}
        data["neuron"] = json.loads(handle.attrs["neuron"])
        data["fine_names"] = json.loads(handle.attrs["fine_names"])
        data["has_fine_labels"] = bool(handle.attrs.get("has_fine_labels", False))
        data["space"] = str(handle.attrs.get("space", "tsne"))
    return data
