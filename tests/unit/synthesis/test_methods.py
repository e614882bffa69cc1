"""The synthesis methods: each one's behaviour, their registry, settings and plug-ins."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, replace

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO, learned_prior_task, make_task, prior_method, prior_settings
from plugin_method import PLUGIN

from facetviz.core.errors import ConfigError, FacetvizError
from facetviz.model.networks import Network, capture
from facetviz.synthesis import methods
from facetviz.synthesis.methods import Context, Method, Task
from facetviz.synthesis.objectives import Forward, Unit, facet_distance, units
from facetviz.synthesis.render import CodeSteps, _gradient, code_ascent


def run(method: str, network: Network, task: Task, steps_scale: float, **settings):
    """`method` with its defaults and `settings`, on `task`: (result, start images)."""
    cls = methods.method_class(method)
    instance = cls(methods.method_settings(method, settings), Context(network, steps_scale))
    return instance.run(task)


def codes(network: Network, images: torch.Tensor) -> torch.Tensor:
    with capture(network.module, ["classifier.3"]) as out, torch.no_grad():
        network(images)
    return out["classifier.3"].flatten(1)


# the learned priors need a generator and the facets' real images: tested below
PIXEL_METHODS = [name for name in methods.BUILT_IN if not methods.learned_prior([name])]


def task_for(method: str, seed: int = 0) -> Task:
    """make_task, whose units' scale is 1; `vit` weighs its TV penalty in the units' scale, so
    it gets the random network's (its activations are ~0.1), or TV would outweigh the unit."""
    task = make_task(seed=seed)
    return replace(task, unit_scales=torch.full((4,), 0.1)) if method == "vit" else task


@pytest.mark.parametrize("method", PIXEL_METHODS)
def test_every_method_raises_activation_and_is_reproducible(
    random_network: Network, method: str
) -> None:
    task = task_for(method)
    result, start = run(method, random_network, task, 0.04)
    assert result.images.shape == task.mean_images.shape
    assert result.images.min() >= 0 and result.images.max() <= 1
    objective, forward = units(task.units), Forward(random_network)
    with torch.no_grad():
        gain = forward(objective, result.images) - forward(objective, start)
    assert (gain > 0).float().mean() >= 0.75, gain  # a few steps: most images improve
    again, _ = run(method, random_network, task_for(method), 0.04)
    assert torch.equal(result.images, again.images)
    other, _ = run(method, random_network, task_for(method, seed=1), 0.04)
    if method != "mfv":  # mfv from the mean image still differs by its jitter draws
        assert not torch.equal(result.images, other.images)


def test_mfv_starts_from_the_mean_images_and_cbr_from_gray(random_network: Network) -> None:
    task = make_task()
    _, start = run("mfv", random_network, task, 0.01)
    assert torch.equal(start, task.mean_images)
    _, gray = run("cbr", random_network, make_task(), 0.01)
    assert abs(float(gray.mean()) - 175 / 255) < 0.01 and 0.02 < float(gray.std()) < 0.05


def test_mfv_start_nearest_starts_from_the_nearest_real_images(random_network: Network) -> None:
    """`start: nearest` starts where the nearest_real reference stands, and raises the unit."""
    # smooth starts, as the mean images are (the TV step would first smooth a noise start)
    task = make_task()
    task = replace(task, nearest_images=task.mean_images.flip(0))
    result, start = run("mfv", random_network, task, 0.04, start="nearest")
    assert torch.equal(start, task.nearest_images)
    objective, forward = units(task.units), Forward(random_network)
    with torch.no_grad():
        gain = forward(objective, result.images) - forward(objective, start)
    assert (gain > 0).float().mean() >= 0.75, gain
    with pytest.raises(ConfigError, match=r"synthesis.mfv.start: 'medoid' is not one of"):
        methods.method_settings("mfv", {"start": "medoid"})


