"""The synthesis methods, one module each, found by name in a registry (`base`).

Built in: the paper's `mfv` and `cbr`, and the survey's baselines `plain`, `hand`, `fourier`
and `diversity`; the references `mean_image` and `nearest_real` (no optimization), which every
run scores beside its methods. A method of your own is a module that subclasses `Method` and
decorates it with `@register`, named in the config's `synthesis.plugins` (README, "Develop").
"""

# imported for their @register: the built-in methods and references
from facetviz.synthesis.methods import (  # noqa: F401
    cbr,
    diversity,
    fourier,
    hand,
    mfv,
    plain,
    references,
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
BUILT_IN = ("mfv", "cbr", "plain", "hand", "fourier", "diversity")
REFERENCES = ("mean_image", "nearest_real")

__all__ = [
    "BUILT_IN",
    "REFERENCES",
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
