"""Activation maximization: the TV prior, jitter, batch objectives, the ascent loop, the job."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import COARSE_LABEL_MAP
from PIL import Image
from threadpoolctl import threadpool_limits

from facetviz.activations import extract
from facetviz.data import FacetDataset
from facetviz.errors import FacetvizError
from facetviz.facets import discover, read_facets
from facetviz.figures import (
    embedding_figure,
    facets_figure,
    methods_figure,
    metrics_figure,
    overview_figure,
)
from facetviz.index_page import write_index
from facetviz.models import Network, build_architecture, capture, load_network, save_checkpoint
from facetviz.synthesis import job
from facetviz.synthesis.objectives import Unit, batch_objective
from facetviz.synthesis.regularizers import total_variation
from facetviz.synthesis.transforms import jitter

LABEL_MAP = COARSE_LABEL_MAP
SETTINGS = {"steps_scale": 0.02, "facet_layer": "classifier.3"}  # mfv: 12 steps
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PDF_MAGIC = b"%PDF-"


@pytest.fixture(scope="module")
def network() -> Network:
    torch.manual_seed(0)
    return load_network({"kind": "embedded"}, (1, 28, 28), 4, None)


# --- total variation -----------------------------------------------------------------------


def test_tv_of_a_constant_image_is_zero() -> None:
    for level in (0.0, 0.3, 1.0):
        constant = torch.full((2, 1, 12, 12), level)
        np.testing.assert_array_equal(total_variation(constant, eps=0.0).numpy(), [0.0, 0.0])
        # with the default smoothing only the eps floor is left: sqrt(eps) per difference
        floor = 11 * 11 * 1e-3
        np.testing.assert_allclose(total_variation(constant).numpy(), [floor, floor], rtol=1e-5)


def test_tv_of_an_edge_is_its_length() -> None:
    edge = torch.zeros(1, 1, 10, 10)
    edge[..., 5:] = 1.0
    assert total_variation(edge, eps=0.0).item() == pytest.approx(9.0)
    edge_rows = edge.transpose(-1, -2).contiguous()
    assert total_variation(edge_rows, eps=0.0).item() == pytest.approx(9.0)
    assert total_variation(edge * 0.5, eps=0.0).item() == pytest.approx(4.5)


def test_tv_is_larger_for_noise_and_per_image() -> None:
    generator = torch.Generator().manual_seed(0)
    noise = torch.rand(1, 3, 16, 16, generator=generator)
    smooth = torch.linspace(0, 1, 16).expand(1, 3, 16, 16).contiguous()
    both = torch.cat([torch.full((1, 3, 16, 16), 0.5), noise, smooth])
    tv = total_variation(both)
    assert tv.shape == (3,)
    assert tv[1] > 5 * tv[2] > 5 * tv[0]
    np.testing.assert_allclose(tv[1].item(), total_variation(noise).item(), rtol=1e-6)


def test_tv_is_differentiable() -> None:
    generator = torch.Generator().manual_seed(1)
    image = torch.rand(2, 1, 5, 5, generator=generator, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(total_variation, (image,), eps=1e-6, atol=1e-5)
    constant = torch.full((1, 1, 6, 6), 0.4, requires_grad=True)
    (grad,) = torch.autograd.grad(total_variation(constant).sum(), constant)
    assert torch.isfinite(grad).all()
    assert torch.count_nonzero(grad) == 0  # a constant image is a minimum
    noise = torch.rand(1, 1, 6, 6, generator=generator, requires_grad=True)
    (grad,) = torch.autograd.grad(total_variation(noise).sum(), noise)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    # a small step against the gradient lowers the TV
    with torch.no_grad():
        assert total_variation(noise - 1e-3 * grad) < total_variation(noise)


# --- jitter --------------------------------------------------------------------------------


def shift_of(original: torch.Tensor, moved: torch.Tensor, max_shift: int) -> tuple[int, int]:
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            if torch.equal(torch.roll(original, (dy, dx), dims=(-2, -1)), moved):
                return dy, dx
    raise AssertionError("not a wrapped shift within max_shift")


def test_jitter_zero_is_identity() -> None:
    images = torch.rand(3, 1, 8, 8)
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    assert torch.equal(jitter(images, 0, generator), images)
    assert torch.equal(generator.get_state(), state)  # draws nothing


def test_jitter_shifts_each_image_on_its_own() -> None:
    image = torch.rand(1, 9, 9, generator=torch.Generator().manual_seed(3))
    batch = image.expand(16, 1, 9, 9).contiguous()
    moved = jitter(batch, 2, torch.Generator().manual_seed(0))
    assert moved.shape == batch.shape
    shifts = {shift_of(image, m, 2) for m in moved}
    assert len(shifts) > 3  # images of one batch get different offsets
    assert all(abs(dy) <= 2 and abs(dx) <= 2 for dy, dx in shifts)


def test_jitter_is_reproducible() -> None:
    images = torch.rand(6, 1, 9, 9, generator=torch.Generator().manual_seed(4))
    first = jitter(images, 3, torch.Generator().manual_seed(7))
    again = jitter(images, 3, torch.Generator().manual_seed(7))
    assert torch.equal(first, again)
    generator = torch.Generator().manual_seed(7)
    jitter(images, 3, generator)
    assert not torch.equal(jitter(images, 3, generator), first)  # the generator advances


def test_jitter_passes_gradients() -> None:
    images = torch.rand(2, 1, 6, 6, requires_grad=True)
    weights = torch.rand(2, 1, 6, 6)
    (grad,) = torch.autograd.grad(
        (jitter(images, 1, torch.Generator().manual_seed(0)) * weights).sum(), images
    )
    assert torch.allclose(grad.sum((1, 2, 3)), weights.sum((1, 2, 3)))


# --- objectives ----------------------------------------------------------------------------

TARGETS = [
    Unit("classifier.5", 1),
    Unit("features.6", 3, "center"),
    Unit("features.6", 2, "max"),
    Unit("features.6", 5, "mean"),
    Unit("classifier.2", 7),
]


def test_batch_objective_matches_a_direct_forward(network: Network) -> None:
    pixels = torch.rand(len(TARGETS), 1, 28, 28, generator=torch.Generator().manual_seed(0))
    values = batch_objective(network, TARGETS)(pixels)
    assert values.shape == (len(TARGETS),)
    with (
        capture(network.module, ["classifier.5", "features.6", "classifier.2"]) as out,
        torch.no_grad(),
    ):
        network(pixels)
    conv = out["features.6"]
    expected = [
        out["classifier.5"][0, 1],
        conv[1, 3, 3, 3],
        conv[2, 2].max(),
        conv[3, 5].mean(),
        out["classifier.2"][4, 7],
    ]
    np.testing.assert_allclose(
        values.detach().numpy(), torch.stack(expected).numpy(), rtol=1e-5, atol=1e-6
    )


def test_batch_objective_leaves_no_hooks(network: Network) -> None:
    objective = batch_objective(network, TARGETS)
    objective(torch.rand(len(TARGETS), 1, 28, 28))
    assert all(not m._forward_hooks for m in network.module.modules())


def test_batch_objective_checks_the_batch(network: Network) -> None:
    with pytest.raises(ValueError, match="3 images for 5 objectives"):
        batch_objective(network, TARGETS)(torch.rand(3, 1, 28, 28))


def test_gradients_reach_each_image_from_its_own_objective(network: Network) -> None:
    pixels = torch.rand(len(TARGETS), 1, 28, 28, generator=torch.Generator().manual_seed(1))
    pixels.requires_grad_(True)
    values = batch_objective(network, TARGETS)(pixels)
    for i, target in enumerate(TARGETS):
        (grad,) = torch.autograd.grad(values[i], pixels, retain_graph=True)
        per_image = grad.abs().flatten(1).sum(1)
        assert per_image[i] > 0, f"no gradient for {target}"
        assert torch.count_nonzero(per_image[torch.arange(len(TARGETS)) != i]) == 0


# --- one job, and the figures ----------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset(coarse_fashion: FacetDataset) -> FacetDataset:
    return coarse_fashion


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, dataset: FacetDataset) -> Path:
    """A small run: checkpoint, activations and two neurons' facets made by the real stages."""
    folder = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    save_checkpoint(folder / "model.pt", build_architecture({"kind": "embedded"}, 1, 4), {})
    network = load_network({"kind": "embedded"}, (1, 28, 28), 4, folder / "model.pt")
    extract(
        network,
        dataset,
        "classifier.3",
        ["classifier.5", "features.6"],
        folder / "activations.h5",
        batch_size=128,
    )
    neurons = {
        "tops": (
            {"name": "tops", "layer": "classifier.5", "unit": 1, "select": "label", "class": 1},
            3,
        ),
        "ch2": (
            {"name": "ch2", "layer": "features.6", "unit": 2, "spatial": "center", "select": "top"},
            2,
        ),
    }
    with threadpool_limits(1):
        for name, (neuron, k) in neurons.items():
            cfg = {
                "k": k,
                "m": 4,
                "pca_dims": 10,
                "perplexity": 30.0,
                "max_images": 100,
                "top_n": 80,
            }
            discover(
                folder / "activations.h5",
                dataset,
                neuron,
                cfg,
                0,
                folder / "facets" / f"{name}.h5",
                folder / "facets" / f"{name}.json",
            )
    return folder