def test_diversity_term_spreads_a_units_images(random_network: Network) -> None:
    """The same unit and start for 4 images: with the term their codes end up less alike."""

    def similarity(images: torch.Tensor) -> float:
        normed = torch.nn.functional.normalize(codes(random_network, images), dim=1)
        pairs = normed @ normed.T
        return float((pairs.sum() - pairs.diagonal().sum()) / 12)

    def task() -> Task:
        base = make_task()
        return Task([Unit("classifier.5", 1)] * 4, torch.rand(4, 1, 28, 28), [slice(0, 4)],
                    base.generators, "classifier.3", [True] * 4, base.centroid_codes,
                    base.unit_scales, base.nearest_images, [])  # fmt: skip

    plain, _ = run("fourier", random_network, task(), 1.0, steps=40)
    diverse, _ = run("diversity", random_network, task(), 1.0, steps=40, weight=50.0)
    assert similarity(diverse.images) < similarity(plain.images)


def test_cbr_probability_octaves_apply_to_class_units_only(random_network: Network) -> None:
    """A hidden unit has no class distribution: it keeps its activation in every octave."""
    task = make_task()  # images 0, 1: a class unit; 2, 3: a conv unit
    cbr = methods.method_class("cbr")(methods.method_settings("cbr", {}), Context(random_network))
    objective = cbr.objective(task)["probability"]
    expected = units([u.as_kind("probability") for u in task.units[:2]] + list(task.units[2:]))
    forward = Forward(random_network)
    with torch.no_grad():
        torch.testing.assert_close(
            forward(objective, task.mean_images), forward(expected, task.mean_images)
        )


def test_facet_keeping_term_pulls_the_code_towards_the_centroid(random_network: Network) -> None:
    """Centroids taken from other images: with the term the codes end nearer them."""
    other = codes(random_network, make_task().mean_images.roll(1, 0))

    def distance(images: torch.Tensor) -> float:
        outputs = {"classifier.3": codes(random_network, images)}
        return float(facet_distance("classifier.3", other)(outputs).mean())

    paper, _ = run("mfv", random_network, make_task(centroid_codes=other), 0.05)
    kept, _ = run("mfv", random_network, make_task(centroid_codes=other), 0.05, facet_weight=50.0)
    assert distance(kept.images) < distance(paper.images)
    # the objective is the unit's minus the term: at the centroid's own image the term is zero
    centred = make_task()
    centred = make_task(centroid_codes=codes(random_network, centred.mean_images))
    mfv = methods.method_class("mfv")(
        methods.method_settings("mfv", {"facet_weight": 50.0}), Context(random_network)
    )
    forward = Forward(random_network)
    with torch.no_grad():
        torch.testing.assert_close(
            forward(mfv.objective(centred)["activation"], centred.mean_images),
            forward(units(centred.units), centred.mean_images),
            atol=1e-4,
            rtol=0,
        )


def test_facet_keeping_term_is_in_the_units_scale(random_network: Network) -> None:
    """Scaling a unit's activation scale and the weight inversely gives the same images."""
    other = codes(random_network, make_task().mean_images.roll(1, 0))

    def images(weight: float, scale: float) -> torch.Tensor:
        task = make_task(centroid_codes=other)
        task = replace(task, unit_scales=torch.full((4,), scale))
        return run("mfv", random_network, task, 0.02, facet_weight=weight)[0].images

    torch.testing.assert_close(images(2.0, 5.0), images(5.0, 2.0))
    assert not torch.equal(images(2.0, 5.0), images(2.0, 1.0))


def test_facet_weight_zero_is_the_papers_mfv(random_network: Network) -> None:
    """Weight 0 ignores the centroids: other centroids give the very same images."""
    assert methods.method_settings("mfv", {}).facet_weight == 0.0
    other = codes(random_network, make_task().mean_images.roll(1, 0))
    with_other, _ = run("mfv", random_network, make_task(centroid_codes=other), 0.02)
    default, _ = run("mfv", random_network, make_task(), 0.02)
    assert torch.equal(with_other.images, default.images)


# --- settings and the registry ----------------------------------------------------------------


