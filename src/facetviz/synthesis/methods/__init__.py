"""The synthesis methods, one module each, found by name in a registry (`base`).

Built in: the paper's `mfv` and `cbr`, and the survey's baselines `plain`, `hand`, `fourier`
and `diversity`. A method of your own is a module that subclasses `Method` and decorates it with
`@register`, named in the config's `synthesis.plugins` (README, "Develop").
"""

from facetviz.synthesis.methods import cbr, diversity, fourier, hand, mfv, plain
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

BUILT_IN = tuple(
    module.__name__.rsplit(".", 1)[1] for module in (mfv, cbr, plain, hand, fourier, diversity)
)

__all__ = [
    "BUILT_IN",
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