@pytest.fixture(scope="module")
def trained_network(run_dir: Path) -> Network:
    return load_network({"kind": "embedded"}, (1, 28, 28), 4, run_dir / "model.pt")


@pytest.fixture(scope="module")
def synthesized(run_dir: Path, trained_network: Network) -> dict:
    facets = [run_dir / "facets" / f"{name}.h5" for name in ("tops", "ch2")]
    return job.synthesize_batch(trained_network, facets, "mfv", SETTINGS, 0, run_dir / "synthesis")


def test_synthesize_batch_writes_the_documented_outputs(run_dir: Path, synthesized) -> None:
    assert sorted(p.name for p in (run_dir / "synthesis").iterdir()) == ["ch2", "tops"]
    assert set(synthesized) == {"tops", "ch2"}
    out = run_dir / "synthesis" / "tops"
    assert sorted(p.name for p in out.iterdir()) == [
        "facet_00.png",
        "facet_01.png",
        "facet_02.png",
        "images.h5",
    ]
    facets = read_facets(run_dir / "facets" / "tops.h5")
    with h5py.File(out / "images.h5", "r") as handle:
        assert set(handle) == {"images", "init", "trace", "activation_init", "activation_final"}
        assert handle.attrs["method"] == "mfv"
        images = handle["images"][:]
        assert images.shape == (3, 1, 28, 28)
        assert images.min() >= 0 and images.max() <= 1
        np.testing.assert_array_equal(handle["init"][:], facets["mean_images"])
        assert handle["trace"].shape == (4 + 3 + 1 + 1, 3)  # the 4 octaves at 2 % steps
        final = handle["activation_final"][:]
        initial = handle["activation_init"][:]
    assert synthesized["tops"] == {
        "activation_init": initial.tolist(),
        "activation_final": final.tolist(),
    }
    assert np.all(final > initial)
    for facet, image in enumerate(images):
        path = out / f"facet_{facet:02d}.png"
        assert path.read_bytes()[:8] == PNG_MAGIC
        with Image.open(path) as png:
            assert png.mode == "L" and png.size == (28, 28)
            np.testing.assert_array_equal(np.asarray(png), np.rint(image[0] * 255).astype(np.uint8))