def test_unknown_method_or_setting_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="unknown method 'dream'.*synthesis.plugins"):
        methods.method_settings("dream", None)
    with pytest.raises(ConfigError, match=r"synthesis.hand: unknown setting\(s\) blur"):
        methods.method_settings("hand", {"blur": 2})


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"blur_every": -1}, r"synthesis.hand.blur_every: -1 is less than the minimum of 0"),
        ({"steps": "many"}, r"synthesis.hand.steps: 'many' is not of type 'integer'"),
        ({"step_size": 0}, r"synthesis.hand.step_size: 0 is less than or equal to the minimum"),
        ({"clip_percentile": 120}, r"synthesis.hand.clip_percentile: 120 is greater than"),
    ],
)
def test_method_settings_are_validated_by_their_class(block: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        methods.method_settings("hand", block)


def test_settings_keep_their_declared_types() -> None:
    settings = methods.method_settings("mfv", {"facet_weight": 3})
    assert settings.facet_weight == 3.0 and isinstance(settings.facet_weight, float)
    assert methods.method_settings("plain", {}) == methods.method_class("plain").Settings()


def test_check_synthesis_resolves_methods_and_blocks() -> None:
    synthesis = {"methods": ["mfv", "plain"], "plugins": [], "steps_scale": 1.0,
                 "mfv": {"facet_weight": 2.0}, "hand": {"steps": 3}}  # fmt: skip
    resolved = methods.check_synthesis(synthesis)
    assert list(resolved) == ["mfv", "plain"] and resolved["mfv"].facet_weight == 2.0
    with pytest.raises(ConfigError, match="synthesis.stepz: neither a setting"):
        methods.check_synthesis({**synthesis, "stepz": {}})
    with pytest.raises(ConfigError, match=r"synthesis.hand: unknown setting\(s\) step\b"):
        methods.check_synthesis({**synthesis, "hand": {"step": 3}})


def test_a_plugin_module_registers_a_method(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "lab_methods.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(methods.base, "REGISTRY", dict(methods.REGISTRY))
    methods.load_plugins(["lab_methods"])
    assert methods.is_plugin("toy") and not methods.is_plugin("mfv")
    assert methods.method_settings("toy", {"steps": 2}).steps == 2
    with pytest.raises(ConfigError, match="cannot import 'no_such_lab'.*PYTHONPATH"):
        methods.load_plugins(["no_such_lab"])
    sys.modules.pop("lab_methods", None)


def test_two_methods_of_one_name_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(methods.base, "REGISTRY", dict(methods.REGISTRY))

    @dataclass(frozen=True)
    class CopySettings:
        steps: int = methods.setting(1, "steps")

    class Copy(Method):
        name, summary, Settings = "mfv", "another mfv", CopySettings

    with pytest.raises(ConfigError, match="'mfv' is defined twice"):
        methods.register(Copy)


def lab_method(name: str, cls_name: str = "Lab", **attributes) -> type[Method]:
    """A method class named `cls_name` (a plug-in's, by its module), not registered."""

    @dataclass(frozen=True)
    class LabSettings:
        steps: int = methods.setting(1, "steps")

    body = {"name": name, "summary": "a lab's", "Settings": LabSettings, **attributes}
    return type(cls_name, (methods.Method,), {**body, "__module__": "lab_methods"})


def test_a_plugin_reusing_a_built_in_name_must_say_it_replaces_it(monkeypatch) -> None:
    """Not even under the built-in's class name (which `register` once took for the same
    class); with `replaces = True` it takes the name, and the jobs import its module."""
    monkeypatch.setattr(methods.base, "REGISTRY", dict(methods.REGISTRY))
    twin = lab_method("mfv", cls_name=methods.method_class("mfv").__qualname__)
    with pytest.raises(ConfigError, match=r"'mfv' is defined twice: .*mfv\.Mfv \(built in\)"):
        methods.register(twin)
    assert methods.method_class("mfv").__module__ == "facetviz.synthesis.methods.mfv"
    replacing = methods.register(lab_method("mfv", replaces=True))
    assert methods.method_class("mfv") is replacing and methods.is_plugin("mfv")
    assert methods.register(replacing) is replacing  # its module imported again: the same class


@pytest.mark.parametrize("name", ["..", ".", "", "a b", "-x", "1st", "x'y", "a/b", "é", None])
def test_a_method_name_that_is_not_plain_is_refused(monkeypatch, name) -> None:
    monkeypatch.setattr(methods.base, "REGISTRY", dict(methods.REGISTRY))
    with pytest.raises(ConfigError, match=r"a method's name is a letter"):
        methods.register(lab_method(name))
    assert name not in methods.base.REGISTRY


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"a=b": "x.pt"}, "input name 'a=b' is not a Python identifier"),
        ({"my input": "x.pt"}, "input name 'my input' is not a Python identifier"),
        ({"weights": "x.pt"}, "input name 'weights' is taken by the synthesize rule"),
        ({"facets": "x.pt"}, "input name 'facets' is taken by the synthesize rule"),
    ],
)
def test_input_names_are_checked(monkeypatch, inputs: dict, message: str) -> None:
    monkeypatch.setattr(methods.base, "REGISTRY", dict(methods.REGISTRY))
    with pytest.raises(ConfigError, match=message):
        methods.register(lab_method("lab", inputs=inputs))
    # inputs a setting adds (`required_inputs`) are checked when the config is
    adds = classmethod(lambda cls, settings: inputs)
    methods.register(lab_method("lab", required_inputs=adds))
    synthesis = {"methods": ["lab"], "plugins": [], "steps_scale": 1.0}
    with pytest.raises(ConfigError, match=message):
        methods.check_synthesis(synthesis)


