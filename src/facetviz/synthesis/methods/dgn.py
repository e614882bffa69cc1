"""`dgn`: DGN-AM (Nguyen et al. 2016), a learned prior. Activation maximization of the unit on
G(h) over the code h of a generator trained to invert the visualized network (rule generator),
so every step stays on the images G can draw.

As the released `act_max.py`: each step is normalized by the mean |gradient| and scaled by a
learning rate that changes linearly over the steps, h decays by `decay` and is clipped per unit to
the training codes' [0, mean + 3σ]; G's output is jittered before the network sees it.

Multifaceted: each facet's code starts at its facet (by default its members' mode, mean shift
from their mean code to the local mean of the facet's densest part; or the mean code itself,
MFV's mean-image initialization carried into code space; or its nearest real image's code) and
stays there under a facet constraint: a cone around the start code's direction whose
half-angle is `radius_scale` × the median angle of the facet's members to their centroid (the
default), or a trust region around it whose radius is `radius_scale` × their median distance to
it. Each step projects onto the region and then clips to the code bounds, so where it crosses a
bound the code ends slightly outside it. Unconstrained (`facet_constraint: none`, `init:
random`, lr 8 -> 0 in the released code) the unit's strongest mode absorbs every facet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch

from facetviz.core.errors import FacetvizError
from facetviz.priors.training import load_prior
from facetviz.synthesis.code_space import FacetCodes, cone, facet_codes, trust_region
from facetviz.synthesis.methods.base import Context, Method, Task, register, setting
from facetviz.synthesis.objectives import Objective, facet_distance, units
from facetviz.synthesis.param import GeneratorImage
from facetviz.synthesis.render import CodeSteps, Result, code_ascent

INITS = ["centroid", "mode", "nearest", "random"]
CONSTRAINTS = ["trust_region", "cone", "none"]


@dataclass(frozen=True)
class Settings:
    # a mixed facet's centroid lies between its kinds and G draws it as a blend; the mode keeps
    # one kind (the variants measured: docs/results.md, "Learned priors")
    init: str = setting(
        "mode",
        "start code: the facet's mode (mean shift over its members' codes), its mean code "
        "(centroid), its nearest real image's code (nearest), or random (the released default)",
        enum=INITS,
    )
    mode_bandwidth: float = setting(
        0.2, "init mode's kernel width, in units of the facet members' median angle to their "
        "centroid (small: one member's neighbourhood; large: the centroid)", exclusiveMinimum=0,
    )  # fmt: skip
    steps: int = setting(200, "steps (released: 200)", minimum=1)
    lr_start: float = setting(
        0.05, "step size at the first step, in units of the training codes' mean |h|",
        exclusiveMinimum=0,
    )  # fmt: skip
    lr_end: float = setting(0.05, "step size at the last step (linear in between)", minimum=0)
    decay: float = setting(0.0, "L2 decay of h per step (released: 0.01)", minimum=0, maximum=1)
    jitter: int = setting(1, "random translation of G(h) in pixels", minimum=0)
    # a cone keeps the facet where a ball must be too small to let the activation rise (on the
    # default run a ball of 0.5 lost footwear's sneakers), and the facet-keeping term holds the
    # code's direction inside it; the cone's size is the smallest that lifts every replicate's
    # activation above the facet's best real image (docs/results.md, "Learned priors")
    facet_constraint: str = setting("cone", "what keeps each code in its facet", enum=CONSTRAINTS)
    radius_scale: float = setting(
        0.20, "the constraint's size, in units of the facet members' median distance (trust "
        "region) or angle (cone) to their centroid", exclusiveMinimum=0,
    )  # fmt: skip
    facet_weight: float = setting(
        2.0, "mfv's facet-keeping term in code space: the objective loses weight × the unit's "
        "mean activation × the cosine distance of E(G(h)) to the facet's centroid code",
        minimum=0,
    )  # fmt: skip


def load_generator(context: Context, task: Task) -> torch.nn.Module:
    """The run's generator (method input `generator`), checked against the network."""
    shape = tuple(task.mean_images.shape[1:])
    G = load_prior(context.inputs["generator"], "generator", context.network, shape)
    return G.to(task.mean_images.device)


