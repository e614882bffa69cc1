"""`ppgn`: PPGN's MALA-approx sampler (Nguyen et al. 2017; the survey's probabilistic view):

    h ← h + ε1 ∂log p(h)/∂h + ε2 ∂log p(y = unit | G(h))/∂h + N(0, ε3²)

with the prior term from the joint model, E(G(h)) − h (E: the visualized network up to the code
layer), or from a denoising autoencoder on the codes, R(h) − h ≈ σ² ∂log p(h)/∂h (`prior: dae`,
PPGN-h; rule code_prior). A class unit's term is its log softmax probability, a hidden unit's its
activation. Each step is normalized and h clipped as in the released `sampler.py`; one chain per
facet from its facet's start code (as `dgn`) under the same facet constraint, `samples` kept
every `save_every` steps, the facet's image the chain's last. With ε1 = ε3 = 0 it is `dgn`'s
ascent on the same objective.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from facetviz.priors.training import load_prior
from facetviz.synthesis.methods import dgn
from facetviz.synthesis.methods.base import Task, register, setting
from facetviz.synthesis.methods.dgn import Dgn, FacetGeneratorImage
from facetviz.synthesis.objectives import Objective, units
from facetviz.synthesis.render import CodeSteps, Result, code_ascent


@dataclass(frozen=True)
class Settings(dgn.Settings):
    # ppgn's chains were tuned and measured from the centroid (docs/results.md, "Learned priors")
    init: str = setting("centroid", "start code (as dgn's)", enum=dgn.INITS)
    lr_start: float = setting(1.0, "step size, in units of the codes' mean |h| (released: 1)",
                              exclusiveMinimum=0)  # fmt: skip
    lr_end: float = setting(1.0, "step size at the last step", minimum=0)
    # the constraint ppgn's chains were tuned in (docs/results.md, "Learned priors"), not dgn's
    radius_scale: float = setting(0.12, "the constraint's size (as dgn's)", exclusiveMinimum=0)
    facet_weight: float = setting(1.0, "mfv's facet-keeping term in code space (as dgn's)",
                                  minimum=0)  # fmt: skip
    epsilon1: float = setting(1e-5, "weight of the prior term (released: 1e-5)", minimum=0)
    epsilon2: float = setting(1.0, "weight of the unit's term (released: 1)", minimum=0)
    epsilon3: float = setting(1e-17, "std of the noise (released: 1e-17)", minimum=0)
    prior: str = setting("joint", "the prior term: joint (E(G(h)) - h) or dae (R(h) - h)",
                         enum=["joint", "dae"])  # fmt: skip
    save_every: int = setting(20, "keep the chain's image every this many steps", minimum=1)


@register
class Ppgn(Dgn):
    name = "ppgn"
    summary = (
        "PPGN's MALA-approx sampler (Nguyen et al. 2017): the unit's log-probability plus a "
        "prior term on h (the joint model's E(G(h)) − h, or a denoising autoencoder's) plus "
        "noise; one chain per facet under the same constraint, its samples kept"
    )
    Settings = Settings

    @classmethod
    def required_inputs(cls, settings: Any) -> Mapping[str, str]:
        if settings.prior == "dae":
            return {**cls.inputs, "dae": "priors/dae.pt"}
        return cls.inputs

    def objective(self, task: Task) -> Objective:
        """log p(y = unit | G(h)) for class units (log softmax), the activation for the rest."""
        log_probability = [
            unit.as_kind("log_probability") if is_class else unit
            for unit, is_class in zip(task.units, task.class_units, strict=True)
        ]
        return units(log_probability) * self.settings.epsilon2

    def prior_term(self, task: Task, image: FacetGeneratorImage):
        """(h, outputs) -> the prior's direction: E(G(h)) − h, or R(h) − h."""
        layer = image.generator.code_layer
        if self.settings.prior == "dae":
            shape = tuple(task.mean_images.shape[1:])
            dae = load_prior(self.context.inputs["dae"], "dae", self.context.network, shape)
            dae = dae.to(image.codes.device)
            return (lambda h, _outputs: dae(h) - h), ()
        return (lambda h, outputs: outputs[layer].flatten(1).detach() - h), (layer,)

    def schedule(self) -> CodeSteps:
        s = self.settings
        return CodeSteps(
            self.context.steps(s.steps), (s.lr_start, s.lr_end), s.decay, s.jitter,
            prior_weight=s.epsilon1, noise=s.epsilon3, save_every=s.save_every,
        )  # fmt: skip

    def optimize(self, task: Task, image: FacetGeneratorImage, objective: Objective) -> Result:
        prior, layers = self.prior_term(task, image)
        return code_ascent(
            self.context.forward, self.keeping(task, image, objective), image, self.schedule(),
            task.generators, project=self.constraint(image), prior=prior, prior_layers=layers,
            name=self.label(task),
        )  # fmt: skip
