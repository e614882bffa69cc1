"""A synthesis output: one neuron's facet images by one method (`<neuron>/images.h5` and PNGs).

`images` are the final float images (pixels in [0, 1], largest facet first), `init` the images
the method started from, `trace` what was maximized at each step, the unit's activation at the
start and on the result, and a sampler's chain (its samples along the way; none for others).
The PNGs (`facet_XX.png`) are the same images at 8 bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from facetviz.core.records import read_record, write_record
from facetviz.core.settings import Neuron

STAGE = "synthesize"
FILE = "images.h5"


def to_pil(image: np.ndarray) -> Image.Image:
    """[C, H, W] in [0, 1] -> an 8-bit grayscale or RGB image."""
    array = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
    return (
        Image.fromarray(array[0], "L")
        if array.shape[0] == 1
        else Image.fromarray(array.transpose(1, 2, 0), "RGB")
    )


@dataclass(frozen=True)
class SynthesisRecord:
    method: str
    neuron: Neuron
    images: np.ndarray  # [k, C, H, W]
    init: np.ndarray  # [k, C, H, W]
    trace: np.ndarray  # [steps, k]
    activation_init: np.ndarray  # [k]
    activation_final: np.ndarray  # [k]
    samples: np.ndarray  # [S, k, C, H, W] a sampler's chain per facet (S = 0 for the others)

    def write(self, folder: str | Path) -> None:
        """Into a new folder (inside the job's temporary output: the job renames it whole)."""
        folder = Path(folder)
        folder.mkdir()
        for index, image in enumerate(self.images):
            to_pil(image).save(folder / f"facet_{index:02d}.png")
        with h5py.File(folder / FILE, "w") as handle:
            write_record(handle, self)

    @classmethod
    def read(cls, folder: str | Path) -> SynthesisRecord:
        return read_record(cls, Path(folder) / FILE, STAGE)