def test_facet_keeping_reads_the_facet_files(
    run_dir: Path, trained_network: Network, tmp_path: Path
) -> None:
    """mfv's facet-keeping term takes each facet's centroid code from its facet file; a file
    from before code_centroids is an error that says to rerun the facets stage."""
    facets = [run_dir / "facets" / f"{name}.h5" for name in ("tops", "ch2")]
    settings = {**SETTINGS, "mfv": {"facet_weight": 3.0}}
    kept = job.synthesize_batch(trained_network, facets, "mfv", settings, 0, tmp_path / "kept")
    assert set(kept) == {"tops", "ch2"}
    old = tmp_path / "old.h5"
    old.write_bytes(facets[0].read_bytes())
    with h5py.File(old, "a") as handle:
        del handle["code_centroids"]
    with pytest.raises(FacetvizError, match="rerun the facets stage"):
        job.synthesize_batch(trained_network, [old], "mfv", settings, 0, tmp_path / "old")
    assert not (tmp_path / "old").exists()


def test_synthesized_activations_are_the_network_values(
    run_dir: Path, trained_network: Network
) -> None:
    with h5py.File(run_dir / "synthesis" / "ch2" / "images.h5", "r") as handle:
        images = torch.from_numpy(handle["images"][:])
        final = handle["activation_final"][:]
    with capture(trained_network.module, ["features.6"]) as out, torch.no_grad():
        trained_network(images)
    np.testing.assert_allclose(final, out["features.6"][:, 2, 3, 3].numpy(), rtol=1e-5, atol=1e-6)


