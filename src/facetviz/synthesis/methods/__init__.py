"""The synthesis methods, one module each, found by name in a registry (`base`).

Built in: the paper's `mfv` and `cbr`, the survey's baselines `plain`, `hand`, `fourier` and
`diversity`, and its learned priors `dgn` (with `dgn_released`, the released unconstrained
schedule) and `ppgn`; `vit`, the recipe of Ghiasi et al. 2022 for vision transformers (not yet
in `BUILT_IN`, the docs' and the comparison run's list); the references `mean_image`,
`nearest_real` and `g_centroid` (no optimization), which runs score beside their methods. A
method of your own is a module that subclasses `Method` and decorates it with `@register`,
named in the config's `synthesis.plugins` (docs/design.md §9).
"""

from collections.abc import Sequence

# imported for their @register: the built-in methods and references
from facetviz.synthesis.methods import (  # noqa: F401
    cbr,
    dgn,
    diversity,
    fourier,
    hand,
    mfv,
    plain,
    ppgn,
    references,
    vit,
)
from facetviz.synthesis.methods.base import (
    REGISTRY,
    Context,
    Method,
    Task,
    check_synthesis,
    defaults,
    is_plugin,
    load_plugins,
    method_class,
    method_settings,
    register,
    setting,
    settings_schema,
)

# the methods that come with facetviz, in the order the docs list them; then the references
BUILT_IN = (
    *("mfv", "cbr", "plain", "hand", "fourier", "diversity", "vit"),
    *("dgn", "dgn_released", "ppgn"),
)
REFERENCES = ("mean_image", "nearest_real", "g_centroid")


def learned_prior(methods: Sequence[str]) -> bool:
    """Whether any of these methods optimizes a generator's code (and needs the generator)."""
    return any("generator" in method_class(name).inputs for name in methods)


def references_for(methods: Sequence[str]) -> list[str]:
    """The references a run of these methods scores beside them: G(centroid) only where a
    method has a generator to draw it with."""
    prior = learned_prior(methods)
    return [r for r in REFERENCES if prior or "generator" not in method_class(r).inputs]


__all__ = [
    "BUILT_IN",
    "REFERENCES",
    "learned_prior",
    "references_for",
    "REGISTRY",
    "Context",
    "Method",
    "Task",
    "check_synthesis",
    "defaults",
    "is_plugin",
    "load_plugins",
    "method_class",
    "method_settings",
    "register",
    "setting",
    "settings_schema",
]