def task_codes(
    context: Context, task: Task, G: torch.nn.Module, mode_bandwidth: float
) -> FacetCodes:
    """Every facet of the task in G's code space, from its member images."""
    if not task.records:
        raise FacetvizError("the learned-prior methods need the facet files of their neurons")
    dataset, network = context.open_dataset(), context.network
    codes = facet_codes(task.records, dataset, network, G.code_layer, mode_bandwidth)
    return codes.to(task.mean_images.device)


class FacetGeneratorImage(GeneratorImage):
    """G(h), each h started at and held in its facet."""

    def __init__(self, generator: torch.nn.Module, codes: torch.Tensor, facets: FacetCodes):
        super().__init__(generator, codes)
        self.facets = facets


@register
class Dgn(Method):
    name = "dgn"
    summary = (
        "DGN-AM (Nguyen et al. 2016), a learned prior: ascent on the code h of a generator G "
        "trained in the pipeline to invert the network (rule `generator`), from each facet's "
        "mode in code space, each code held in a cone around it (normalized steps, code clipped "
        "to the training codes' [0, mean + 3σ], jittered G(h))"
    )
    Settings = Settings
    inputs = {"generator": "priors/generator.pt"}

    def parameterization(self, task: Task) -> FacetGeneratorImage:
        G = load_generator(self.context, task)
        codes = task_codes(self.context, task, G, self.settings.mode_bandwidth)
        return FacetGeneratorImage(G, G.clip(self.start_codes(task, G, codes)), codes)

    def start_codes(self, task: Task, G: torch.nn.Module, codes: FacetCodes) -> torch.Tensor:
        if self.settings.init == "mode":
            return codes.mode
        if self.settings.init == "centroid":
            return codes.centroid
        if self.settings.init == "nearest":
            return codes.nearest
        draws = torch.stack([torch.randn(G.code_dim, generator=g) for g in task.generators])
        return draws.to(codes.centroid.device).abs() * G.scale  # released N(0, 1), our scale

    def objective(self, task: Task) -> Objective:
        return units(task.units)  # the facet-keeping term, if any, joins in `optimize`

    def constraint(self, image: FacetGeneratorImage) -> Callable | None:
        facets, scale = image.facets, self.settings.radius_scale
        if self.settings.facet_constraint == "trust_region":
            return partial(trust_region, centre=image.codes, radius=scale * facets.radius)
        if self.settings.facet_constraint == "cone":
            return partial(cone, centre=image.codes, angle=scale * facets.angle)
        return None

    def schedule(self) -> CodeSteps:
        s = self.settings
        return CodeSteps(self.context.steps(s.steps), (s.lr_start, s.lr_end), s.decay, s.jitter)

    def keeping(self, task: Task, image: FacetGeneratorImage, objective: Objective) -> Objective:
        if self.settings.facet_weight <= 0:
            return objective
        weight = self.settings.facet_weight * task.unit_scales.abs()
        layer = image.generator.code_layer
        # held to where it started: a mode start pulled back to the centroid would blend again
        facets = image.facets
        target = facets.mode if self.settings.init == "mode" else facets.centroid
        return objective - facet_distance(layer, target) * weight

    def optimize(self, task: Task, image: FacetGeneratorImage, objective: Objective) -> Result:
        return code_ascent(
            self.context.forward,
            self.keeping(task, image, objective),
            image,
            self.schedule(),
            task.generators,
            project=self.constraint(image),
            name=self.label(task),
        )


@dataclass(frozen=True)
class ReleasedSettings(Settings):
    init: str = setting("centroid", "start code: the facet's mean code", enum=INITS)
    lr_start: float = setting(8.0, "step size at the first step (released: 8)", exclusiveMinimum=0)
    lr_end: float = setting(1e-10, "step size at the last step (released: 1e-10)", minimum=0)
    decay: float = setting(0.01, "L2 decay of h per step (released: 0.01)", minimum=0, maximum=1)
    facet_constraint: str = setting("none", "what keeps each code in its facet: nothing, as "
                                    "released", enum=CONSTRAINTS)  # fmt: skip
    facet_weight: float = setting(0.0, "no facet-keeping term, as released", minimum=0)


@register
class DgnReleased(Dgn):
    """The released act_max.py schedule with no facet constraint, from each facet's centroid code
    (G(centroid), the reference row): reported beside `dgn`, so that the table shows what the
    constraint buys."""

    name = "dgn_released"
    summary = (
        "`dgn` at the released schedule (rate 8 → 0, ×0.99 decay) with no facet constraint: "
        "what the constraint buys"
    )
    Settings = ReleasedSettings