def test_synthesis_is_reproducible(
    run_dir: Path, trained_network: Network, synthesized, tmp_path: Path
) -> None:
    facets = [run_dir / "facets" / f"{name}.h5" for name in ("tops", "ch2")]
    job.synthesize_batch(trained_network, facets, "mfv", SETTINGS, 0, tmp_path / "again")
    for name in ("facet_00.png", "facet_01.png", "facet_02.png"):
        assert (tmp_path / "again" / "tops" / name).read_bytes() == (
            run_dir / "synthesis" / "tops" / name
        ).read_bytes()


def test_an_image_does_not_depend_on_its_batch_mates(
    run_dir: Path, trained_network: Network, synthesized, tmp_path: Path
) -> None:
    """Each image has its own random draws: alone or batched, tops gets the same images."""
    job.synthesize_batch(
        trained_network, [run_dir / "facets" / "tops.h5"], "mfv", SETTINGS, 0, tmp_path
    )
    with (
        h5py.File(tmp_path / "tops" / "images.h5", "r") as alone,
        h5py.File(run_dir / "synthesis" / "tops" / "images.h5", "r") as batched,
    ):
        np.testing.assert_allclose(alone["images"][:], batched["images"][:], atol=1e-4)
    # a different seed gives different images
    job.synthesize_batch(
        trained_network, [run_dir / "facets" / "tops.h5"], "mfv", SETTINGS, 1, tmp_path / "seed1"
    )
    with (
        h5py.File(tmp_path / "seed1" / "tops" / "images.h5", "r") as other,
        h5py.File(tmp_path / "tops" / "images.h5", "r") as alone,
    ):
        assert not np.allclose(other["images"][:], alone["images"][:])


