"""Facet discovery (paper §1 steps 2-5): select images, PCA -> t-SNE -> k-means, mean images.

Facets are ranked by size: facet 0 is the largest cluster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from facetviz.activations import Activations
from facetviz.data import FacetDataset
from facetviz.errors import FacetvizError
from facetviz.io import atomic_path, open_h5, require_h5_keys, write_json
from facetviz.progress import log

STAGE = "facets"


@dataclass
class Facets:
    rows: np.ndarray  # [n] rows of the activations file that were clustered (sorted)
    embedding: np.ndarray  # [n, 2]
    assignment: np.ndarray  # [n] facet of each row, 0 = largest facet
    centroids: np.ndarray  # [k, 2]
    nearest: np.ndarray  # [k, m] positions into `rows`, nearest the centroid first; -1 pads

    @property
    def sizes(self) -> np.ndarray:
        return np.bincount(self.assignment, minlength=len(self.centroids))


def select_rows(
    activations: Activations, neuron: dict[str, Any], facets_cfg: dict[str, Any], seed: int
) -> np.ndarray:
    """Rows clustered for `neuron`: its class's images, or its top-N activating images."""
    if neuron.get("select", "top") == "label":
        rows = np.flatnonzero(activations.labels == neuron["class"])
        if len(rows) == 0:
            raise FacetvizError(
                f"neuron {neuron['name']}: no images of class {neuron['class']} "
                f"({activations.class_names[neuron['class']]}) in the dataset"
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


def cluster(
    codes: np.ndarray, k: int, m: int, pca_dims: int, perplexity: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(embedding, assignment, centroids, nearest) with facets ranked by size."""
    n = len(codes)
    if n < max(k, 3):
        raise FacetvizError(
            f"{n} images were selected but k = {k} facets need at least {max(k, 3)}; "
            "lower facets.k or select more images"
        )
    dims = min(pca_dims, n, codes.shape[1])
    reduced = PCA(n_components=dims, random_state=seed).fit_transform(codes)
    # t-SNE needs perplexity < n; the paper's 30 is fine from ~100 images on
    perplexity = min(perplexity, max(1.0, (n - 1) / 3))
    embedding = TSNE(
        n_components=2, perplexity=perplexity, init="pca", random_state=seed
    ).fit_transform(reduced)
    kmeans = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(embedding)
    raw, centroids = kmeans.labels_, kmeans.cluster_centers_

    order = np.argsort(-np.bincount(raw, minlength=k), kind="stable")
    rank_of = np.empty(k, dtype=np.int64)
    rank_of[order] = np.arange(k)
    assignment = rank_of[raw]
    centroids = centroids[order]

    nearest = np.full((k, m), -1, dtype=np.int64)
    for facet in range(k):
        members = np.flatnonzero(assignment == facet)
        distance = np.linalg.norm(embedding[members] - centroids[facet], axis=1)
        closest = members[np.argsort(distance, kind="stable")[:m]]
        nearest[facet, : len(closest)] = closest
    return embedding.astype(np.float32), assignment, centroids.astype(np.float32), nearest


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


def ground_truth_scores(assignment: np.ndarray, fine: np.ndarray) -> dict[str, float]:
    """Facet recovery against fine labels: size-weighted purity, NMI, ARI."""
    majority = sum(np.bincount(fine[assignment == f]).max() for f in np.unique(assignment))
    return {
        "purity": float(majority / len(fine)),
        "nmi": float(normalized_mutual_info_score(fine, assignment)),
        "ari": float(adjusted_rand_score(fine, assignment)),
    }


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
    log.info("%s: clustering %d images (%d-d codes)", neuron["name"], len(rows), codes.shape[1])
    embedding, assignment, centroids, nearest = cluster(
        codes,
        facets_cfg["k"],
        facets_cfg["m"],
        facets_cfg["pca_dims"],
        facets_cfg["perplexity"],
        seed,
    )
    means = mean_images(dataset, dataset_indices, nearest)
    k = len(centroids)
    sizes = np.bincount(assignment, minlength=k)
    mean_activation = np.array(
        [unit_values[assignment == f].mean() for f in range(k)], dtype=np.float32
    )

    summary: dict[str, Any] = {
        "neuron": neuron["name"],
        "layer": neuron["layer"],
        "unit": neuron["unit"],
        "images": int(len(rows)),
        "facets": [],
    }
    for facet in range(k):
        entry: dict[str, Any] = {
            "rank": facet,
            "size": int(sizes[facet]),
            "mean_activation": float(mean_activation[facet]),
        }
        if has_fine:
            counts = np.bincount(fine[assignment == facet], minlength=len(fine_names))
            entry["dominant_fine_class"] = fine_names[int(counts.argmax())]
            entry["dominant_share"] = float(counts.max() / counts.sum())
        summary["facets"].append(entry)
    if has_fine:
        summary["ground_truth"] = ground_truth_scores(assignment, fine)

    with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as out:
        out["rows"] = rows
        out["dataset_indices"] = dataset_indices
        out["embedding"] = embedding
        out["assignment"] = assignment
        out["centroids"] = centroids
        out["nearest"] = nearest
        out["sizes"] = sizes
        out["mean_activation"] = mean_activation
        out["mean_images"] = means
        out["fine_labels"] = fine
        out.attrs["neuron"] = json.dumps(neuron)
        out.attrs["fine_names"] = json.dumps(fine_names)
    write_json(out_json, summary)
    log.info("%s: %d facets, sizes %s", neuron["name"], k, sizes.tolist())
    return summary


def read_facets(path: str | Path) -> dict[str, Any]:
    with open_h5(path, STAGE) as handle:
        require_h5_keys(handle, ["mean_images", "nearest", "dataset_indices", "sizes"], STAGE)
        data = {key: handle[key][:] for key in handle}
        data["neuron"] = json.loads(handle.attrs["neuron"])
    return data
