"""The facet file (`facets/<neuron>.h5`): one neuron's clustering and its facets, as a record.

Positions ("rows" of the selection) index the neuron's selected images: `rows` maps them to rows
of the activations file and `dataset_indices` to images of the dataset. Facets are ranked by
size (facet 0 is the largest); images of dropped clusters have assignment -1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from facetviz.core.io import atomic_path
from facetviz.core.records import read_record, write_record
from facetviz.core.settings import Neuron
from facetviz.facets.metrics import majority_classes
from facetviz.model.readout import Readout

STAGE = "facets"


@dataclass(frozen=True)
class FacetRecord:
    neuron: Neuron
    fine_names: list[str]
    has_fine_labels: bool
    space: str  # where k-means ran: "tsne" (the paper) or "pca"
    rows: np.ndarray  # [n] rows of the activations file that were clustered
    dataset_indices: np.ndarray  # [n] their images' indices in the dataset
    unit_values: np.ndarray  # [n] the unit's activation on each
    fine_labels: np.ndarray  # [n] their fine classes
    embedding: np.ndarray  # [n, 2] the 2-D view (t-SNE, or the first two PCA components)
    clusters: np.ndarray  # [n] raw k-means label
    assignment: np.ndarray  # [n] facet of each image; -1 where its cluster was dropped
    cluster_ids: np.ndarray  # [k] the k-means label behind each facet
    centroids: np.ndarray  # [k, d] in the clustering space
    code_centroids: np.ndarray  # [k, D] each facet's mean code in the facet layer
    embedding_centroids: np.ndarray  # [k, 2] each facet's centre in the 2-D view
    nearest: np.ndarray  # [k, m] positions nearest each centroid; -1 pads
    nearest_dataset_indices: np.ndarray  # [k, m] their dataset indices; -1 pads
    sizes: np.ndarray  # [k] images per facet
    mean_activation: np.ndarray  # [k] the unit's mean activation over each facet
    mean_images: np.ndarray  # [k, C, H, W] mean of each facet's m nearest images, in [0, 1]
    nearest_images: np.ndarray  # [k, C, H, W] the real image nearest each centroid
    # a neuron that is not one unit (model/readout.py): its weights over the layer's units,
    # and its bias, cosine power and label; None for a unit
    readout_weights: np.ndarray | None = None
    readout: dict | None = None

    def readout_of(self) -> Readout | None:
        """The neuron's readout, as the facets stage resolved it; None for a unit."""
        if self.readout_weights is None or self.readout is None:
            return None
        return Readout(self.readout_weights, **self.readout)

    @property
    def facet_count(self) -> int:
        return len(self.sizes)

    @property
    def majority(self) -> np.ndarray:
        """[k] each facet's majority fine class (an index into `fine_names`)."""
        return majority_classes(self.assignment, self.fine_labels)

    def majority_names(self) -> list[str]:
        """Each facet's majority fine class by name, where the dataset has fine labels."""
        if not self.has_fine_labels:
            return []
        return [self.fine_names[c] for c in self.majority]

    def best_real_activation(self) -> np.ndarray:
        """[k] the unit's highest activation on a real image of each facet."""
        return np.array(
            [self.unit_values[self.assignment == f].max() for f in range(self.facet_count)]
        )

    def members(self, facet: int) -> np.ndarray:
        """Dataset indices of the facet's images."""
        return self.dataset_indices[self.assignment == facet]

    def unit_scale(self) -> float:
        """The unit's mean activation over the images that were clustered into facets."""
        return float(self.unit_values[self.assignment >= 0].mean())

    def write(self, path: str | Path) -> None:
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
            write_record(handle, self)

    @classmethod
    def read(cls, path: str | Path) -> FacetRecord:
        return read_record(cls, path, STAGE)