def test_failed_synthesis_leaves_no_output(
    run_dir: Path, trained_network: Network, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real_to_pil = job.to_pil

    def to_pil_failing_on_second(image: np.ndarray) -> Image.Image:
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_to_pil(image)

    monkeypatch.setattr(job, "to_pil", to_pil_failing_on_second)
    out = tmp_path / "synthesis" / "batch"
    with pytest.raises(OSError, match="disk full"):
        job.synthesize_batch(
            trained_network, [run_dir / "facets" / "tops.h5"], "mfv", SETTINGS, 0, out
        )
    assert len(calls) == 2  # it failed after writing one PNG
    assert not out.exists()
    assert list(out.parent.iterdir()) == []


def test_synthesis_replaces_an_old_output(
    run_dir: Path, trained_network: Network, tmp_path: Path
) -> None:
    out = tmp_path / "batch"
    (out / "tops").mkdir(parents=True)
    (out / "tops" / "facet_07.png").write_bytes(b"stale")
    (out / "old-neuron").mkdir()
    job.synthesize_batch(trained_network, [run_dir / "facets" / "tops.h5"], "mfv", SETTINGS, 0, out)
    assert [p.name for p in out.iterdir()] == ["tops"]
    assert sorted(p.name for p in (out / "tops").iterdir()) == [
        "facet_00.png",
        "facet_01.png",
        "facet_02.png",
        "images.h5",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["batch"]


def test_facets_figure_in_png_and_pdf(run_dir: Path, dataset: FacetDataset, synthesized) -> None:
    out = [run_dir / "figures" / "tops.png", run_dir / "figures" / "tops.pdf"]
    facets_figure(
        run_dir / "facets" / "tops.h5", run_dir / "synthesis" / "tops", dataset, out, examples=3
    )
    assert out[0].read_bytes()[:8] == PNG_MAGIC
    assert out[1].read_bytes()[:5] == PDF_MAGIC
    with Image.open(out[0]) as png:
        width, height = png.size
    assert height > width  # 5 rows (facet, mean, 3 examples) of 3 facets
    assert sorted(p.name for p in out[0].parent.iterdir()) == ["tops.pdf", "tops.png"]
    summary = json.loads((run_dir / "facets" / "tops.json").read_text())
    assert len(summary["facets"]) == 3


@pytest.mark.parametrize("neuron", ["tops", "ch2"])
def test_embedding_figure(run_dir: Path, neuron: str, tmp_path: Path) -> None:
    out = tmp_path / f"{neuron}.png"
    embedding_figure(run_dir / "facets" / f"{neuron}.h5", [out])
    assert out.read_bytes()[:8] == PNG_MAGIC
    with Image.open(out) as png:
        assert min(png.size) > 400
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{neuron}.png"]
    with pytest.raises(FacetvizError, match="run the 'facets' stage first"):
        embedding_figure(tmp_path / "missing.h5", [tmp_path / "never.png"])
    assert not (tmp_path / "never.png").exists()


def test_overview_figure(run_dir: Path, synthesized, tmp_path: Path) -> None:
    dirs = [run_dir / "synthesis" / "tops", run_dir / "synthesis" / "ch2"]
    one, two, top = tmp_path / "one.png", tmp_path / "overview.png", tmp_path / "top.png"
    overview_figure(["tops"], dirs[:1], [one])
    overview_figure(["tops", "ch2"], dirs, [two])  # 3 and 2 facets: the short row is padded
    overview_figure(["tops", "ch2"], dirs, [top], max_facets=1, title="hidden units")
    capped = tmp_path / "capped.png"
    overview_figure(["tops", "ch2"], dirs, [capped], max_rows=1)
    for path in (one, two, top, capped):
        assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(one) as a, Image.open(two) as b, Image.open(top) as c:
        assert b.size[1] > a.size[1]
        assert c.size[0] < b.size[0]  # one column instead of three
    with Image.open(capped) as d, Image.open(two) as b:
        assert d.size[1] < b.size[1]  # one row, and a title line saying "first 1 of 2"
    with pytest.raises(ValueError, match="1 synthesis folders for 2 neurons"):
        overview_figure(["tops", "ch2"], dirs[:1], [tmp_path / "never.png"])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["capped.png", "one.png", "overview.png", "top.png"]


def test_methods_figure_has_a_column_per_method(run_dir: Path, synthesized, tmp_path: Path) -> None:
    dirs = [run_dir / "synthesis" / "tops", run_dir / "synthesis" / "ch2"]
    narrow, wide = tmp_path / "one.png", tmp_path / "three.png"
    methods_figure(["tops", "ch2"], {"mfv": dirs}, [narrow])
    methods_figure(["tops", "ch2"], {"mfv": dirs, "a": dirs, "b": dirs}, [wide, tmp_path / "3.pdf"])
    with Image.open(narrow) as a, Image.open(wide) as b:
        assert b.size[0] > 1.2 * a.size[0]  # two more columns
    assert (tmp_path / "3.pdf").read_bytes()[:5] == PDF_MAGIC
    with pytest.raises(ValueError, match="1 folders for 2"):
        methods_figure(["tops", "ch2"], {"mfv": dirs[:1]}, [tmp_path / "never.png"])
    assert not (tmp_path / "never.png").exists()


def test_metrics_figure_with_and_without_synthesis_metrics(tmp_path: Path) -> None:
    table = tmp_path / "table.csv"
    table.write_text(
        "neuron,used,purity,nmi,coverage\n"
        "tops,True,0.8,0.4,1.0\ntops,False,0.7,0.3,1.0\nimagenet-unit,True,,,\n"
    )
    only_facets = tmp_path / "facets.png"
    metrics_figure(table, None, [only_facets])
    summary = {
        method: {
            "fidelity": 0.5,
            "transferability": 0.9,
            "activation_ratio_median": 1.2,
            "mean_diversity": None if method == "plain" else 2.0,  # unmeasured: no bar
        }
        for method in ("mfv", "plain")
    }
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"summary": summary, "units": []}))
    both = tmp_path / "both.png"
    metrics_figure(table, metrics, [both])
    with Image.open(only_facets) as a, Image.open(both) as b:
        assert b.size[0] > 2 * a.size[0]  # three panels instead of one
    with pytest.raises(FacetvizError, match="run the 'synthesis_metrics' stage first"):
        metrics_figure(table, tmp_path / "missing.json", [tmp_path / "never.png"])