def test_plain_names_are_registered(monkeypatch) -> None:
    monkeypatch.setattr(methods.base, "REGISTRY", dict(methods.REGISTRY))
    for name in ("lab-toy", "Lab_2", "x"):
        methods.register(lab_method(name, cls_name=f"Lab{len(name)}", inputs={"code_2": "a.pt"}))
    assert {"lab-toy", "Lab_2", "x"} <= set(methods.base.REGISTRY)


def method_table(path) -> dict[str, dict]:
    """The rows of the Markdown table headed `| method | defaults |`: name -> defaults."""
    table = path.read_text().split("| method | defaults |", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)` \| `(\{.*?\})` \|", table, re.M)
    return {name: yaml.safe_load(defaults) for name, defaults in rows}


def test_config_readme_lists_every_method_with_its_defaults() -> None:
    documented = method_table(REPO / "config" / "README.md")
    assert documented == {name: methods.defaults(methods.method_class(name).Settings)
                          for name in methods.BUILT_IN}  # fmt: skip


def test_readme_method_table_is_each_methods_summary() -> None:
    """README.md's `| method | what it does |` table: every built-in method, in order, in its
    `summary`'s words (config/README.md's table is generated from them: facetviz.config_docs)."""
    text = (REPO / "README.md").read_text()
    assert "| method | what it does |" in text, "README.md has no method table"
    table = text.split("| method | what it does |", 1)[1].split("\n\n", 1)[0]
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| (.*) \|$", table, re.M))
    assert list(rows) == list(methods.BUILT_IN)
    for name, words in rows.items():
        summary = methods.method_class(name).summary
        assert words == summary, f"README.md's row of {name} is not {name}.summary: {summary}"


def reordered(task: Task, order: list[int], groups: list[slice]) -> Task:
    """`task`'s images in another order (each keeps its generator, unit and start)."""
    pick = torch.tensor(order)
    return Task(
        [task.units[i] for i in order], task.mean_images[pick], groups,
        [task.generators[i] for i in order], task.facet_layer,
        [task.class_units[i] for i in order], task.centroid_codes[pick], task.unit_scales[pick],
        task.nearest_images[pick], [],
    )  # fmt: skip


@pytest.mark.reproducibility
@pytest.mark.parametrize("kernels", ["same", "other"])
@pytest.mark.parametrize("order", [[0, 1, 2, 3], [2, 3, 0, 1]], ids=["first", "last"])
def test_image_results_do_not_depend_on_batch_mates(
    random_network: Network, threads: int, order: list[int], kernels: str
) -> None:
    """cbr on 4 images and on 2 of them alone, 12 steps.

    Exactly equal: each image's start (gray + noise from its own generator) and its random
    draws (every generator has made the same draws at the end). Equal to float precision: the
    gradient each image's step follows (an image's objective and its gradient are its own).
    Not exactly equal: the optimized floats. A convolution over 4 images and over 2 need not
    take the same kernel path (batch size, thread count and the CPU's instruction set choose
    it), so sums differ in the last bits, and the random network's max-pools and ReLUs on
    smooth images are full of near-ties: a 1e-7 change of a crop flips one and moves the next
    gradient by 5 %, which normalized steps carry on. Measured: `other` (oneDNN's convolutions
    off for the batch) mean pixel difference 4e-5 (2026-12-01); on an AMD EPYC (2026-12-02)
    `same` gives mean 0.013, max 0.23 at 1 and 2 threads, one image of the two moving. What a
    user reads must agree, with margin over that: the unit's final activation within 2 %, the
    network's class the same, the mean pixel within 0.05.
    """
    settings = methods.method_settings("cbr", {})
    cbr = methods.method_class("cbr")(settings, Context(random_network, 0.02))
    alone = reordered(make_task(), [0, 1], [slice(0, 2)])
    together = reordered(make_task(), order, [slice(0, 2), slice(2, 4)])
    mates = [order.index(0), order.index(1)]
    a, start_a = cbr.run(alone)
    torch.backends.mkldnn.enabled = kernels == "same"
    try:
        b, start_b = cbr.run(together)
        _, gradient_b = _gradient(Forward(random_network), units(together.units), start_b)
    finally:
        torch.backends.mkldnn.enabled = True
    assert torch.equal(start_a, start_b[mates])
    for g_alone, position in zip(alone.generators, mates, strict=True):
        assert torch.equal(g_alone.get_state(), together.generators[position].get_state())
    forward, objective = Forward(random_network), units(alone.units)
    with torch.no_grad():
        value_a = forward(objective, a.images)
        value_b = forward(objective, b.images[mates])
        classes_a = random_network(a.images).argmax(1)
        classes_b = random_network(b.images[mates]).argmax(1)
    torch.testing.assert_close(value_a, value_b, rtol=0.02, atol=0.0)
    assert torch.equal(classes_a, classes_b)
    assert (a.images - b.images[mates]).abs().mean() < 0.05
    _, gradient_a = _gradient(forward, objective, start_a)
    torch.testing.assert_close(gradient_b[mates], gradient_a, rtol=1e-5,
                               atol=1e-5 * gradient_a.abs().max().item())  # fmt: skip


# --- the learned priors ---------------------------------------------------------------------


@pytest.fixture
def prior_task(small_run):
    return learned_prior_task(small_run)


def chain(name, network, generator, dataset, task, **settings):
    method = prior_method(name, network, generator, dataset, **settings)
    image = method.parameterization(task)
    return method, image, method.optimize(task, image, method.objective(task))


@pytest.mark.usefixtures("one_thread")
def test_dgn_raises_the_unit_from_the_facets_codes_and_stays_in_bounds(
    small_run_network, small_generator, coarse_fashion, prior_task
) -> None:
    forward, objective = Forward(small_run_network), units(prior_task.units)
    method, image, result = chain("dgn", small_run_network, small_generator, coarse_fashion,
                                  prior_task, steps=30, facet_constraint="none")  # fmt: skip
    G = image.generator
    torch.testing.assert_close(image.start, G(G.clip(image.facets.mode)))  # the default start
    centred = prior_method("dgn", small_run_network, small_generator, coarse_fashion,
                           init="centroid").parameterization(prior_task)  # fmt: skip
    torch.testing.assert_close(centred.start, G(G.clip(centred.facets.centroid)))
    with torch.no_grad():
        gain = forward(objective, result.images) - forward(objective, image.start)
    assert torch.all(gain > 0), gain
    assert torch.all(image.codes <= G.upper + 1e-6) and torch.all(image.codes >= G.lower - 1e-6)
    _, _, repeat = chain("dgn", small_run_network, small_generator, coarse_fashion,
                         learned_prior_task(small_generator.parent.parent),
                         steps=30, facet_constraint="none")  # fmt: skip
    assert torch.equal(result.images, repeat.images)  # same seed, same image


@pytest.mark.usefixtures("one_thread")
def test_ppgn_and_dgn_released_start_where_they_were_measured_from_the_centroid(
    small_run_network, small_generator, coarse_fashion, prior_task
) -> None:
    for name in ("ppgn", "dgn_released"):
        method = prior_method(name, small_run_network, small_generator, coarse_fashion)
        image = method.parameterization(prior_task)
        G, facets = image.generator, image.facets
        assert not torch.allclose(facets.mode, facets.centroid)  # the two starts differ here
        torch.testing.assert_close(image.start, G(G.clip(facets.centroid)))


@pytest.mark.usefixtures("one_thread")
def test_the_facet_constraint_holds_each_code_near_its_start(
    small_run_network, small_generator, coarse_fashion, prior_task
) -> None:
    # from the centroid, which the trust region and the cone are then centred on
    _, free, _ = chain("dgn", small_run_network, small_generator, coarse_fashion, prior_task,
                       steps=30, facet_constraint="none", lr_start=0.5, lr_end=0.5,
                       init="centroid")  # fmt: skip
    _, held, _ = chain("dgn", small_run_network, small_generator, coarse_fashion, prior_task,
                       steps=30, facet_constraint="trust_region", radius_scale=0.25,
                       lr_start=0.5, lr_end=0.5, init="centroid")  # fmt: skip
    radius = 0.25 * held.facets.radius
    moved = (held.codes - held.facets.centroid).norm(dim=1)
    assert torch.all(moved <= radius * 1.001 + 1e-5)
    assert torch.any((free.codes - free.facets.centroid).norm(dim=1) > radius)
    # the default, a cone around the start code's direction: each step projects onto it and
    # then clips to the code bounds (the clip can turn a code a little out of a cone this
    # narrow), so the codes turn far less than free ones, not exactly within the half-angle
    method, coned, _ = chain("dgn", small_run_network, small_generator, coarse_fashion,
                             prior_task, steps=30, lr_start=0.5, lr_end=0.5,
                             init="centroid")  # fmt: skip
    half_angle = method.settings.radius_scale * coned.facets.angle
    start = coned.generator.clip(coned.facets.centroid)  # the cone's axis: the start code

    def angle(codes: torch.Tensor) -> torch.Tensor:
        cosine = torch.nn.functional.cosine_similarity(codes, start, dim=1)
        return torch.arccos(cosine.clamp(-1, 1))

    assert torch.all(angle(coned.codes) < angle(free.codes) / 5)
    assert torch.all(angle(free.codes) > half_angle * 10)


@pytest.mark.usefixtures("one_thread")
def test_each_term_of_the_sampler_alone(
    small_run_network, small_generator, coarse_fashion, prior_task
) -> None:
    """eps2 alone raises the unit's log-probability; eps1 alone moves h towards E(G(h)) (the
    joint model's fixed points); eps3 alone is noise: it moves h and depends on the seed."""
    common = {"steps": 20, "facet_constraint": "none", "epsilon1": 0.0, "epsilon2": 0.0,
              "epsilon3": 0.0, "lr_start": 0.05, "lr_end": 0.05}  # fmt: skip
    method, image, result = chain("ppgn", small_run_network, small_generator, coarse_fashion,
                                  prior_task, **{**common, "epsilon2": 1.0})  # fmt: skip
    forward = Forward(small_run_network)
    with torch.no_grad():
        objective = method.objective(prior_task)
        assert torch.all(forward(objective, result.images) > forward(objective, image.start))

    def prior_gap(codes):
        with torch.no_grad(), capture(small_run_network.module, ["classifier.3"]) as outputs:
            small_run_network(image.generator(codes))
        return (outputs["classifier.3"] - codes).norm(dim=1)

    _, prior_only, _ = chain("ppgn", small_run_network, small_generator, coarse_fashion,
                             prior_task, **{**common, "epsilon1": 1.0})  # fmt: skip
    assert prior_gap(prior_only.codes).mean() < prior_gap(prior_only.facets.centroid).mean()
    _, noisy, _ = chain("ppgn", small_run_network, small_generator, coarse_fashion, prior_task,
                        **{**common, "epsilon3": 1.0})  # fmt: skip
    _, other, _ = chain("ppgn", small_run_network, small_generator, coarse_fashion,
                        learned_prior_task(small_generator.parent.parent, seed=1),
                        **{**common, "epsilon3": 1.0})  # fmt: skip
    assert not torch.equal(noisy.codes, noisy.facets.centroid)
    assert not torch.equal(noisy.codes, other.codes)


@pytest.mark.usefixtures("one_thread")
def test_ppgn_with_the_dae_prior_follows_the_autoencoder(
    small_run_network, small_generator, coarse_fashion, prior_task, tmp_path
) -> None:
    """`prior: dae` needs the code prior (rule code_prior) as an input, and its term alone
    moves h towards what the DAE reconstructs: R(h) - h shrinks along the chain."""
    from facetviz.priors.training import encode, fit_dae, save_prior
    from facetviz.synthesis import methods

    settings = methods.method_settings("ppgn", {"prior": "dae"})
    assert methods.method_class("ppgn").required_inputs(settings) == {
        "generator": "priors/generator.pt", "dae": "priors/dae.pt"
    }  # fmt: skip
    images = coarse_fashion.pixels(np.arange(len(coarse_fashion)))
    codes = encode(small_run_network, images, "classifier.3")
    dae = fit_dae(codes, prior_settings(dae_epochs=20), seed=0)
    save_prior(tmp_path / "dae.pt", dae, {"code_layer": "classifier.3"})
    context = methods.Context(
        small_run_network, 1.0, False, {"generator": small_generator, "dae": tmp_path / "dae.pt"},
        dataset=lambda: coarse_fashion,
    )  # fmt: skip
    alone = {"steps": 20, "facet_constraint": "none", "epsilon2": 0.0, "epsilon3": 0.0,
             "lr_start": 0.002, "lr_end": 0.002, "prior": "dae", "epsilon1": 1.0}  # fmt: skip
    # (small steps: a normalized step has one size, and a large one overshoots R's fixed point)
    method = methods.method_class("ppgn")(methods.method_settings("ppgn", alone), context)
    image = method.parameterization(prior_task)
    start = image.codes.clone()
    method.optimize(prior_task, image, method.objective(prior_task))
    with torch.no_grad():
        gap = lambda h: (dae(h) - h).norm(dim=1)  # noqa: E731
        assert gap(image.codes).mean() < gap(start).mean()
    assert not torch.equal(image.codes, start)


@pytest.mark.usefixtures("one_thread")
def test_ppgn_without_prior_and_noise_is_plain_ascent_in_code_space(
    small_run_network, small_generator, coarse_fashion, prior_task
) -> None:
    settings = {"steps": 10, "epsilon1": 0.0, "epsilon3": 0.0, "save_every": 5, "facet_weight": 0}
    method, image, result = chain("ppgn", small_run_network, small_generator, coarse_fashion,
                                  prior_task, **settings)  # fmt: skip
    start = method.parameterization(learned_prior_task(small_generator.parent.parent))
    plain = code_ascent(Forward(small_run_network), method.objective(prior_task), start,
                        CodeSteps(10, (1.0, 1.0), jitter_pixels=1), start_generators(),
                        project=method.constraint(start))  # fmt: skip
    assert torch.equal(result.images, plain.images)
    assert result.samples.shape == (2, *result.images.shape)  # the chain, every 5 steps
    assert not torch.equal(result.samples[0], result.samples[1])


def start_generators():
    from conftest import SMALL_RUN_NEURONS

    from facetviz.synthesis.job import image_seed

    counts = {"tops": 3, "ch2": 2}
    return [torch.Generator().manual_seed(image_seed(0, n, i)) for n in SMALL_RUN_NEURONS
            for i in range(counts[n])]  # fmt: skip


@pytest.mark.usefixtures("one_thread")
def test_a_generator_of_another_code_layer_is_refused_before_any_step(
    small_run_network, coarse_fashion, prior_task, tmp_path
) -> None:
    from facetviz.priors.networks import Generator
    from facetviz.priors.training import save_prior

    save_prior(tmp_path / "g.pt", Generator(64, (1, 28, 28), 8), {"code_layer": "classifier.3"})
    method = prior_method("dgn", small_run_network, tmp_path / "g.pt", coarse_fashion)
    with pytest.raises(FacetvizError, match="inverts 64 units of layer 'classifier.3'.*256"):
        method.run(prior_task)


@pytest.mark.usefixtures("one_thread")
def test_the_generators_reference_draws_the_centroids(
    small_run_network, small_generator, coarse_fashion, prior_task
) -> None:
    reference = prior_method("g_centroid", small_run_network, small_generator, coarse_fashion)
    result, start = reference.run(prior_task)
    # where ppgn starts (dgn starts at the mode)
    ppgn = prior_method("ppgn", small_run_network, small_generator, coarse_fashion)
    torch.testing.assert_close(result.images, ppgn.parameterization(prior_task).start)
    assert torch.equal(result.images, start) and result.trace.shape == (1, 5)
