"""One synthesis job: a batch of neurons' facets optimized by one method, written as records."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import method, synthesize
from PIL import Image

from facetviz.core.errors import FacetvizError
from facetviz.facets.record import FacetRecord
from facetviz.model.networks import Network, capture
from facetviz.synthesis import record
from facetviz.synthesis.job import build_task, chunks, image_seed, synthesize_batch
from facetviz.synthesis.record import SynthesisRecord

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_synthesize_batch_writes_the_documented_outputs(small_run: Path, small_synthesis) -> None:
    assert sorted(p.name for p in (small_run / "synthesis").iterdir()) == ["ch2", "tops"]
    assert set(small_synthesis) == {"tops", "ch2"}
    out = small_run / "synthesis" / "tops"
    assert sorted(p.name for p in out.iterdir()) == [
        "facet_00.png",
        "facet_01.png",
        "facet_02.png",
        "images.h5",
    ]
    facets = FacetRecord.read(small_run / "facets" / "tops.h5")
    with h5py.File(out / "images.h5", "r") as handle:
        assert set(handle) == {
            *("images", "init", "trace", "activation_init", "activation_final", "samples")
        }
        assert handle.attrs["method"] == "mfv"
    result = SynthesisRecord.read(out)
    assert result.neuron == facets.neuron
    assert result.images.shape == (3, 1, 28, 28)
    assert result.samples.shape == (0, 3, 1, 28, 28)  # mfv is no sampler: its chain is empty
    assert result.images.min() >= 0 and result.images.max() <= 1
    np.testing.assert_array_equal(result.init, facets.mean_images)
    assert result.trace.shape == (4 + 3 + 1 + 1, 3)  # the 4 octaves at 2 % steps
    assert small_synthesis["tops"] == {
        "activation_init": result.activation_init.tolist(),
        "activation_final": result.activation_final.tolist(),
    }
    assert np.all(result.activation_final > result.activation_init)
    for facet, image in enumerate(result.images):
        path = out / f"facet_{facet:02d}.png"
        assert path.read_bytes()[:8] == PNG_MAGIC
        with Image.open(path) as png:
            assert png.mode == "L" and png.size == (28, 28)
            np.testing.assert_array_equal(np.asarray(png), np.rint(image[0] * 255).astype(np.uint8))


def test_a_facet_file_of_an_older_version_is_a_clear_error(
    small_run: Path, small_run_network: Network, tmp_path: Path
) -> None:
    """The facet-keeping term needs each facet's centroid code: a facet file written before
    `code_centroids` existed says to rerun the facets stage, and nothing is written."""
    kept = synthesize(small_run_network, small_run, tmp_path / "kept", facet_weight=3.0)
    assert set(kept) == {"tops", "ch2"}
    old = tmp_path / "facets" / "tops.h5"
    old.parent.mkdir()
    old.write_bytes((small_run / "facets" / "tops.h5").read_bytes())
    with h5py.File(old, "a") as handle:
        del handle["code_centroids"]
    with pytest.raises(FacetvizError, match="lacks code_centroids.*rerun the 'facets' stage"):
        synthesize(small_run_network, tmp_path, tmp_path / "old", names=["tops"])
    assert not (tmp_path / "old").exists()


def test_synthesized_activations_are_the_network_values(
    small_run: Path, small_run_network: Network, small_synthesis
) -> None:
    result = SynthesisRecord.read(small_run / "synthesis" / "ch2")
    with capture(small_run_network.module, ["features.6"]) as out, torch.no_grad():
        small_run_network(torch.from_numpy(result.images))
    np.testing.assert_allclose(
        result.activation_final, out["features.6"][:, 2, 3, 3].numpy(), rtol=1e-5, atol=1e-6
    )


@pytest.mark.reproducibility
def test_the_same_job_gives_byte_identical_images(
    small_run: Path, small_run_network: Network, small_synthesis, tmp_path: Path, threads: int
) -> None:
    synthesize(small_run_network, small_run, tmp_path / "again")
    synthesize(small_run_network, small_run, tmp_path / "third")
    for name in ("facet_00.png", "facet_01.png", "facet_02.png"):
        assert (tmp_path / "again" / "tops" / name).read_bytes() == (
            tmp_path / "third" / "tops" / name
        ).read_bytes()
    again = SynthesisRecord.read(tmp_path / "again" / "tops")
    third = SynthesisRecord.read(tmp_path / "third" / "tops")
    assert again.images.tobytes() == third.images.tobytes()


@pytest.mark.reproducibility
def test_an_images_draws_do_not_depend_on_its_job_mates(
    small_run: Path, small_run_network: Network, tmp_path: Path, threads: int
) -> None:
    """tops alone and tops beside ch2: the same seeds, start images and random draws exactly,
    and optimized images that agree where a user looks (see test_methods' batch-mate test for
    why the floats themselves need not be equal)."""
    paths = [small_run / "facets" / f"{name}.h5" for name in ("tops", "ch2")]
    facets = [FacetRecord.read(path) for path in paths]
    alone, together = (
        build_task(facets[:1], 0, "classifier.3", "cpu"),
        build_task(facets, 0, "classifier.3", "cpu"),
    )
    assert [g.initial_seed() for g in alone.generators] == [
        g.initial_seed() for g in together.generators[:3]
    ]
    assert torch.equal(alone.mean_images, together.mean_images[:3])
    assert torch.equal(alone.noise(0.5, 0.1), together.noise(0.5, 0.1)[:3])
    synthesize(small_run_network, small_run, tmp_path / "alone", names=["tops"])
    synthesize(small_run_network, small_run, tmp_path / "both")
    a = SynthesisRecord.read(tmp_path / "alone" / "tops")
    b = SynthesisRecord.read(tmp_path / "both" / "tops")
    assert a.init.tobytes() == b.init.tobytes()
    np.testing.assert_allclose(a.activation_final, b.activation_final, rtol=0.02)
    assert np.abs(a.images - b.images).mean() < 0.005
    # a different seed gives different draws, and different images
    synthesize(small_run_network, small_run, tmp_path / "seed1", names=["tops"], seed=1)
    other = SynthesisRecord.read(tmp_path / "seed1" / "tops")
    assert np.abs(other.images - a.images).mean() > 10 * np.abs(a.images - b.images).mean()


def test_image_seeds_and_chunks() -> None:
    assert image_seed(0, "tops", 1) == image_seed(0, "tops", 1)
    assert len({image_seed(0, "tops", 1), image_seed(1, "tops", 1), image_seed(0, "ch2", 1)}) == 3
    assert chunks([3, 2, 4, 1], 5) == [[0, 1], [2, 3]]
    assert chunks([7, 2], 5) == [[0], [1]]  # a neuron larger than a batch stays whole


def test_failed_synthesis_leaves_no_output(
    small_run: Path, small_run_network: Network, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real_to_pil = record.to_pil

    def to_pil_failing_on_second(image: np.ndarray) -> Image.Image:
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_to_pil(image)

    monkeypatch.setattr(record, "to_pil", to_pil_failing_on_second)
    out = tmp_path / "synthesis" / "batch"
    with pytest.raises(OSError, match="disk full"):
        synthesize(small_run_network, small_run, out, names=["tops"])
    assert len(calls) == 2  # it failed after writing one PNG
    assert not out.exists()
    assert list(out.parent.iterdir()) == []


def test_a_non_finite_objective_stops_the_job_and_writes_nothing(
    small_run: Path, small_run_network: Network, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model whose activations overflow: the error names neuron, facet, method and step."""
    layer = small_run_network.module.classifier[2]

    def overflow(_module, _inputs, output):
        return output * float("inf")

    handle = layer.register_forward_hook(overflow)
    try:
        with pytest.raises(FacetvizError, match=r"mfv: neuron tops, facet 0:.*NaN or Inf.*step 0"):
            synthesize(small_run_network, small_run, tmp_path / "batch", names=["tops"])
    finally:
        handle.remove()
    assert list(tmp_path.iterdir()) == []


def test_synthesis_replaces_an_old_output(
    small_run: Path, small_run_network: Network, tmp_path: Path
) -> None:
    out = tmp_path / "batch"
    (out / "tops").mkdir(parents=True)
    (out / "tops" / "facet_07.png").write_bytes(b"stale")
    (out / "old-neuron").mkdir()
    synthesize(small_run_network, small_run, out, names=["tops"])
    assert [p.name for p in out.iterdir()] == ["tops"]
    assert sorted(p.name for p in (out / "tops").iterdir()) == [
        "facet_00.png",
        "facet_01.png",
        "facet_02.png",
        "images.h5",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["batch"]


def test_every_method_runs_as_a_job(small_run: Path, small_run_network: Network, tmp_path: Path):
    for name in ("cbr", "plain", "fourier"):
        folder = tmp_path / name
        job = method(name, small_run_network, 0.01)
        synthesize_batch(job, [small_run / "facets" / "ch2.h5"], "classifier.3", 0, folder)
        assert SynthesisRecord.read(folder / "ch2").method == name