def test_index_page_shows_every_facet_of_every_neuron(
    run_dir: Path, dataset: FacetDataset, synthesized, tmp_path: Path
) -> None:
    dirs = [run_dir / "synthesis" / "tops", run_dir / "synthesis" / "ch2"]
    facets = [run_dir / "facets" / "tops.h5", run_dir / "facets" / "ch2.h5"]
    metrics = tmp_path / "metrics.json"
    oracle_says = ["Coat", "Shirt", "Pullover"]
    metrics.write_text(
        json.dumps(
            {
                "summary": {
                    "mfv": dict.fromkeys(
                        (
                            "fidelity",
                            "transferability",
                            "activation_ratio_median",
                            "mean_diversity",
                        ),
                        0.5,
                    )
                },
                "units": [{"method": "mfv", "neuron": "tops", "predicted": oracle_says}],
            }
        )
    )
    out = tmp_path / "index.html"
    write_index("small", facets, {"mfv": dirs, "copy": dirs}, dataset, out, 2, metrics)
    page = out.read_text()
    assert page.count('<section class="neuron"') == 2
    # tops: 3 facets x (2 methods + 2 real images); ch2: 2 facets x 4
    tops, ch2 = page.split('<section class="neuron"')[1:]
    assert tops.count("<img ") == 3 * 4 and ch2.count("<img ") == 2 * 4
    assert all(f"oracle: {name}" in tops for name in oracle_says)
    assert "oracle:" not in ch2
    assert "http" not in page and 'src="data:image/png;base64,' in page  # nothing outside
    for uri in page.split('src="')[1:]:
        encoded = uri.split('"')[0].removeprefix("data:image/png;base64,")
        assert base64.b64decode(encoded)[:8] == PNG_MAGIC
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html", "metrics.json"]


def test_failed_figure_leaves_no_file(
    run_dir: Path, dataset: FacetDataset, synthesized, tmp_path: Path
) -> None:
    out = tmp_path / "figure.notaformat"  # matplotlib fails while saving, after drawing
    with pytest.raises(ValueError, match="notaformat"):
        facets_figure(
            run_dir / "facets" / "tops.h5", run_dir / "synthesis" / "tops", dataset, [out]
        )
    with pytest.raises(FacetvizError, match="run the 'synthesize' stage first"):
        facets_figure(
            run_dir / "facets" / "tops.h5", tmp_path / "missing", dataset, [tmp_path / "fig.png"]
        )
    assert list(tmp_path.iterdir()) == []
